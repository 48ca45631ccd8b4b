#!/usr/bin/env python3
"""CPU per run and RSS for 1,000 tcp and 1,000 dns probes: sloprobe's daemon beside
blackbox_exporter probing the same targets on the same schedule, in one run.

    python3 bench/blackbox_kinds.py [--probes 1000] [--seconds 30] [--warmup 8]

Targets: the demo target's port, as a TCP connect (no dialogue) and as a DNS server (the
demo answers `demo.test` over UDP on the same port). blackbox_exporter is driven as in
bench/overhead.py (an asyncio driver calls /probe on each probe's interval, as Prometheus
would). Only the probing processes are measured. Loopback only; every process is stopped.
"""
import argparse
import tempfile

from common import BIN, Proc, build, free_port, machine, report, wait_http
from overhead import run_blackbox, run_sloprobe

KINDS = {
    "tcp": {
        "sloprobe": 'kind = "tcp"\ntarget = "127.0.0.1:{port}"',
        "blackbox": "tcp_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n",
        "target": "127.0.0.1:{port}",
    },
    "dns": {
        "sloprobe": 'kind = "dns"\nserver = "127.0.0.1:{port}"\nquery_name = "demo.test"\nquery_type = "A"',
        "blackbox": "dns_a:\n    prober: dns\n    timeout: 5s\n    dns:\n      query_name: demo.test\n      query_type: A\n      preferred_ip_protocol: ip4\n",
        "target": "127.0.0.1:{port}",
    },
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--scrape-every", type=int, default=15, help="seconds between /metrics scrapes; 0 = none")
    args = ap.parse_args()
    build()
    tport = free_port()
    results = {}
    with tempfile.TemporaryDirectory() as d, Proc([BIN, "target", "--listen", f"127.0.0.1:{tport}"]):
        wait_http(f"http://127.0.0.1:{tport}/")
        for kind, k in KINDS.items():
            s = run_sloprobe(args, tport, d, keys=k["sloprobe"].format(port=tport))
            b = run_blackbox(args, tport, d, module=k["blackbox"], target=k["target"].format(port=tport))
            results[kind] = {"sloprobe": s, "blackbox_exporter": b}
    per_run = lambda r: r["cpu_s"] / r["runs"] * 1e6 if r["runs"] else float("nan")
    lines = [
        f"machine: {machine()}; {args.probes} probes per kind, intervals 1-10 s, {args.seconds} s measured after {args.warmup} s warm-up",
        "",
        "| kind | | runs | failed | CPU s | CPU µs per run | RSS MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, pair in results.items():
        for name, r in pair.items():
            lines.append(f"| {kind} | {name} | {r['runs']:.0f} | {r['failed']:.0f} | {r['cpu_s']:.2f} | "
                         f"{per_run(r):.0f} | {r['rss_mb']:.1f} | {r['peak_rss_mb']:.1f} |")
    lines.append("")
    for kind, pair in results.items():
        s, b = pair["sloprobe"], pair["blackbox_exporter"]
        lines.append(f"{kind}: CPU per run, sloprobe / blackbox_exporter: {per_run(s) / per_run(b):.2f}; "
                     f"RSS {s['rss_mb']:.1f} MB / {b['rss_mb']:.1f} MB")
    report("blackbox_kinds", "\n".join(lines), {"results": results, "args": vars(args)})


if __name__ == "__main__":
    main()
