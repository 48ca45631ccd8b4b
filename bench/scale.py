"""The metric surface at fleet scale: 1,000 and 10,000 HTTP probes (each with its own ttfb
budget) in one daemon against its built-in demo target. Reports the series count, the
scrape size plain and gzipped, the encode time of a scrape, and RSS.

    python3 bench/scale.py [--sizes 1000,10000] [--warmup 40] [--otlp]

--otlp measures each size twice in the same run: once with /metrics only, once with OTLP
push (http/protobuf every 10 s) to a sink here that reads and counts every request. The
peak is read separately for the push phase (the warm-up, no scrapes) and the scrape phase
(VmHWM reset in between through /proc/PID/clear_refs), so push and scrape compare side by
side.

1,000 probes run every 1-10 s (about 300 runs/s, as bench/overhead.py); 10,000 run every
30 s (about 330 runs/s). The warmup lets every probe run at least once before measuring.
Loopback only; the daemon is stopped at the end.
"""
import argparse
import gzip
import http.server
import os
import statistics
import tempfile
import threading
import time
import urllib.request

from common import BIN, Proc, build, free_port, machine, memory_kb, report, wait_http


def config(path, n, listen, demo, otlp_port=None):
    with open(path, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{listen}"\n[demo]\nlisten = "127.0.0.1:{demo}"\n\n')
        if otlp_port:
            f.write(f'[export.otlp]\nendpoint = "http://127.0.0.1:{otlp_port}/v1/metrics"\n'
                    'protocol = "http/protobuf"\ninterval = "10s"\n\n')
        for i in range(n):
            every = 1 + i % 10 if n <= 1000 else 30
            f.write(f'[[probe]]\nname = "p{i}"\nkind = "http"\nurl = "http://127.0.0.1:{demo}/"\n'
                    f'every = "{every}s"\n[probe.budget]\nttfb = "{100 + i % 500}ms"\n\n')


def fetch(url, gz):
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gz else {})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    return body, time.perf_counter() - t


class Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that reads each request whole and answers 200."""
    requests = 0
    bytes = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Sink.requests += 1
        Sink.bytes += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def measure(n, warmup, otlp):
    listen, demo = free_port(), free_port()
    sink = None
    if otlp:
        sink = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        Sink.requests = Sink.bytes = 0
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "sloprobe.toml")
        config(cfg, n, listen, demo, sink.server_address[1] if sink else None)
        with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "error"}) as d:
            url = f"http://127.0.0.1:{listen}/metrics"
            wait_http(f"http://127.0.0.1:{listen}/readyz", tries=600)
            # RSS each second over the second half of the warm-up: the resting range
            # (with --otlp it spans exports).
            resting = []
            end = time.monotonic() + warmup
            while time.monotonic() < end:
                time.sleep(1)
                if end - time.monotonic() < warmup / 2:
                    resting.append(memory_kb(d.pid)["VmRSS"] / 1024)
            if not resting:  # a warm-up under 2 s
                resting.append(memory_kb(d.pid)["VmRSS"] / 1024)
            # The warm-up's peak (start-up, runs and, with --otlp, pushes; no scrapes).
            warmup_peak = memory_kb(d.pid)["VmHWM"] / 1024
            reset_peak(d.pid)
            times = []
            for _ in range(5):
                body, dt = fetch(url, False)
                times.append(dt)
            gz, gz_dt = fetch(url, True)
            text = body.decode()
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            probe_series = sum(1 for line in text.splitlines() if 'probe_name="p7"' in line and not line.startswith("#"))
            ran = sum(1 for line in text.splitlines() if line.startswith("probe_runs_total{") and 'outcome="success"' in line)
            mem = memory_kb(d.pid)
            assert len(gzip.decompress(gz)) > 0
            return {
                "probes": n,
                "probes_ran": ran,
                "series": series,
                "series_per_probe": probe_series,
                "scrape_bytes": len(body),
                "scrape_gzip_bytes": len(gz),
                "scrape_ms_median": statistics.median(times) * 1000,
                "scrape_ms_min": min(times) * 1000,
                "gzip_scrape_ms": gz_dt * 1000,
                "rss_mb": mem["VmRSS"] / 1024,
                "peak_rss_mb": mem["VmHWM"] / 1024,
                "resting_rss_mb": [min(resting), max(resting)],
                "warmup_peak_rss_mb": warmup_peak,
                "otlp": otlp,
                "otlp_requests": Sink.requests if otlp else 0,
                "otlp_bytes": Sink.bytes if otlp else 0,
            }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--warmup", type=float, default=40)
    ap.add_argument("--otlp", action="store_true", help="also push OTLP every 10 s")
    args = ap.parse_args()
    build()
    rows = []
    for n in args.sizes.split(","):
        rows.append(measure(int(n), args.warmup, False))
        if args.otlp:
            rows.append(measure(int(n), args.warmup, True))
    flag = " --otlp" if args.otlp else ""
    lines = [
        f"Machine: {machine()}. `python3 bench/scale.py --sizes {args.sizes} --warmup {args.warmup:g}{flag}`.",
        "",
        "| probes | path | ran | series | per probe | scrape plain | gzip | scrape time (median of 5, min) | gzip scrape | RSS | warm-up peak | scrape peak |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        path = "/metrics + OTLP push" if r["otlp"] else "/metrics"
        lines.append(
            f"| {r['probes']:,} | {path} | {r['probes_ran']:,} | {r['series']:,} | {r['series_per_probe']} | "
            f"{r['scrape_bytes'] / 1e6:.2f} MB | {r['scrape_gzip_bytes'] / 1e6:.2f} MB | "
            f"{r['scrape_ms_median']:.0f} ms ({r['scrape_ms_min']:.0f} ms) | {r['gzip_scrape_ms']:.0f} ms | "
            f"{r['rss_mb']:.1f} MB | {r['warmup_peak_rss_mb']:.1f} MB | {r['peak_rss_mb']:.1f} MB |"
        )
    lines.append("")
    for r in rows:
        low, high = r["resting_rss_mb"]
        what = "with OTLP push" if r["otlp"] else "/metrics only"
        extra = (f"; the sink got {r['otlp_requests']} requests, {r['otlp_bytes'] / 1e6:.1f} MB"
                 if r["otlp"] else "")
        lines.append(f"{r['probes']:,} probes, {what}: RSS {low:.1f}-{high:.1f} MB over the second half of the warm-up{extra}.")
    report("scale-otlp" if args.otlp else "scale", "\n".join(lines), rows)


if __name__ == "__main__":
    main()
