import Chart from './chart';

export default function Dashboard() {
  return (
    <main>
      <h1>dashboard</h1>
      <Chart />
    </main>
  );
}
