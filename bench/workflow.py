#!/usr/bin/env python3
"""The workflow probe: stage times against injected ones, the cost of long runs in flight,
and part uploads beside curl.

    python3 bench/workflow.py [--probes 100] [--seconds 60] [--runs 5]

1. Accuracy: `sloprobe once --runs N` on the demo pipeline with injected queue,
   transcription and document times; each state time and interval minus the injected
   value, with the poll interval (the granularity) stated.
2. Long runs: a daemon with N workflow probes, each with a job in flight that polls every
   5 s (the job never finishes within the window), beside a daemon with N plain http
   probes every 5 s: CPU and RSS of the probing process; memory per in-flight run.
3. Uploads: 10 parts of 10 MB PUT one at a time by sloprobe and by curl (the same bytes,
   the same URLs, in the same run): throughput side by side, and sloprobe's peak RSS with
   1 MB and 100 MB parts (it must not grow with the part size).

The demo target runs as its own process (`sloprobe target`). Loopback only; every process
is stopped.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

from common import BIN, Proc, build, cpu_seconds, free_port, machine, memory_kb, report, wait_http


def run_with_rss(args):
    """Runs a command to its end; returns (stdout, peak RSS KiB)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, _, usage = os.wait4(p.pid, 0)
    p.returncode = 0
    return out.decode(), usage.ru_maxrss


PIPELINE = """
[[probe]]
name = "pipeline"
kind = "workflow"
every = "1m"
timeout = "30s"
[[probe.step]]
name = "init"
method = "POST"
url = "{base}?parts=2&queue={queue}&transcribe={transcribe}&docify={docify}"
[probe.step.extract]
id = {{ pointer = "/id" }}
part_urls = {{ pointer = "/part_urls" }}
[[probe.step]]
name = "upload"
url = "{base}/unused"
[probe.step.upload]
urls = "part_urls"
part_size = "1MB"
[[probe.step]]
name = "finalize"
method = "POST"
url = "{base}/${{id}}/finalize"
[[probe.step]]
name = "wait"
url = "{base}/${{id}}"
[probe.step.poll]
interval = "{poll}ms"
pointer = "/status"
until = ["ready"]
states = ["transcribing", "docifying"]
[[probe.step]]
name = "cleanup"
always = true
method = "DELETE"
url = "{base}/${{id}}"
timeout = "2s"
[[probe.interval]]
name = "finalize_to_transcribed"
from = "finalize.end"
to = "wait.docifying"
[[probe.interval]]
name = "transcribed_to_ready"
from = "wait.docifying"
to = "wait.ready"
"""


def accuracy(target, runs, tmp):
    queue, transcribe, docify, poll = 200, 1500, 700, 20
    cfg = os.path.join(tmp, "accuracy.toml")
    with open(cfg, "w") as f:
        f.write(PIPELINE.format(base=f"{target}/pipeline/recordings", queue=queue, transcribe=transcribe, docify=docify, poll=poll))
    out, _ = run_with_rss([BIN, "once", "--format", "json", "--runs", str(runs), "-c", cfg])
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    err = out
    rows = []
    expected = {
        "wait.transcribing": queue / 1000,
        "wait.docifying": (queue + transcribe) / 1000,
        "wait.ready": (queue + transcribe + docify) / 1000,
        "finalize_to_transcribed": (queue + transcribe) / 1000,
        "transcribed_to_ready": docify / 1000,
    }
    results = [l for l in lines if l.get("type") == "run"]
    if not results:
        raise SystemExit(f"no runs: {err}")
    for key, want in expected.items():
        errors = [(r["measurements"][key] - want) * 1000 for r in results]
        rows.append((key, want, min(errors), max(errors)))
    return rows, poll, len(results)


def daemon_cost(target, n, seconds, tmp, workflow):
    port = free_port()
    cfg = os.path.join(tmp, f"daemon-{'wf' if workflow else 'http'}.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{port}"\n')
        for i in range(n):
            if workflow:
                f.write(f"""
[[probe]]
name = "job-{i}"
kind = "workflow"
every = "20s"
splay = "0s"
timeout = "12m"
[[probe.step]]
name = "init"
method = "POST"
url = "{target}/pipeline/recordings?parts=1&never=1"
[probe.step.extract]
id = {{ pointer = "/id" }}
[[probe.step]]
name = "finalize"
method = "POST"
url = "{target}/pipeline/recordings/${{id}}/finalize"
[[probe.step]]
name = "wait"
url = "{target}/pipeline/recordings/${{id}}"
deadline = "10m"
[probe.step.poll]
interval = "5s"
pointer = "/status"
until = ["ready"]
""")
            else:
                f.write(f'\n[[probe]]\nname = "get-{i}"\nkind = "http"\nurl = "{target}/api/items"\nevery = "5s"\n')
    with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "error"}) as d:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        time.sleep(5 if not workflow else 22)  # every workflow has started (one 20 s tick)
        c0, t0 = cpu_seconds(d.pid), time.monotonic()
        time.sleep(seconds)
        cpu = cpu_seconds(d.pid) - c0
        wall = time.monotonic() - t0
        mem = memory_kb(d.pid)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        in_flight = sum(float(v) for v in re.findall(r"^probe_runs_in_flight\{.*\} (\S+)$", text, re.M))
    return {"cpu_pct": 100 * cpu / wall, "rss_mib": mem["VmRSS"] / 1024, "in_flight": in_flight}


def uploads(target, tmp):
    parts, size = 10, 10 * 1000 * 1000
    data = os.path.join(tmp, "part.bin")
    with open(data, "wb") as f:
        f.write(os.urandom(size))
    # sloprobe: one init, then 10 parts one at a time.
    results = {}
    before = json.loads(urllib.request.urlopen(f"{target}/pipeline/stats").read())["bytes"]
    for part_size in ["1MB", "10MB", "100MB"]:
        count = {"1MB": 100, "10MB": 10, "100MB": 1}[part_size]
        cfg = os.path.join(tmp, f"upload-{part_size}.toml")
        with open(cfg, "w") as f:
            f.write(f"""
[[probe]]
name = "upload"
kind = "workflow"
every = "5m"
timeout = "2m"
[[probe.step]]
name = "init"
method = "POST"
url = "{target}/pipeline/recordings?parts={count}"
[probe.step.extract]
part_urls = {{ pointer = "/part_urls" }}
[[probe.step]]
name = "upload"
url = "{target}/unused"
timeout = "1m"
[probe.step.upload]
urls = "part_urls"
part_size = "{part_size}"
concurrency = 1
""")
        out, rss = run_with_rss([BIN, "once", "--format", "json", "-c", cfg])
        run = next(json.loads(l) for l in out.splitlines() if '"type":"run"' in l)
        ms = run["measurements"]
        if not run["success"] or ms["upload.parts_ok"] != count:
            raise SystemExit(f"upload of {part_size} parts failed: {run}")
        stored = json.loads(urllib.request.urlopen(f"{target}/pipeline/stats").read())
        got = stored["bytes"] - before
        before = stored["bytes"]
        if got != 100 * 1000 * 1000:
            raise SystemExit(f"the target stored {got} bytes of {part_size} parts, not 100 MB")
        results[part_size] = {"seconds": ms["upload"], "rss_mib": rss / 1024, "parts_ok": ms["upload.parts_ok"], "bytes_stored": got}
    # curl: the same 100 MB as 10 PUTs of 10 MB, one at a time, fresh connections.
    init = json.loads(urllib.request.urlopen(urllib.request.Request(f"{target}/pipeline/recordings?parts={parts}", method="POST")).read())
    # One curl process for all parts (no process start per part; it may reuse its
    # connection, which favours curl).
    cmd = ["curl", "-s", "--fail"]
    for url in init["part_urls"]:
        cmd += ["-T", data, url, "-o", "/dev/null"]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    curl_s = time.monotonic() - t0
    return results, curl_s, parts * size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    build()
    tport = free_port()
    target = f"http://127.0.0.1:{tport}"
    with tempfile.TemporaryDirectory() as tmp, Proc([BIN, "target", "--listen", f"127.0.0.1:{tport}"]):
        wait_http(f"{target}/")
        acc, poll, n = accuracy(target, args.runs, tmp)
        wf = daemon_cost(target, args.probes, args.seconds, tmp, True)
        http = daemon_cost(target, args.probes, args.seconds, tmp, False)
        up, curl_s, total = uploads(target, tmp)

    lines = [f"### Workflow probe ({machine()})", ""]
    lines.append(f"**Accuracy** ({n} runs of the demo pipeline; queued 200 ms, transcribing 1.5 s, docifying 700 ms; polls every {poll} ms: a state is seen up to one poll interval after it begins)")
    lines.append("")
    lines.append("| measurement | injected | measured − injected (min … max) |")
    lines.append("|---|---|---|")
    for key, want, lo, hi in acc:
        lines.append(f"| `{key}` | {want:.3f} s | {lo:+.2f} … {hi:+.2f} ms |")
    lines.append("")
    lines.append(f"**Long runs** ({args.probes} probes, {args.seconds} s measured, side by side in one run)")
    lines.append("")
    lines.append("| daemon | runs in flight | CPU | RSS |")
    lines.append("|---|---|---|---|")
    lines.append(f"| {args.probes} workflows, each with a job in flight polling every 5 s | {wf['in_flight']:.0f} | {wf['cpu_pct']:.2f} % | {wf['rss_mib']:.1f} MiB |")
    lines.append(f"| {args.probes} http probes every 5 s | – | {http['cpu_pct']:.2f} % | {http['rss_mib']:.1f} MiB |")
    per_run = (wf["rss_mib"] - http["rss_mib"]) * 1024 / max(wf["in_flight"], 1)
    lines.append("")
    lines.append(f"Memory per in-flight run (difference ÷ runs in flight): {per_run:.1f} KiB; CPU ratio {wf['cpu_pct'] / max(http['cpu_pct'], 1e-9):.2f}×.")
    lines.append("")
    mb = total / 1e6
    lines.append(f"**Uploads** (100 MB as parts, one at a time, fresh connection per part)")
    lines.append("")
    lines.append("| client | parts | time | throughput | peak RSS |")
    lines.append("|---|---|---|---|---|")
    lines.append(f"| curl -T (10 MB file) | 10 × 10 MB | {curl_s:.3f} s | {mb / curl_s:.0f} MB/s | |")
    for part_size, r in up.items():
        lines.append(f"| sloprobe | {part_size} parts | {r['seconds']:.3f} s | {mb / r['seconds']:.0f} MB/s | {r['rss_mib']:.1f} MiB |")
    text = "\n".join(lines)
    report("workflow", text, {"accuracy": acc, "workflow": wf, "http": http, "uploads": up, "curl_seconds": curl_s})


if __name__ == "__main__":
    main()
