#!/usr/bin/env python3
"""TTFB/total accuracy: sloprobe beside curl and blackbox_exporter against the same local
target with a known injected delay, in one run, interleaved in blocks.

    python3 bench/accuracy.py [--runs 200] [--block 20]

Needs curl and prometheus-blackbox-exporter (Debian packages). Loopback only.
"""
import argparse
import json
import re
import subprocess
import tempfile
import urllib.parse

from common import report, BIN, Proc, build, free_port, http_text, machine, pct, wait_http

BLACKBOX_CFG = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""


def curl_runs(url, n):
    fmt = "%{time_namelookup} %{time_connect} %{time_pretransfer} %{time_starttransfer} %{time_total}\\n"
    out = []
    for _ in range(n):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", fmt, url], capture_output=True, text=True, check=True)
        dns, conn, pre, ttfb, total = map(float, r.stdout.split())
        out.append({"ttfb": ttfb, "total": total, "connect": conn - dns, "wait": ttfb - pre})
    return out


PHASE = re.compile(r'^probe_http_duration_seconds\{phase="(\w+)"\} (\S+)$', re.M)
DURATION = re.compile(r"^probe_duration_seconds (\S+)$", re.M)


def blackbox_runs(port, url, n):
    q = urllib.parse.urlencode({"module": "http_2xx", "target": url})
    out = []
    for _ in range(n):
        text = http_text(f"http://127.0.0.1:{port}/probe?{q}")
        ph = {k: float(v) for k, v in PHASE.findall(text)}
        ttfb = ph["resolve"] + ph["connect"] + ph["tls"] + ph["processing"]
        out.append({"ttfb": ttfb, "total": ttfb + ph["transfer"], "connect": ph["connect"],
                    "probe_duration": float(DURATION.search(text).group(1))})
    return out


def sloprobe_runs(cfg, n):
    r = subprocess.run([BIN, "once", "-c", cfg, "--runs", str(n), "--format", "json"],
                       capture_output=True, text=True)
    out = []
    for line in r.stdout.splitlines():
        o = json.loads(line)
        if o.get("type") == "run":
            assert o["success"], o
            m = o["measurements"]
            out.append({"ttfb": m["ttfb"], "total": m["total"], "connect": m["connect"], "wait": m["wait"]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--block", type=int, default=20)
    args = ap.parse_args()
    build()
    tport, bport = free_port(), free_port()
    results = {}
    with tempfile.TemporaryDirectory() as d, \
            Proc([BIN, "target", "--listen", f"127.0.0.1:{tport}"]), \
            Proc(["prometheus-blackbox-exporter", f"--config.file={d}/bb.yml",
                  f"--web.listen-address=127.0.0.1:{bport}"]) if write(f"{d}/bb.yml", BLACKBOX_CFG) else None:
        wait_http(f"http://127.0.0.1:{tport}/")
        wait_http(f"http://127.0.0.1:{bport}/")
        for path in ["/delay/50", "/"]:
            url = f"http://127.0.0.1:{tport}{path}"
            cfg = f"{d}/sloprobe.toml"
            write(cfg, f'[[probe]]\nname = "acc"\nkind = "http"\nurl = "{url}"\nevery = "30s"\ntimeout = "5s"\n')
            runs = {"curl": [], "blackbox_exporter": [], "sloprobe": []}
            for _ in range(args.runs // args.block):
                runs["curl"] += curl_runs(url, args.block)
                runs["blackbox_exporter"] += blackbox_runs(bport, url, args.block)
                runs["sloprobe"] += sloprobe_runs(cfg, args.block)
            results[path] = runs
    summarize(results, args)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return True


def summarize(results, args):
    lines = [f"machine: {machine()}; {args.runs} runs per tool per target, interleaved in blocks of {args.block}", ""]
    summary = {}
    for path, runs in results.items():
        lines.append(f"target `{path}`")
        lines.append("")
        lines.append("| tool | ttfb p50 | ttfb p95 | total p50 | total p95 | connect p50 | Δ ttfb p50 vs curl |")
        lines.append("|---|---|---|---|---|---|---|")
        curl_p50 = pct([r["ttfb"] for r in runs["curl"]], 50)
        summary[path] = {}
        for tool, rs in runs.items():
            t = [r["ttfb"] for r in rs]
            tot = [r["total"] for r in rs]
            c = [r["connect"] for r in rs]
            s = {"ttfb_p50": pct(t, 50), "ttfb_p95": pct(t, 95), "total_p50": pct(tot, 50),
                 "total_p95": pct(tot, 95), "connect_p50": pct(c, 50), "n": len(rs)}
            summary[path][tool] = s
            ms = lambda v: f"{v * 1000:.3f} ms"
            lines.append(f"| {tool} | {ms(s['ttfb_p50'])} | {ms(s['ttfb_p95'])} | {ms(s['total_p50'])} | "
                         f"{ms(s['total_p95'])} | {ms(s['connect_p50'])} | {(s['ttfb_p50'] - curl_p50) * 1000:+.3f} ms |")
        lines.append("")
    text = "\n".join(lines)
    report("accuracy", text, summary)


if __name__ == "__main__":
    main()
