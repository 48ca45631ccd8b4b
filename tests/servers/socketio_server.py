"""A python-socketio server (aiohttp) for tests/real_servers.rs: Engine.IO heartbeats every
second with a one-second timeout, so a client that does not answer `2` with `3` is dropped
after about two seconds; `subscribe` is acknowledged with `subscribed`, and an `order` is
pushed 3.5 s later.

    socketio_server.py PORT
"""
import asyncio
import sys

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1)
app = web.Application()
sio.attach(app)


@sio.event
async def subscribe(sid, topic):
    await sio.emit("subscribed", topic, to=sid)

    async def later():
        await asyncio.sleep(3.5)
        await sio.emit("order", {"id": 1, "topic": topic}, to=sid)

    sio.start_background_task(later)


web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
