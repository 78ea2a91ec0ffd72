"""An ASGI app that awaits once before it answers: the body says how long
the resumption took (ms) and whether the loop knew which thread ran it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            kind = m["type"].rsplit(".", 1)[-1]  # startup, shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    loop = asyncio.get_running_loop()
    # asyncio's debug mode checks this on every call_soon
    owner = getattr(loop, "_thread_id", None) == threading.get_ident()
    t0 = time.monotonic()
    # resumed only by a turn of the loop (a bare sleep(0) may resume at once)
    woken = loop.create_future()
    loop.call_soon(woken.set_result, None)
    await woken
    gap_ms = (time.monotonic() - t0) * 1000
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"%.3f %d" % (gap_ms, owner)})
