'use client';
import { useEffect, useState } from 'react';
import './chart.css';

export default function Chart() {
  const [heavy, setHeavy] = useState(null);
  useEffect(() => {
    // Loaded after the page: a deferred chunk, not part of the route's initial JS.
    import('../lib/heavy').then((m) => setHeavy(m.render()));
  }, []);
  return <div className="chart">{heavy}</div>;
}
