#!/usr/bin/env python3
"""Socket.IO and graphql-transport-ws round trips beside the protocols' own Python clients,
against real servers (tests/servers: python-socketio on aiohttp, strawberry on uvicorn).

    python3 bench/realtime_real.py [--runs 60]

Socket.IO: the time from emitting `subscribe` to the server's `subscribed` event, timed by
sloprobe (the docs' example steps, its `subscribe` measure) and by python-socketio's
AsyncClient (websocket transport only), a fresh connection per run. GraphQL: from
`subscribe` to the first `next`, timed by sloprobe and by a hand-driven `websockets` client
speaking graphql-transport-ws. Interleaved in blocks of 10. Needs `.venv-stream`
(scripts/test.sh installs it). Loopback only; every process is stopped.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

from common import BIN, ROOT, Group, build, free_port, machine, report, wait_port

VENV = os.path.join(ROOT, ".venv-stream", "bin")

SIO_CLIENT = r'''
import asyncio, json, sys, time
import socketio
async def one(url):
    c = socketio.AsyncClient(reconnection=False)
    got = asyncio.get_running_loop().create_future()
    c.on("subscribed", lambda *a: got.done() or got.set_result(time.perf_counter()))
    await c.connect(url, transports=["websocket"])
    t = time.perf_counter()
    await c.emit("subscribe", "orders")
    done = await asyncio.wait_for(got, 5)
    await c.disconnect()
    return done - t
async def main(url, n):
    print(json.dumps([await one(url) for _ in range(n)]))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
'''

GQL_CLIENT = r'''
import asyncio, json, sys, time
import websockets
async def one(url):
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], compression=None) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        while json.loads(await ws.recv())["type"] != "connection_ack":
            pass
        t = time.perf_counter()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "subscription { orders { id } }"}}))
        while json.loads(await ws.recv())["type"] != "next":
            pass
        return time.perf_counter() - t
async def main(url, n):
    print(json.dumps([await one(url) for _ in range(n)]))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
'''

SIO_PROBE = """[[probe]]
name = "sio"
kind = "websocket"
url = "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
every = "1m"
timeout = "5s"
[[probe.step]]
send = "40"
expect = {{ regex = "^40" }}
measure = "connect_ack"
[[probe.step]]
send = '42["subscribe","orders"]'
expect = {{ regex = '^42\\["subscribed"' }}
measure = "subscribe"
"""

GQL_PROBE = """[[probe]]
name = "gql"
kind = "websocket"
url = "ws://127.0.0.1:{port}/graphql"
subprotocols = ["graphql-transport-ws"]
every = "1m"
timeout = "5s"
[[probe.step]]
send = '{{"type":"connection_init"}}'
expect = {{ pointer = "/type", equals = "connection_ack" }}
measure = "ack"
[[probe.step]]
send = '{{"id":"1","type":"subscribe","payload":{{"query":"subscription {{ orders {{ id }} }}"}}}}'
expect = {{ pointer = "/type", equals = "next" }}
measure = "subscribe"
"""


def once(cfg, n):
    out = subprocess.run([BIN, "once", "-c", cfg, "--runs", str(n), "--format", "json"], capture_output=True, text=True)
    return [json.loads(l)["measurements"]["subscribe"] for l in out.stdout.splitlines()
            if '"type":"run"' in l and '"success":true' in l]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=60)
    a = ap.parse_args()
    build()
    block = 10
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, script, probe, client, path in [
            ("Socket.IO (python-socketio 5.18)", "socketio_server.py", SIO_PROBE, SIO_CLIENT,
             "/"),
            ("graphql-transport-ws (strawberry 0.341)", "graphql_ws_server.py", GQL_PROBE, GQL_CLIENT,
             "/graphql"),
        ]:
            port = free_port()
            script_path = os.path.join(ROOT, "tests", "servers", script)
            with Group([os.path.join(VENV, "python3"), script_path, str(port)]):
                wait_port(port)
                cfg = os.path.join(tmp, "p.toml")
                with open(cfg, "w") as f:
                    f.write(probe.format(port=port))
                scheme = "http" if script.startswith("socketio") else "ws"
                url = f"{scheme}://127.0.0.1:{port}{path}"
                ours, theirs = [], []
                for _ in range(a.runs // block):
                    ours += once(cfg, block)
                    out = subprocess.run([os.path.join(VENV, "python3"), "-c", client, url, str(block)],
                                         capture_output=True, text=True, check=True)
                    theirs += json.loads(out.stdout)
            data[name] = {"sloprobe": ours, "client": theirs}
            m = lambda v: statistics.median(v) * 1000
            p95 = lambda v: sorted(v)[int(len(v) * 0.95) - 1] * 1000
            rows.append(f"| {name} | {len(ours)} / {len(theirs)} | {m(ours):.3f} | {p95(ours):.3f} | "
                        f"{m(theirs):.3f} | {p95(theirs):.3f} |")
    text = "\n".join([
        f"Machine: {machine()}. `python3 bench/realtime_real.py --runs {a.runs}`: subscribe → first answer, "
        "fresh connection per run; client = python-socketio's AsyncClient / a `websockets` graphql-transport-ws client.",
        "",
        "| server | runs (ours / client) | sloprobe p50 (ms) | p95 (ms) | client p50 (ms) | p95 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ])
    report("realtime_real", text, data)


if __name__ == "__main__":
    main()
