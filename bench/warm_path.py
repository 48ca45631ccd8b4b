#!/usr/bin/env python3
"""Why back-to-back `once` runs read lower than spaced runs on a sub-millisecond target.

    python3 bench/warm_path.py [--runs 20] [--spacing 1.0]

The demo target echoes a websocket message at once (no injected delay). The same
send → reply round trip is timed, fresh socket per run, in five ways:

  A. sloprobe `once --runs N`: N runs back to back in one process;
  B. sloprobe `once --runs 1`, N processes, `spacing` seconds apart;
  C. sloprobe daemon, one probe every `spacing` s (one process, spaced): mean from /metrics;
  D. Python `websockets`, N runs back to back in one process;
  E. Python `websockets`, N runs in one process, `spacing` s apart.

If D/E show the same ratio as A/C, the effect belongs to the host (idle CPUs sleeping
between runs), not to sloprobe. Loopback only; every process is stopped.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from common import BIN, Proc, build, free_port, http_text, machine, report, wait_http
from websocket import ensure_websockets

PY_CLIENT = r'''
import asyncio, json, sys, time
import websockets
async def main(url, runs, spacing):
    out = []
    for i in range(runs):
        if i and spacing:
            await asyncio.sleep(spacing)
        async with websockets.connect(url, compression=None) as ws:
            t = time.perf_counter()
            await ws.send(json.dumps({"type": "ping", "id": i}))
            while json.loads(await ws.recv()).get("id") != i:
                pass
            out.append(time.perf_counter() - t)
    print(json.dumps(out))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
'''

PROBE = ('[[probe]]\nname = "rtt"\nkind = "websocket"\nurl = "{url}"\nevery = "{every}"\ntimeout = "900ms"\n'
         "[[probe.step]]\nsend = '{{\"type\":\"ping\",\"id\":1}}'\nexpect = {{ pointer = \"/id\", equals = 1 }}\n")


def once(cfg, n):
    out = subprocess.run([BIN, "once", "-c", cfg, "--runs", str(n), "--format", "json"],
                         capture_output=True, text=True)
    return [json.loads(l)["measurements"]["message_rtt"] for l in out.stdout.splitlines()
            if '"type":"run"' in l and '"success":true' in l]


def daemon_mean(url, runs, spacing, tmp):
    listen = free_port()
    cfg = os.path.join(tmp, "daemon.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{listen}"\n\n' + PROBE.format(url=url, every=f"{int(spacing * 1000)}ms"))
    with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "error"}):
        wait_http(f"http://127.0.0.1:{listen}/readyz")
        deadline = time.monotonic() + runs * spacing + 30
        while time.monotonic() < deadline:
            text = http_text(f"http://127.0.0.1:{listen}/metrics")
            vals = {}
            for line in text.splitlines():
                for k in ("_sum", "_count"):
                    if line.startswith("probe_websocket_message_rtt_seconds" + k + "{"):
                        vals[k] = float(line.rsplit(" ", 1)[1])
            if vals.get("_count", 0) >= runs:
                return vals["_sum"] / vals["_count"], int(vals["_count"])
            time.sleep(spacing)
    raise SystemExit("daemon did not reach the run count")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--spacing", type=float, default=1.0)
    a = ap.parse_args()
    build()
    py = ensure_websockets()
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    res = {}
    with tempfile.TemporaryDirectory() as tmp, Proc([BIN, "target", "--listen", f"127.0.0.1:{port}"]):
        wait_http(f"http://127.0.0.1:{port}/")
        cfg = os.path.join(tmp, "once.toml")
        with open(cfg, "w") as f:
            f.write(PROBE.format(url=url, every="1m"))
        res["A"] = once(cfg, a.runs)
        res["B"] = []
        for _ in range(a.runs):
            time.sleep(a.spacing)
            res["B"] += once(cfg, 1)
        mean_c, n_c = daemon_mean(url, a.runs, a.spacing, tmp)
        for key, spacing in (("D", 0), ("E", a.spacing)):
            out = subprocess.run([py, "-c", PY_CLIENT, url, str(a.runs), str(spacing)],
                                 capture_output=True, text=True, check=True)
            res[key] = json.loads(out.stdout)

    def ms(v):
        return f"{v * 1000:.3f}"

    def row(name, vals):
        return f"| {name} | {len(vals)} | {ms(statistics.median(vals))} | {ms(statistics.mean(vals))} | {ms(min(vals))} |"

    ratio_ours = statistics.median(res["B"]) / statistics.median(res["A"])
    ratio_py = statistics.median(res["E"]) / statistics.median(res["D"])
    lines = [
        f"Machine: {machine()}. `python3 bench/warm_path.py --runs {a.runs} --spacing {a.spacing:g}`; "
        "websocket message round trip to the demo target's immediate echo, fresh socket per run:",
        "",
        "| how | runs | median (ms) | mean (ms) | min (ms) |",
        "|---|---:|---:|---:|---:|",
        row("A. sloprobe `once --runs N` (back to back, one process)", res["A"]),
        row(f"B. sloprobe `once --runs 1` × N, {a.spacing:g} s apart", res["B"]),
        f"| C. sloprobe daemon, every {a.spacing:g} s (mean from /metrics) | {n_c} | | {ms(mean_c)} | |",
        row("D. Python websockets, back to back, one process", res["D"]),
        row(f"E. Python websockets, one process, {a.spacing:g} s apart", res["E"]),
        "",
        f"Spaced ÷ back to back (medians): sloprobe {ratio_ours:.1f}× (B/A), Python {ratio_py:.1f}× (E/D).",
    ]
    report("warm_path", "\n".join(lines), {**res, "daemon_mean": mean_c, "daemon_n": n_c})


if __name__ == "__main__":
    main()
