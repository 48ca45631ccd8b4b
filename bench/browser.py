"""Browser probe: vitals beside an independent in-page reading and Lighthouse, overhead,
wall time, Chromium memory, and processes left after 100 runs.

    python3 bench/browser.py [--runs 10] [--lighthouse-runs 3]

Needs chromium + chromium-driver (Debian) and Lighthouse 11 from npm, installed here under
.cache/lighthouse (`npm install lighthouse@11`, as scripts/test.sh does), run with CHROME_PATH=/usr/bin/chromium.

On demo pages with an LCP image delayed by D ms and a layout shift of known score, in one
run, page by page:
- sloprobe (`once --runs N`, cold cache, settle 500 ms);
- a bare PerformanceObserver script driven over WebDriver by this script (its own
  chromedriver, a fresh Chromium session per run, normal page load strategy, the same
  settle), reading LCP, FCP and CLS: the independent in-page reading;
- Lighthouse (navigation mode, desktop, `--throttling-method=provided`: observed, not
  simulated, timings).
Overhead is a sloprobe run's wall time beyond the page itself: total − browser_start (slot
wait and tab preparation, which happen between runs in the daemon) − load − settle.
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

from common import BIN, ROOT, Proc, build, free_port, machine, pct, report, wait_http

LIGHTHOUSE = os.path.join(ROOT, ".cache", "lighthouse", "node_modules", ".bin", "lighthouse")
SETTLE = 0.5
PAGES = [
    ("LCP image at 0 ms, shift 0.05, 64 KiB JS", "lcp_delay=0&shift=0.05&js_kb=64&css_kb=8", 0.0, 0.05),
    ("LCP image at 300 ms, shift 0.1", "lcp_delay=300&shift=0.1&js_kb=64", 0.3, 0.1),
    ("LCP image at 1000 ms, shift 0.02", "lcp_delay=1000&shift=0.02", 1.0, 0.02),
]


def ensure_lighthouse():
    if not os.path.exists(LIGHTHOUSE):
        d = os.path.dirname(os.path.dirname(os.path.dirname(LIGHTHOUSE)))
        os.makedirs(d, exist_ok=True)
        subprocess.run(["npm", "init", "-y"], cwd=d, check=True, capture_output=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "lighthouse@11"], cwd=d, check=True)


def chromium_processes():
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            continue
        if state not in "ZX" and "chrom" in exe:
            n += 1
    return n


def sloprobe_runs(url, runs, cache="cold", settle=SETTLE):
    toml = (
        f'[[probe]]\nname = "page"\nkind = "browser"\nurl = "{url}"\nevery = "1m"\ntimeout = "30s"\n'
        f'settle = "{int(settle * 1000)}ms"\ncache = "{cache}"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml)
    t = time.monotonic()
    out = subprocess.run([BIN, "once", "-c", f.name, "--runs", str(runs), "--format", "json"], capture_output=True, text=True)
    wall = time.monotonic() - t
    os.unlink(f.name)
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    return [r["measurements"] for r in rows if r.get("type") == "run" and r.get("success")], wall


class Driver:
    """Our own chromedriver and plain W3C WebDriver calls: the independent reading."""

    def __init__(self):
        self.port = free_port()
        self.proc = Proc(["chromedriver", f"--port={self.port}"], start_new_session=True)
        wait_http(f"http://127.0.0.1:{self.port}/status")

    def call(self, method, path, body=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["value"]

    def reading(self, url, profile):
        args = ["--headless=new", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-sandbox", "--window-size=1350,940",
                f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}}
        s = self.call("POST", "/session", caps)["sessionId"]
        try:
            self.call("POST", f"/session/{s}/url", {"url": url})  # waits for load
            time.sleep(SETTLE)
            script = """
const done = arguments[arguments.length - 1];
const out = {lcp: null, cls: 0};
new PerformanceObserver((l) => { const e = l.getEntries(); out.lcp = e[e.length - 1].startTime; })
  .observe({type: 'largest-contentful-paint', buffered: true});
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput) out.cls += e.value; })
  .observe({type: 'layout-shift', buffered: true});
setTimeout(() => { const f = performance.getEntriesByName('first-contentful-paint')[0]; out.fcp = f ? f.startTime : null; done(out); }, 50);
"""
            v = self.call("POST", f"/session/{s}/execute/async", {"script": script, "args": []})
            return {"lcp": v["lcp"] / 1000, "fcp": v["fcp"] / 1000, "cls": v["cls"]}
        finally:
            self.call("DELETE", f"/session/{s}")


def lighthouse_run(url):
    env = dict(os.environ, CHROME_PATH="/usr/bin/chromium")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    t = time.monotonic()
    subprocess.run(
        [LIGHTHOUSE, url, "--output=json", f"--output-path={path}", "--quiet",
         "--chrome-flags=--headless=new --no-sandbox --disable-gpu --window-size=1350,940",
         "--only-categories=performance", "--throttling-method=provided", "--form-factor=desktop",
         "--screenEmulation.disabled"],
        env=env, capture_output=True, timeout=180,
    )
    wall = time.monotonic() - t
    with open(path) as f:
        d = json.load(f)
    os.unlink(path)
    a = d["audits"]
    if d.get("runtimeError"):
        return None, wall
    return {
        "lcp": a["largest-contentful-paint"]["numericValue"] / 1000,
        "fcp": a["first-contentful-paint"]["numericValue"] / 1000,
        "cls": a["cumulative-layout-shift"]["numericValue"],
    }, wall


def med(values):
    return statistics.median(values) if values else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--lighthouse-runs", type=int, default=3)
    args = ap.parse_args()
    build()
    ensure_lighthouse()
    before = chromium_processes()
    port = free_port()
    data = {"machine": machine(), "pages": []}
    rows = []
    with Proc([BIN, "target", "--listen", f"127.0.0.1:{port}"]):
        wait_http(f"http://127.0.0.1:{port}/")
        driver = Driver()
        with driver.proc, tempfile.TemporaryDirectory() as tmp:
            for name, query, delay, shift in PAGES:
                url = f"http://127.0.0.1:{port}/page?{query}"
                ours, wall = sloprobe_runs(url, args.runs)
                bare = [driver.reading(url, os.path.join(tmp, f"p{i}-{time.monotonic_ns()}")) for i in range(args.runs)]
                lh = [lighthouse_run(url) for _ in range(args.lighthouse_runs)]
                lh_ok = [r for r, _ in lh if r]
                page = {
                    "page": name, "delay": delay, "shift": shift,
                    "sloprobe": ours, "bare": bare, "lighthouse": lh_ok,
                    "lighthouse_wall": [w for _, w in lh], "sloprobe_wall": wall,
                }
                data["pages"].append(page)
                lcp_o = [m["lcp"] for m in ours]
                lcp_b = [b["lcp"] for b in bare]
                rows.append(
                    f"| {name} | {delay * 1000:.0f} | {min(lcp_o) * 1000:.0f} | {med(lcp_o) * 1000:.0f} | {med(lcp_b) * 1000:.0f} | "
                    f"{(med(lcp_o) - med(lcp_b)) * 1000:+.1f} | {med([r['lcp'] for r in lh_ok]) * 1000:.0f} | "
                    f"{med([m['fcp'] for m in ours]) * 1000:.0f} / {med([b['fcp'] for b in bare]) * 1000:.0f} / {med([r['fcp'] for r in lh_ok]) * 1000:.0f} | "
                    f"{shift} | {med([m['cls'] for m in ours]):.4f} / {med([b['cls'] for b in bare]):.4f} / {med([r['cls'] for r in lh_ok]):.4f} |"
                )
            # Overhead, cold and warm, on the first page; the warm-up load of a warm run
            # is taken as the median cold load of the same page.
            url = f"http://127.0.0.1:{port}/page?{PAGES[0][1]}"
            cold, _ = sloprobe_runs(url, args.runs * 2)
            warm, _ = sloprobe_runs(url, args.runs * 2, cache="warm")
            cold_load = med([m["load"] for m in cold[1:]])
            over_cold = [m["total"] - m["browser_start"] - m["load"] - SETTLE for m in cold[1:]]
            over_warm = [m["total"] - m["browser_start"] - m["load"] - cold_load - SETTLE for m in warm[1:]]
            start_first = cold[0]["browser_start"]
            start_next = med([m["browser_start"] for m in cold[1:]])
            pss = med([m["memory"] for m in cold]) / 2**20
            # 100 runs, then count what is left (this script's own chromedriver excluded).
            before = chromium_processes()
            t = time.monotonic()
            hundred, _ = sloprobe_runs(url, 100, settle=0.1)
            hundred_wall = time.monotonic() - t
            time.sleep(1)
            left = chromium_processes() - before
            lh_before = chromium_processes()
            for _ in range(args.lighthouse_runs):
                lighthouse_run(url)
            time.sleep(1)
            lh_left = chromium_processes() - lh_before
    data.update(over_cold=over_cold, over_warm=over_warm, start_first=start_first, start_next=start_next,
                pss_mib=pss, hundred_ok=len(hundred), hundred_wall=hundred_wall, left=left, lh_left=lh_left)
    lh_wall = med([w for p in data["pages"] for w in p["lighthouse_wall"]])
    our_wall = med([m["total"] for p in data["pages"] for m in p["sloprobe"][1:]])
    text = f"""## Browser probe: vitals, overhead, memory, processes (`bench/browser.py`)

{machine()}; Chromium {subprocess.run(['chromium', '--version'], capture_output=True, text=True).stdout.strip()}, Lighthouse {json.load(open(os.path.join(os.path.dirname(os.path.dirname(LIGHTHOUSE)), 'lighthouse', 'package.json')))['version']}; {args.runs} sloprobe runs and {args.runs} bare in-page readings per page, {args.lighthouse_runs} Lighthouse runs per page, all cold, in one run.

| page | injected LCP delay (ms) | sloprobe LCP min (ms) | sloprobe LCP median | bare PerformanceObserver median | difference (ms) | Lighthouse LCP median | FCP median, sloprobe / bare / Lighthouse (ms) | injected shift | CLS median, sloprobe / bare / Lighthouse |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

| | sloprobe | Lighthouse |
|---|---|---|
| wall time per run (median) | {our_wall:.2f} s | {lh_wall:.2f} s ({lh_wall / our_wall:.0f}×) |
| overhead beyond the page, cold (median / p95) | {med(over_cold) * 1000:.0f} / {pct(over_cold, 95) * 1000:.0f} ms | |
| overhead beyond the page, warm (median / p95) | {med(over_warm) * 1000:.0f} / {pct(over_warm, 95) * 1000:.0f} ms | |
| tab ready (`browser_start`): first run (Chromium launch) / later runs back to back | {start_first * 1000:.0f} / {start_next * 1000:.0f} ms | |
| Chromium PSS per run (median, whole browser) | {pss:.0f} MiB | |
| 100 runs: succeeded, wall time | {len(hundred)}, {hundred_wall:.1f} s | |
| Chromium/chromedriver processes left afterwards | {left} | {lh_left} (after {args.lighthouse_runs} runs) |
"""
    report("browser", text, data)


if __name__ == "__main__":
    main()
