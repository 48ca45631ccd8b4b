#!/usr/bin/env python3
"""RUM collector throughput and memory (issue 11).

wrk (Debian) posts a realistic web-vitals beacon (the batch `sloprobe rum snippet` sends:
five metrics, a fresh id per request) to the collector's /rum and, in the same run with the
same connections and duration, to nginx (Debian) answering 204 to the same request. Then a
fresh collector takes a 10,000-distinct-URL flood and its RSS growth is read.

The collector's rate limits are raised for the throughput runs (the default, 50/s with a
burst of 100, would answer 429 to nearly everything); every other check runs: origin, body
cap, parsing, validation, route labels, dedupe, telemetry.

Usage: bench/rum.py [--duration 10] [--connections 32]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

from common import BIN, Proc, build, free_port, machine, memory_kb, report, wait_http

ORIGIN = "https://app.example.com"

LUA = r"""
local n = 0
local tid = math.random(1, 1e9)
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
wrk.headers["Origin"] = "%s"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
request = function()
  n = n + 1
  local id = tid .. "-" .. n
  local body = '[{"name":"TTFB","value":212.4,"rating":"good","delta":212.4,"id":"v5-1732400000000-' .. id .. 'a","navigationType":"navigate","url":"https://app.example.com/orders/' .. (n %% 500) .. '?ref=mail","pageId":"' .. id .. '"},'
    .. '{"name":"FCP","value":804.1,"rating":"good","delta":804.1,"id":"v5-1732400000000-' .. id .. 'b","navigationType":"navigate","url":"https://app.example.com/orders/' .. (n %% 500) .. '?ref=mail","pageId":"' .. id .. '"},'
    .. '{"name":"LCP","value":1640.8,"rating":"good","delta":1640.8,"id":"v5-1732400000000-' .. id .. 'c","navigationType":"navigate","url":"https://app.example.com/orders/' .. (n %% 500) .. '?ref=mail","pageId":"' .. id .. '"},'
    .. '{"name":"CLS","value":0.042,"rating":"good","delta":0.042,"id":"v5-1732400000000-' .. id .. 'd","navigationType":"navigate","url":"https://app.example.com/orders/' .. (n %% 500) .. '?ref=mail","pageId":"' .. id .. '"},'
    .. '{"name":"INP","value":96,"rating":"good","delta":96,"id":"v5-1732400000000-' .. id .. 'e","navigationType":"navigate","url":"https://app.example.com/orders/' .. (n %% 500) .. '?ref=mail","pageId":"' .. id .. '"}]'
  return wrk.format(nil, "/rum", nil, body)
end
""" % ORIGIN

NGINX = """
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /rum {{ return 204; }}
  }}
}}
"""


def collector_config(mport, rport, fast):
    limits = "rate = 1000000\nburst = 1000000\nper_client_rate = 1000000\n" if fast else ""
    return f"""location = "bench"
[server]
listen = "127.0.0.1:{mport}"
[rum]
listen = "127.0.0.1:{rport}"
allowed_origins = ["{ORIGIN}"]
{limits}[[rum.route]]
pattern = "/orders/:id"
[rum.budget]
lcp = "2.5s"
inp = "200ms"
cls = 0.1
"""


def wrk(url, script, duration, connections):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True, timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def post(port, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/rum", data=body.encode(), method="POST",
        headers={"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def word(n):
    w = ""
    while True:
        w = chr(97 + n % 26) + w
        n //= 26
        if n == 0:
            return w


def flood_rss(tmp):
    """RSS before and after 10,000 distinct URLs (default limits raised, defaults else)."""
    mport, rport = free_port(), free_port()
    cfg = os.path.join(tmp, "flood.toml")
    with open(cfg, "w") as f:
        f.write(collector_config(mport, rport, True).replace("[[rum.route]]", 'flush_after = "1s"\n[[rum.route]]'))
    with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "warn"}) as d:
        wait_http(f"http://127.0.0.1:{rport}/healthz")
        for i in range(200):
            post(rport, json.dumps({"name": "LCP", "value": 1000 + i, "id": f"w{i}", "url": "/warm", "pageId": f"w{i}"}))
        time.sleep(2.5)
        before = memory_kb(d.pid)["VmRSS"]
        for i in range(0, 10_000, 20):
            batch = [
                {"name": "LCP", "value": j % 3000, "id": f"f{j}", "url": f"https://app.example.com/shop/{word(j)}?q={j}", "pageId": f"p{j}"}
                for j in range(i, i + 20)
            ]
            post(rport, json.dumps(batch))
        time.sleep(2.5)
        after = memory_kb(d.pid)["VmRSS"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
        routes = re.search(r"^rum_routes\{[^}]*\} (\d+)", metrics, re.M)
        return before, after, int(routes.group(1)) if routes else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    build()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write(LUA)
        nport = free_port()
        ndir = os.path.join(tmp, "nginx")
        os.makedirs(ndir)
        with open(os.path.join(ndir, "nginx.conf"), "w") as f:
            f.write(NGINX.format(dir=ndir, port=nport))
        mport, rport = free_port(), free_port()
        cfg = os.path.join(tmp, "rum.toml")
        with open(cfg, "w") as f:
            f.write(collector_config(mport, rport, True))
        results = {}
        with Proc(["nginx", "-p", ndir, "-c", os.path.join(ndir, "nginx.conf"), "-g", "daemon off;"]):
            with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "warn"}) as d:
                wait_http(f"http://127.0.0.1:{rport}/healthz")
                time.sleep(0.5)
                # Warm both, then measure each twice, alternating.
                wrk(f"http://127.0.0.1:{nport}/rum", script, 2, args.connections)
                wrk(f"http://127.0.0.1:{rport}/rum", script, 2, args.connections)
                for rnd in range(2):
                    results[f"nginx_{rnd}"] = wrk(f"http://127.0.0.1:{nport}/rum", script, args.duration, args.connections)
                    results[f"sloprobe_{rnd}"] = wrk(f"http://127.0.0.1:{rport}/rum", script, args.duration, args.connections)
                results["sloprobe_rss_kb_after_load"] = memory_kb(d.pid)["VmRSS"]
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
                accepted = re.search(r'^rum_beacons_total\{endpoint="/rum",[^}]*outcome="accepted"\} (\d+)', metrics, re.M)
                results["accepted_beacons"] = int(accepted.group(1)) if accepted else 0
        before, after, routes = flood_rss(tmp)
        results["flood"] = {"rss_before_kb": before, "rss_after_kb": after, "routes": routes}

    best = lambda name: max((results[f"{name}_{r}"] for r in range(2)), key=lambda x: x["rps"])
    n, s = best("nginx"), best("sloprobe")
    ratio = s["rps"] / n["rps"]
    grown = (after - before) / 1024
    text = f"""### RUM collector vs nginx (bench/rum.py)

{machine()}; wrk -t2 -c{args.connections}, {args.duration} s per run, best of two alternating runs;
a 5-metric web-vitals beacon (~1.5 KB, fresh ids per request) POSTed to /rum.

| | requests/s | p50 | p99 | non-2xx |
|---|---|---|---|---|
| nginx `return 204` | {n['rps']:.0f} | {n['p50_ms']:.2f} ms | {n['p99_ms']:.2f} ms | {n['non_2xx']} |
| sloprobe /rum | {s['rps']:.0f} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | {s['non_2xx']} |

- Throughput: **{ratio:.2f}× nginx** (goal ≥ 0.5×); p99 **{s['p99_ms']:.2f} ms** (goal ≤ 5 ms).
- Beacons accepted and recorded during the runs: {results['accepted_beacons']}; RSS after the load {results['sloprobe_rss_kb_after_load'] / 1024:.1f} MiB.
- 10,000 distinct URLs: RSS {before / 1024:.1f} → {after / 1024:.1f} MiB (**+{grown:.1f} MiB**, goal ≤ 10 MB); route labels in use: {routes} (max_routes 200).
"""
    report("rum", text, results)


if __name__ == "__main__":
    main()
