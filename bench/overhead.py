#!/usr/bin/env python3
"""Overhead and scheduling precision with 1,000 HTTP probes (intervals 1-10 s) against a
local target: sloprobe's daemon beside blackbox_exporter driven on the same schedule.

    python3 bench/overhead.py [--probes 1000] [--seconds 60] [--warmup 12]

sloprobe schedules its own probes; blackbox_exporter has no scheduler, so an asyncio
driver here calls its /probe endpoint for each target on the same intervals (the way
Prometheus would scrape it). Only the probing process is measured: CPU (utime+stime from
/proc), peak and final RSS, runs completed. Loopback only; every process is stopped.

A third process gives the floor: bench/floor.c (built here with `cc`) does only a run's
socket work (socket, connect, one request, one read, shutdown, close) on the same
schedule, blocking, one thread: what no probe doing that work can go under.
"""
import argparse
import asyncio
import os
import random
import re
import subprocess
import tempfile
import time
import urllib.parse

from common import report, BIN, Proc, build, cpu_seconds, cpu_steal_ticks, free_port, http_text, machine, memory_kb, wait_http

BUCKET = re.compile(r'^sloprobe_schedule_lateness_seconds_bucket\{.*le="([^"]+)"\} (\S+)$', re.M)
RUNS = re.compile(r"^probe_runs_total\{.*\} (\S+)$", re.M)
SKIPPED = re.compile(r"^probe_runs_skipped_total\{.*\} (\S+)$", re.M)
FAILED = re.compile(r'^probe_runs_total\{.*outcome="failure".*\} (\S+)$', re.M)


def intervals(n):
    return [1 + i % 10 for i in range(n)]


def scrape(port):
    text = http_text(f"http://127.0.0.1:{port}/metrics")
    buckets = {}
    for le, v in BUCKET.findall(text):
        buckets[le] = buckets.get(le, 0.0) + float(v)
    return {
        "buckets": buckets,
        "runs": sum(float(v) for v in RUNS.findall(text)),
        "failed": sum(float(v) for v in FAILED.findall(text)),
        "skipped": sum(float(v) for v in SKIPPED.findall(text)),
    }


def quantile_from_buckets(before, after, q):
    """Upper bucket edge holding the q-quantile of the lateness observed between scrapes."""
    edges = sorted(((float("inf") if k == "+Inf" else float(k)), after[k] - before.get(k, 0.0)) for k in after)
    total = edges[-1][1]
    for le, cum in edges:
        if cum >= q * total:
            return le, total
    return float("inf"), total


def fraction_within(before, after, le):
    total = after["+Inf"] - before.get("+Inf", 0.0)
    return (after[le] - before.get(le, 0.0)) / total if total else float("nan")


def run_sloprobe(args, tport, d, keys=None):
    """`keys`: each probe's kind and target keys (default: http on the target's /)."""
    keys = keys or f'kind = "http"\nurl = "http://127.0.0.1:{tport}/"'
    size = 0
    mport = free_port()
    lines = [f'location = "bench"\n[server]\nlisten = "127.0.0.1:{mport}"\n']
    for i, every in enumerate(intervals(args.probes)):
        lines.append(f'[[probe]]\nname = "p{i}"\n{keys}\nevery = "{every}s"\n')
    cfg = os.path.join(d, "sloprobe.toml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines))
    with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "warn"}) as p:
        wait_http(f"http://127.0.0.1:{mport}/readyz")
        time.sleep(args.warmup)
        s0, c0, st0 = scrape(mport), cpu_seconds(p.pid), cpu_steal_ticks()
        # Scraped every 15 s meanwhile, as Prometheus would: the cost of being scraped counts.
        scrape_times, end = [], time.time() + args.seconds
        while args.scrape_every and time.time() + args.scrape_every < end:
            time.sleep(args.scrape_every)
            t = time.time()
            size = len(http_text(f"http://127.0.0.1:{mport}/metrics"))
            scrape_times.append(time.time() - t)
        time.sleep(max(0.0, end - time.time()))
        s1, c1, st1 = scrape(mport), cpu_seconds(p.pid), cpu_steal_ticks()
        mem = memory_kb(p.pid)
    runs = s1["runs"] - s0["runs"]
    steal = (st1[0] - st0[0]) / max(1, st1[1] - st0[1])
    p50, _ = quantile_from_buckets(s0["buckets"], s1["buckets"], 0.50)
    p99, n = quantile_from_buckets(s0["buckets"], s1["buckets"], 0.99)
    return {
        "runs": runs, "failed": s1["failed"] - s0["failed"], "skipped": s1["skipped"] - s0["skipped"],
        "cpu_s": c1 - c0, "rss_mb": mem["VmRSS"] / 1024, "peak_rss_mb": mem["VmHWM"] / 1024,
        "lateness_p50_le_s": p50, "lateness_p99_le_s": p99, "lateness_samples": n,
        "lateness_within_1ms": fraction_within(s0["buckets"], s1["buckets"], "0.001"),
        "lateness_within_5ms": fraction_within(s0["buckets"], s1["buckets"], "0.005"),
        "scrape_seconds_max": max(scrape_times, default=float("nan")), "scrape_bytes": size,
        "cpu_steal_fraction": steal,
    }


async def drive_blackbox(bport, module, target, n, seconds, warmup, pid):
    target = urllib.parse.urlencode({"module": module, "target": target})
    request = f"GET /probe?{target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    counts = {"ok": 0, "failed": 0, "late": []}
    measuring = {"on": False}

    async def probe_once():
        r, w = await asyncio.open_connection("127.0.0.1", bport)
        w.write(request)
        await w.drain()
        body = await r.read()
        w.close()
        return b"probe_success 1" in body

    async def loop(every):
        loop_ = asyncio.get_running_loop()
        due = loop_.time() + random.uniform(0, every)
        while True:
            await asyncio.sleep(max(0.0, due - loop_.time()))
            late = loop_.time() - due
            ok = await probe_once()
            if measuring["on"]:
                counts["ok" if ok else "failed"] += 1
                counts["late"].append(late)
            due += every

    tasks = [asyncio.create_task(loop(e)) for e in intervals(n)]
    await asyncio.sleep(warmup)
    c0 = cpu_seconds(pid)
    measuring["on"] = True
    await asyncio.sleep(seconds)
    measuring["on"] = False
    c1 = cpu_seconds(pid)
    mem = memory_kb(pid)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    late = sorted(counts["late"])
    return {
        "runs": counts["ok"] + counts["failed"], "failed": counts["failed"], "cpu_s": c1 - c0,
        "rss_mb": mem["VmRSS"] / 1024, "peak_rss_mb": mem["VmHWM"] / 1024,
        "driver_lateness_p99_s": late[int(0.99 * (len(late) - 1))] if late else float("nan"),
    }


def run_floor(args, tport, d):
    """bench/floor.c on the same probes and intervals: the run's syscalls and nothing else."""
    exe, counts = os.path.join(d, "floor"), os.path.join(d, "floor-runs")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(os.path.dirname(__file__), "floor.c")], check=True)

    def counted(pid):
        """Runs and failures the moment the file is rewritten (about once a second), with
        the CPU read at once, so both ends of the window are the same instant."""
        def read():
            try:
                return [int(x) for x in open(counts).read().split()]
            except (OSError, ValueError):
                return []
        before, give_up = read(), time.time() + 5
        while time.time() < give_up:
            now = read()
            if len(now) == 2 and now != before:
                return now, cpu_seconds(pid)
            time.sleep(0.002)
        raise RuntimeError("bench/floor.c stopped counting runs")

    with Proc([exe, str(tport), str(args.probes), counts]) as p:
        time.sleep(args.warmup)
        (r0, f0), c0 = counted(p.pid)
        time.sleep(args.seconds - 1)
        (r1, f1), c1 = counted(p.pid)
        mem = memory_kb(p.pid)
    return {"runs": r1 - r0 + f1 - f0, "failed": f1 - f0, "cpu_s": c1 - c0,
            "rss_mb": mem["VmRSS"] / 1024, "peak_rss_mb": mem["VmHWM"] / 1024}


HTTP_MODULE = "http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n"


def run_blackbox(args, tport, d, module=HTTP_MODULE, target=None):
    """`module`: one blackbox.yml module, its name first; `target`: what /probe is given."""
    bport = free_port()
    cfg = os.path.join(d, "bb.yml")
    with open(cfg, "w") as f:
        f.write("modules:\n  " + module)
    name = module.split(":")[0]
    target = target or f"http://127.0.0.1:{tport}/"
    with Proc(["prometheus-blackbox-exporter", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{bport}"]) as p:
        wait_http(f"http://127.0.0.1:{bport}/")
        return asyncio.run(drive_blackbox(bport, name, target, args.probes, args.seconds, args.warmup, p.pid))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=12)
    ap.add_argument("--scrape-every", type=int, default=15, help="seconds between /metrics scrapes; 0 = none")
    args = ap.parse_args()
    build()
    tport = free_port()
    with tempfile.TemporaryDirectory() as d, Proc([BIN, "target", "--listen", f"127.0.0.1:{tport}"]):
        wait_http(f"http://127.0.0.1:{tport}/")
        s = run_sloprobe(args, tport, d)
        b = run_blackbox(args, tport, d)
        f = run_floor(args, tport, d)
    per_run = lambda r: r["cpu_s"] / r["runs"] * 1e6 if r["runs"] else float("nan")
    lines = [
        f"machine: {machine()}; {args.probes} probes, intervals 1-10 s, {args.seconds} s measured after {args.warmup} s warm-up",
        "",
        "| | runs | failed | CPU s | CPU % of one core | CPU µs per run | RSS MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in [("sloprobe", s), ("blackbox_exporter", b), ("floor (bench/floor.c)", f)]:
        lines.append(f"| {name} | {r['runs']:.0f} | {r['failed']:.0f} | {r['cpu_s']:.2f} | {100 * r['cpu_s'] / args.seconds:.1f} | "
                     f"{per_run(r):.0f} | {r['rss_mb']:.1f} | {r['peak_rss_mb']:.1f} |")
    lines += [
        "",
        f"CPU per run, sloprobe / blackbox_exporter: {per_run(s) / per_run(b):.2f}",
        f"CPU per run, floor / blackbox_exporter: {per_run(f) / per_run(b):.2f}; sloprobe / floor: {per_run(s) / per_run(f):.2f}",
        f"sloprobe schedule lateness over {s['lateness_samples']:.0f} runs: p50 ≤ {s['lateness_p50_le_s'] * 1000:g} ms, "
        f"p99 ≤ {s['lateness_p99_le_s'] * 1000:g} ms (histogram bucket edges); within 1 ms: "
        f"{100 * s['lateness_within_1ms']:.2f} %, within 5 ms: {100 * s['lateness_within_5ms']:.2f} %; skipped runs: {s['skipped']:.0f}",
        f"sloprobe /metrics: {s['scrape_bytes'] / 1e6:.1f} MB per scrape, slowest scrape {s['scrape_seconds_max'] * 1000:.0f} ms",
        f"host CPU steal during the sloprobe window: {100 * s['cpu_steal_fraction']:.2f} % of CPU time",
        f"blackbox_exporter driver's own lateness p99 (Python asyncio): {b['driver_lateness_p99_s'] * 1000:.1f} ms",
    ]
    text = "\n".join(lines)
    report("overhead", text, {"sloprobe": s, "blackbox_exporter": b, "floor": f, "args": vars(args)})


if __name__ == "__main__":
    main()
