"""Browser journeys: what a journey costs beyond the page's own time, beside the
single-page probe's overhead, and what exemplars cost a 1,000-probe scrape.

    python3 bench/journey.py [--runs 10] [--probes 1000]

Journey: the demo app's sign-in (type user, type password, click "Sign in" → dashboard,
wait for its first card after a 300 ms API call, mark, click "Recalculate" whose handler
blocks 100 ms, wait for its text). The page's own time is the first load, the settles
(the first page's and the last page's, `settle` each) and every step's measured duration
(which includes the page's work and the WebDriver command that drove it); the overhead
is what is left of the run: total − browser_start − load − settle − Σ steps (the last
page here is the dashboard, read before the "Recalculate" click, so it has no settle). The
single page (`/page`, the same settle) is measured the same way: total − browser_start −
load − settle. Screenshots and artifacts off, cold cache, `once --runs N`, one run.

Exemplars: one daemon with N http probes on the demo target (intervals 1–10 s, budgets
on ttfb so every probe has exemplars), scraped alternately as Prometheus text 0.0.4 (no
exemplars) and OpenMetrics (with them), 20 times each after a 20 s warm-up: the daemon's
CPU time per scrape (from /proc, the scrape's encoder thread included) and bytes.
Loopback only; every process started is stopped.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request

from common import BIN, Proc, build, cpu_seconds, free_port, machine, pct, report, wait_http

SETTLE = 0.3

JOURNEY_STEPS = """
[[probe.step]]
type = "#user"
value = "bench"
[[probe.step]]
type = "#password"
value = "bench-password"
[[probe.step]]
name = "sign_in"
click = "#sign-in"
[[probe.step]]
name = "stats"
wait_for = "#stats .card"
[[probe.step]]
mark = "first_content"
[[probe.step]]
name = "recalculate"
click = "#recalculate"
[[probe.step]]
name = "recalculated"
wait_for_text = "Recalculated"
"""

STEP_KEYS = ["type_1", "type_2", "sign_in", "stats", "recalculate", "recalculated"]


def once(toml, runs):
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml)
    out = subprocess.run([BIN, "once", "-c", f.name, "--runs", str(runs), "--format", "json"],
                         capture_output=True, text=True)
    os.unlink(f.name)
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    return [r["measurements"] for r in rows if r.get("type") == "run" and r.get("success")]


def probe(name, url, extra=""):
    return (f'[[probe]]\nname = "{name}"\nkind = "browser"\nurl = "{url}"\nevery = "1m"\n'
            f'timeout = "30s"\nsettle = "{int(SETTLE * 1000)}ms"\n{extra}\n')


def scrape(port, openmetrics):
    accept = "application/openmetrics-text;version=1.0.0" if openmetrics else "text/plain;version=0.0.4"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return body


def exemplar_cost(port, n):
    listen = free_port()
    toml = f'[server]\nlisten = "127.0.0.1:{listen}"\n'
    for i in range(n):
        toml += (f'[[probe]]\nname = "p{i}"\nkind = "http"\nurl = "http://127.0.0.1:{port}/"\n'
                 f'every = "{1 + i % 10}s"\n[probe.budget]\nttfb = "200ms"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml)
    result = {}
    with Proc([BIN, "run", "-c", f.name], env={**os.environ, "SLOPROBE_LOG": "error"}) as d:
        wait_http(f"http://127.0.0.1:{listen}/healthz")
        time.sleep(20)
        samples = {False: [], True: []}
        sizes = {False: 0, True: 0}
        for _ in range(20):
            for om in (False, True):
                c0 = cpu_seconds(d.pid)
                body = scrape(listen, om)
                # The encoder runs on its own thread, which is done when the body is.
                samples[om].append(cpu_seconds(d.pid) - c0)
                sizes[om] = len(body)
                if om:
                    result["exemplar_lines"] = body.count(b" # {trace_id=")
                time.sleep(0.5)
        result.update(
            text_cpu_ms=statistics.median(samples[False]) * 1000,
            om_cpu_ms=statistics.median(samples[True]) * 1000,
            text_bytes=sizes[False], om_bytes=sizes[True],
        )
    os.unlink(f.name)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--probes", type=int, default=1000)
    args = ap.parse_args()
    build()
    port = free_port()
    with Proc([BIN, "target", "--listen", f"127.0.0.1:{port}"]):
        wait_http(f"http://127.0.0.1:{port}/")
        page_url = f"http://127.0.0.1:{port}/page?lcp_delay=0&js_kb=64&css_kb=8"
        page = once(probe("page", page_url), args.runs + 1)[1:]
        # The same page without traceparent: what holding each request in DevTools costs.
        untraced = once(probe("page", page_url, "trace_context = false"), args.runs + 1)[1:]
        journey = once(probe("journey", f"http://127.0.0.1:{port}/app/login?api_delay=300&handler=100", JOURNEY_STEPS),
                       args.runs + 1)[1:]
        ex = exemplar_cost(port, args.probes)
    over_page = [m["total"] - m["browser_start"] - m["load"] - SETTLE for m in page]
    steps = [sum(m[k] for k in STEP_KEYS) for m in journey]
    over_journey = [m["total"] - m["browser_start"] - m["load"] - SETTLE - s for m, s in zip(journey, steps)]
    over_untraced = [m["total"] - m["browser_start"] - m["load"] - SETTLE for m in untraced]
    per_action = [o / 4 for o in over_journey]
    med = statistics.median
    data = {"machine": machine(), "page": page, "untraced": untraced, "journey": journey, "exemplars": ex}
    text = f"""## Browser journeys and exemplars (`bench/journey.py`)

{machine()}; {len(page)} single-page and {len(journey)} journey runs (cold, settle {int(SETTLE * 1000)} ms, first run of each left out), one run of the script.

| | median | p95 |
|---|---|---|
| single page: overhead beyond the page | {med(over_page) * 1000:.0f} ms | {pct(over_page, 95) * 1000:.0f} ms |
| single page, `trace_context = false` (no request held for `traceparent`) | {med(over_untraced) * 1000:.0f} ms | {pct(over_untraced, 95) * 1000:.0f} ms |
| single page: load event, traced / untraced | {med([m['load'] for m in page]) * 1000:.0f} / {med([m['load'] for m in untraced]) * 1000:.0f} ms | |
| journey (4 actions, 2 waits, a mark, 2 pages): overhead beyond the page's own time | {med(over_journey) * 1000:.0f} ms | {pct(over_journey, 95) * 1000:.0f} ms |
| journey overhead per action step | {med(per_action) * 1000:.0f} ms | |
| journey: the steps' own time (Σ step durations) | {med(steps) * 1000:.0f} ms | |
| `first_content` (click "Sign in" → first card; API 300 ms) | {med([m['first_content'] for m in journey]) * 1000:.0f} ms | {pct([m['first_content'] for m in journey], 95) * 1000:.0f} ms |
| lab INP (handler blocks 100 ms) | {med([m['inp'] for m in journey]) * 1000:.0f} ms | {pct([m['inp'] for m in journey], 95) * 1000:.0f} ms |

| {args.probes} http probes, one scrape | Prometheus text 0.0.4 | OpenMetrics with exemplars |
|---|---|---|
| daemon CPU per scrape (median of 20; /proc's 10 ms ticks) | {ex['text_cpu_ms']:.1f} ms | {ex['om_cpu_ms']:.1f} ms ({ex['om_cpu_ms'] / max(ex['text_cpu_ms'], 1e-9):.2f}×) |
| bytes | {ex['text_bytes']:,} | {ex['om_bytes']:,} ({ex['om_bytes'] / ex['text_bytes']:.2f}×) |
| exemplars in the scrape | 0 | {ex.get('exemplar_lines', 0):,} |
"""
    report("journey", text, data)


if __name__ == "__main__":
    main()
