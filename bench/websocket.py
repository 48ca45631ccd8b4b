"""WebSocket message RTT accuracy beside an independent client, and CPU per run.

    python3 bench/websocket.py [--runs 200] [--delay 20] [--load-seconds 30]

The demo target (`sloprobe target`) echoes a message after an injected delay D. sloprobe's
websocket probe (`once`) and a Python `websockets` client time the same exchange, send →
matching reply, on a fresh socket per run, interleaved in blocks of 20. Then a daemon runs
100 websocket probes (every 1 s: open, 1 ping, one round trip, close) for the load period
and its CPU time per run is reported. Loopback only; every process is stopped.
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import BIN, Proc, build, cpu_seconds, free_port, http_text, machine, report, wait_http

VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".venv")


def ensure_websockets():
    py = os.path.join(VENV, "bin", "python3")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "websockets"], check=True)
    return py


PY_CLIENT = r'''
import asyncio, json, sys, time
import websockets
async def main(url, runs):
    out = []
    for i in range(runs):
        async with websockets.connect(url, compression=None) as ws:
            t = time.perf_counter()
            await ws.send(json.dumps({"type": "ping", "id": i}))
            while True:
                msg = await ws.recv()
                if json.loads(msg).get("id") == i:
                    break
            out.append(time.perf_counter() - t)
    print(json.dumps(out))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
'''


def sloprobe_block(cfg, n):
    out = subprocess.run([BIN, "once", "-c", cfg, "--runs", str(n), "--format", "json"], capture_output=True, text=True)
    vals = []
    for line in out.stdout.splitlines():
        d = json.loads(line)
        if d.get("type") == "run" and d.get("success"):
            vals.append(d["measurements"]["message_rtt"])
    return vals


def load(port, seconds, tmp):
    listen = free_port()
    cfg = os.path.join(tmp, "load.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{listen}"\n\n')
        for i in range(100):
            f.write(f'[[probe]]\nname = "ws{i}"\nkind = "websocket"\nurl = "ws://127.0.0.1:{port}/ws"\nevery = "1s"\npings = 1\n'
                    "[[probe.step]]\nsend = 'x'\nexpect = { regex = \"x\" }\n\n")
    with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "error"}) as d:
        wait_http(f"http://127.0.0.1:{listen}/readyz")
        time.sleep(3)
        def runs():
            text = http_text(f"http://127.0.0.1:{listen}/metrics")
            return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("probe_runs_total{"))
        c0, r0 = cpu_seconds(d.pid), runs()
        time.sleep(seconds)
        c1, r1 = cpu_seconds(d.pid), runs()
    return {"runs": r1 - r0, "cpu_s": c1 - c0, "cpu_us_per_run": (c1 - c0) / max(r1 - r0, 1) * 1e6}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--delay", type=int, default=20)
    ap.add_argument("--load-seconds", type=float, default=30)
    args = ap.parse_args()
    build()
    py = ensure_websockets()
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws?reply_delay={args.delay}"
    with tempfile.TemporaryDirectory() as tmp, Proc([BIN, "target", "--listen", f"127.0.0.1:{port}"]):
        wait_http(f"http://127.0.0.1:{port}/")
        cfg = os.path.join(tmp, "once.toml")
        with open(cfg, "w") as f:
            f.write(f'[[probe]]\nname = "rtt"\nkind = "websocket"\nurl = "{url}"\nevery = "1m"\ntimeout = "5s"\n'
                    "[[probe.step]]\nsend = '{\"type\":\"ping\",\"id\":1}'\nexpect = { pointer = \"/id\", equals = 1 }\n")
        ours, theirs = [], []
        block = 20
        for _ in range(args.runs // block):
            ours += sloprobe_block(cfg, block)
            out = subprocess.run([py, "-c", PY_CLIENT, url, str(block)], capture_output=True, text=True, check=True)
            theirs += json.loads(out.stdout)
        lo = load(port, args.load_seconds, tmp)
    d = args.delay / 1000

    def row(name, vals):
        err = [(v - d) * 1000 for v in vals]
        return f"| {name} | {len(vals)} | {statistics.median(err):+.3f} ms | {sorted(err)[int(len(err) * 0.95) - 1]:+.3f} ms | {min(err):+.3f} ms |"

    lines = [
        f"Machine: {machine()}. `python3 bench/websocket.py --runs {args.runs} --delay {args.delay}`.",
        "",
        f"Message round trip minus the injected {args.delay} ms reply delay (fresh socket per run):",
        "",
        "| client | runs | median | p95 | min |",
        "|---|---:|---:|---:|---:|",
        row("sloprobe (message_rtt)", ours),
        row("Python websockets", theirs),
        "",
        f"100 websocket probes every 1 s for {args.load_seconds:g} s: {lo['runs']:.0f} runs, "
        f"{lo['cpu_s']:.2f} s CPU, **{lo['cpu_us_per_run']:.0f} µs CPU per run** (open, 1 ping, 1 round trip, close).",
    ]
    report("websocket", "\n".join(lines), {"ours": ours, "python": theirs, "load": lo, "delay_s": d})


if __name__ == "__main__":
    main()
