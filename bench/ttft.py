#!/usr/bin/env python3
"""TTFT accuracy of the assistant probe against the demo target's streaming LLM routes,
where the first token is injected at a known delay after the response head.

    python3 bench/ttft.py [--runs 50] [--first 200] [--gap 20] [--tokens 20]

Reports, per wire format, measured ttft minus the injected delay (what the probe adds or
loses), and tpot minus the injected gap. Loopback only.
"""
import argparse
import json
import os
import subprocess
import tempfile

from common import report, BIN, Proc, build, free_port, machine, pct, wait_http

FORMATS = ["openai-chat", "openai-responses", "anthropic-messages", "sse", "chunked"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--first", type=int, default=200)
    ap.add_argument("--gap", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=20)
    a = ap.parse_args()
    build()
    port = free_port()
    rows, summary = [], {}
    with tempfile.TemporaryDirectory() as d, Proc([BIN, "target", "--listen", f"127.0.0.1:{port}"]):
        wait_http(f"http://127.0.0.1:{port}/")
        for fmt in FORMATS:
            url = f"http://127.0.0.1:{port}/llm/{fmt}?first={a.first}&gap={a.gap}&tokens={a.tokens}"
            cfg = os.path.join(d, "a.toml")
            with open(cfg, "w") as f:
                f.write(f'[[probe]]\nname = "t"\nkind = "assistant"\nformat = "{fmt}"\nurl = "{url}"\n'
                        f"body = '{{\"model\":\"m\",\"stream\":true}}'\nevery = \"60s\"\ntimeout = \"30s\"\n")
            r = subprocess.run([BIN, "once", "-c", cfg, "--runs", str(a.runs), "--format", "json"],
                               capture_output=True, text=True)
            runs = [json.loads(l) for l in r.stdout.splitlines() if '"type":"run"' in l]
            assert all(x["success"] for x in runs), r.stdout[:500]
            err = [(x["measurements"]["ttft"] - a.first / 1000) * 1000 for x in runs]
            after_head = [(x["measurements"]["ttft"] - x["measurements"]["ttfb"]) * 1000 for x in runs]
            tpot = [(x["measurements"]["tpot"] - a.gap / 1000) * 1000 for x in runs]
            tokens_ok = all(x["measurements"]["output_tokens"] == a.tokens for x in runs)
            s = {"ttft_minus_injected_p50_ms": pct(err, 50), "ttft_minus_injected_p95_ms": pct(err, 95),
                 "ttft_minus_ttfb_p50_ms": pct(after_head, 50), "tpot_minus_gap_p50_ms": pct(tpot, 50),
                 "tokens_exact": tokens_ok, "n": len(runs)}
            summary[fmt] = s
            rows.append(f"| {fmt} | {s['ttft_minus_injected_p50_ms']:+.3f} | {s['ttft_minus_injected_p95_ms']:+.3f} | "
                        f"{s['ttft_minus_ttfb_p50_ms'] - a.first:+.3f} | {s['tpot_minus_gap_p50_ms']:+.3f} | "
                        f"{'yes' if tokens_ok else 'NO'} |")
    text = "\n".join([
        f"machine: {machine()}; {a.runs} runs per format; first token injected {a.first} ms after the head, "
        f"then {a.tokens} tokens {a.gap} ms apart",
        "",
        "| format | ttft − injected, p50 (ms) | p95 (ms) | (ttft − ttfb) − injected, p50 (ms) | tpot − gap, p50 (ms) | token count exact |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    report("ttft", text, summary)


if __name__ == "__main__":
    main()
