import dynamic from 'next/dynamic';

const Later = dynamic(() => import('../app/lib/heavy').then((m) => () => m.render()), { ssr: false });

export default function Legacy() {
  return (
    <div>
      <h1>legacy</h1>
      <Later />
    </div>
  );
}
