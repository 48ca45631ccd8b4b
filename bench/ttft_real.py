#!/usr/bin/env python3
"""TTFT and token counts beside the official SDKs, through a real LiteLLM proxy.

    python3 bench/ttft_real.py [--runs 30]

fakellm (PyPI) is the model server; LiteLLM (PyPI) proxies it as chat.completions, as a
Responses API (its bridge from an upstream without one) and as Anthropic Messages (its
bridge from chat.completions): the three streams tests/real_servers.rs checks. For each
format, sloprobe (`once`, the docs' example config) and the official SDK (`openai` or
`anthropic`, one process, a fresh client and connection per run, one warm-up run
discarded) stream the same request in interleaved blocks of 5. Reported: TTFT medians and
the token counts each reports. Needs `.venv-stream` (scripts/test.sh installs it).
Loopback only; every process is stopped (by process group).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from common import BIN, ROOT, Group, build, free_port, machine, report, wait_http

VENV = os.path.join(ROOT, ".venv-stream", "bin")
KEY = "sk-sloprobe-bench-master-key-0123456789"

SDK_LOOP = r'''
import json, sys, time
fmt, base, key, model, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
import openai, anthropic
def one():
    start = time.perf_counter(); ttft = None; usage = None
    if fmt == "openai-chat":
        c = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        for ch in c.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "Say hi"}]):
            if ttft is None and ch.choices and ch.choices[0].delta.content:
                ttft = time.perf_counter() - start
            if ch.usage:
                usage = [ch.usage.prompt_tokens, ch.usage.completion_tokens]
    elif fmt == "openai-responses":
        c = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        with c.responses.stream(model=model, input="Say hi") as s:
            for ev in s:
                if ttft is None and ev.type == "response.output_text.delta" and ev.delta:
                    ttft = time.perf_counter() - start
            u = s.get_final_response().usage
            usage = [u.input_tokens, u.output_tokens]
    else:
        c = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
        with c.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hi"}]) as s:
            for ev in s:
                if ttft is None and ev.type == "content_block_delta" and getattr(ev.delta, "text", ""):
                    ttft = time.perf_counter() - start
            u = s.get_final_message().usage
            usage = [u.input_tokens, u.output_tokens]
    c.close()
    return ttft, usage
one()
print(json.dumps([one() for _ in range(runs)]))
'''

CASES = [
    ("assistant-ttft", "openai-chat", "gpt-4o-mini"),
    ("assistant-responses", "openai-responses", "gpt-4.1-mini"),
    ("assistant-claude", "anthropic-messages", "claude-sonnet-4-5"),
]


def documented_probe(name):
    docs = open(os.path.join(ROOT, "docs", "config.md")).read()
    for block in docs.split("```toml\n")[1:]:
        block = block[:block.index("```")]
        if f'name = "{name}"' not in block:
            continue
        lines = [l[2:] if l.startswith("  ") else l for l in block.splitlines()]
        at = next(i for i, l in enumerate(lines) if f'name = "{name}"' in l)
        start = max(i for i in range(at) if lines[i] == "[[probe]]")
        end = next((i for i in range(at, len(lines)) if lines[i] == "[[probe]]"), len(lines))
        return "\n".join(lines[start:end]) + "\n"
    raise SystemExit(f"no example {name}")


def compare(tmp, base, env, name, fmt, model, runs, block, data):
    """sloprobe and the SDK on one format, interleaved; the table row."""
    path = os.path.join(tmp, f"{name}.toml")
    with open(path, "w") as f:
        f.write(documented_probe(name).replace("https://api.example.com", base))
    ours, theirs, our_tokens, their_tokens = [], [], set(), set()
    penv = {**os.environ, "OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY}
    for _ in range(runs // block):
        out = subprocess.run([BIN, "once", "-c", path, "--runs", str(block), "--format", "json"],
                             capture_output=True, text=True, env=penv)
        for line in out.stdout.splitlines():
            d = json.loads(line)
            if d.get("type") == "run" and d["success"]:
                ours.append(d["measurements"]["ttft"])
                our_tokens.add((d["measurements"].get("input_tokens"), d["measurements"]["output_tokens"]))
        out = subprocess.run([os.path.join(VENV, "python3"), "-c", SDK_LOOP, fmt, base, KEY, model, str(block)],
                             capture_output=True, text=True, check=True, env=env)
        for ttft, usage in json.loads(out.stdout):
            theirs.append(ttft)
            their_tokens.add(tuple(float(u) for u in usage))
    mo, mt = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    data[fmt] = {"sloprobe_ttft": ours, "sdk_ttft": theirs,
                 "sloprobe_tokens": sorted(our_tokens), "sdk_tokens": sorted(their_tokens)}

    def tokens(t):
        return ", ".join(f"{int(i)} in / {int(o)} out" for i, o in sorted(t))
    return (f"| {fmt} ({model}) | {len(ours)} / {len(theirs)} | {mo:.1f} | {mt:.1f} | {mo - mt:+.1f} | "
            f"{tokens(our_tokens)} | {tokens(their_tokens)} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    build()
    block = 5
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        fake_port, proxy_port = free_port(), free_port()
        cfg = open(os.path.join(ROOT, "tests", "servers", "litellm.yaml")).read()
        with open(os.path.join(tmp, "litellm.yaml"), "w") as f:
            f.write(cfg.replace("FAKELLM", f"127.0.0.1:{fake_port}"))
        env = {**os.environ, "LITELLM_MASTER_KEY": KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_PROXY": "*"}
        fake_args = [os.path.join(VENV, "fakellm"), "serve", "--host", "127.0.0.1", "--port", str(fake_port),
                     "--config", os.path.join(ROOT, "tests", "servers", "fakellm.yaml")]
        proxy_args = [os.path.join(VENV, "litellm"), "--config", "litellm.yaml", "--host", "127.0.0.1",
                      "--port", str(proxy_port)]
        with Group(fake_args, cwd=tmp), Group(proxy_args, cwd=tmp, env=env):
            base = f"http://127.0.0.1:{proxy_port}"
            wait_http(base + "/health/liveliness", tries=600)
            for name, fmt, model in CASES:
                rows.append(compare(tmp, base, env, name, fmt, model, a.runs, block, data))
    text = "\n".join([
        f"Machine: {machine()}. `python3 bench/ttft_real.py --runs {a.runs}`: LiteLLM "
        "proxy → fakellm, the docs' example configs; SDK = `openai` / `anthropic`, fresh client per run.",
        "",
        "| format | runs (ours / SDK) | sloprobe TTFT p50 (ms) | SDK TTFT p50 (ms) | difference | sloprobe tokens | SDK tokens |",
        "|---|---:|---:|---:|---:|---|---|",
        *rows,
    ])
    report("ttft_real", text, data)


if __name__ == "__main__":
    main()
