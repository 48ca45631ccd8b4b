'use client';
// A client component in the root layout: its JS loads on every app route.
import { useState } from 'react';
import { table } from './lib/table';

export default function Providers({ children }) {
  const [n, setN] = useState(0);
  return (
    <div data-n={n} onClick={() => setN(table.length + n)}>
      {children}
    </div>
  );
}
