#!/usr/bin/env python3
"""Probe timing beside attacks on the RUM collector (issue 25).

One daemon runs the RUM collector and a neighbour http probe every 200 ms against the demo
target's fixed-delay route (/delay/2: the route with jitter would hide a 1 ms change). In the same run, three phases of equal length:

- quiet: nothing but the probe;
- flood: expensive Faro beacons (100,000 keys in one measurement's `values`, ~1.4 MB each)
  posted back to back by 4 clients, rate limits raised so that every one is parsed;
- slow bodies: 170 connections from 170 loopback addresses (127.0.0.2 and up) each declaring
  a 5 MiB Faro body and sending it a byte a second.

For each phase: the neighbour's mean TTFB and the daemon-wide mean schedule lateness (from
the deltas of the histograms' sum and count on /metrics), the beacons answered, and the
daemon's RSS; the peak RSS over the whole run last.

Usage: bench/listeners.py [--phase 15]
"""
import argparse
import http.client
import os
import re
import socket
import tempfile
import threading
import time

from common import BIN, Proc, build, free_port, http_text, machine, memory_kb, report, wait_http


def sample(text, name, must):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(m in line for m in must):
            total += float(line.rsplit(" ", 1)[1])
    return total


def figures(metrics_url):
    t = http_text(metrics_url)
    probe = ['probe_name="neighbour"']
    return {
        "ttfb_sum": sample(t, "probe_http_ttfb_seconds_sum", probe),
        "ttfb_count": sample(t, "probe_http_ttfb_seconds_count", probe),
        "late_sum": sample(t, "sloprobe_schedule_lateness_seconds_sum", []),
        "late_count": sample(t, "sloprobe_schedule_lateness_seconds_count", []),
        "failed": sample(t, "probe_runs_total", probe + ['outcome="failure"']),
        "beacons_rejected": sample(t, "rum_beacons_total", ['outcome="rejected"']),
    }


def delta(a, b):
    runs = b["ttfb_count"] - a["ttfb_count"]
    late = b["late_count"] - a["late_count"]
    return {
        "runs": runs,
        "ttfb_ms": 1000 * (b["ttfb_sum"] - a["ttfb_sum"]) / runs if runs else float("nan"),
        "lateness_ms": 1000 * (b["late_sum"] - a["late_sum"]) / late if late else float("nan"),
        "failed": b["failed"] - a["failed"],
        "rejected": b["beacons_rejected"] - a["beacons_rejected"],
    }


def flood(port, stop, counts):
    values = ",".join(f'"k{i}":1' for i in range(100_000))
    body = (
        '{"meta":{"page":{"url":"/x"}},"measurements":[{"type":"web-vitals","values":{"lcp":900,'
        + values
        + "}}]}"
    ).encode()
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/collect", body, {"Content-Type": "application/json"})
            status = c.getresponse().status
            counts[status] = counts.get(status, 0) + 1
            c.close()
        except OSError:
            counts["error"] = counts.get("error", 0) + 1


def slow_bodies(port, stop, n=170):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind((f"127.0.0.{2 + i}", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /collect HTTP/1.1\r\nHost: x\r\nContent-Length: 5242880\r\n\r\n{")
        socks.append(s)
    while not stop.is_set():
        for s in socks:
            try:
                s.send(b" ")
            except OSError:
                pass
        stop.wait(1)
    for s in socks:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", type=float, default=15)
    args = ap.parse_args()
    build()
    mport, rport, dport = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "sloprobe.toml")
        with open(cfg, "w") as f:
            f.write(
                f"""[server]
listen = "127.0.0.1:{mport}"
[demo]
listen = "127.0.0.1:{dport}"
[rum]
listen = "127.0.0.1:{rport}"
allowed_origins = ["https://app.example.com"]
rate = 100000
burst = 100000
per_client_rate = 100000

[[probe]]
name = "neighbour"
kind = "http"
url = "http://127.0.0.1:{dport}/delay/2"
every = "200ms"
timeout = "150ms"
"""
            )
        with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "error"}) as daemon:
            murl = f"http://127.0.0.1:{mport}/metrics"
            wait_http(murl)
            time.sleep(3)
            phases = {}
            rss = {}
            marks = figures(murl)
            time.sleep(args.phase)
            now = figures(murl)
            phases["quiet"] = delta(marks, now)
            rss["quiet"] = memory_kb(daemon.pid)["VmRSS"]

            stop, counts = threading.Event(), {}
            workers = [threading.Thread(target=flood, args=(rport, stop, counts)) for _ in range(4)]
            for w in workers:
                w.start()
            marks = figures(murl)
            time.sleep(args.phase)
            now = figures(murl)
            stop.set()
            for w in workers:
                w.join()
            phases["flood"] = delta(marks, now)
            phases["flood"]["beacons"] = dict(counts)
            rss["flood"] = memory_kb(daemon.pid)["VmRSS"]

            stop = threading.Event()
            marks = figures(murl)
            attacker = threading.Thread(target=slow_bodies, args=(rport, stop))
            attacker.start()
            time.sleep(args.phase)
            now = figures(murl)
            rss["slow bodies"] = memory_kb(daemon.pid)["VmRSS"]
            stop.set()
            attacker.join()
            phases["slow bodies"] = delta(marks, now)
            peak = memory_kb(daemon.pid)["VmHWM"]

    quiet = phases["quiet"]
    lines = [
        f"Machine: {machine()}. Neighbour probe every 200 ms; {args.phase:.0f} s a phase, one run.",
        "",
        "| phase | neighbour runs | failed | mean TTFB | Δ vs quiet | mean lateness | Δ vs quiet | beacons refused | RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in phases.items():
        lines.append(
            f"| {name} | {p['runs']:.0f} | {p['failed']:.0f} | {p['ttfb_ms']:.3f} ms | {p['ttfb_ms'] - quiet['ttfb_ms']:+.3f} ms "
            f"| {p['lateness_ms']:.3f} ms | {p['lateness_ms'] - quiet['lateness_ms']:+.3f} ms | {p['rejected']:.0f} | {rss[name] / 1024:.1f} MB |"
        )
    flood_counts = ", ".join(f"{k}: {v}" for k, v in sorted(phases["flood"]["beacons"].items(), key=str))
    lines += ["", f"Flood answers by status: {flood_counts}. Peak RSS over the run: {peak / 1024:.1f} MB."]
    report("listeners", "\n".join(lines), {"phases": phases, "rss_kb": rss, "peak_kb": peak})


if __name__ == "__main__":
    main()
