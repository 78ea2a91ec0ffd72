"""An ASGI app that awaits before it answers.

``/`` awaits one turn of the loop: the body says how long the resumption took
(ms) and whether the loop knew which thread ran it. ``/brief`` awaits 1 ms
(a fast database or cache call). ``/hold`` awaits 1 s, saying HOLDING on
stdout as it starts. ``/never`` awaits for ever (for --timeout-response),
saying NEVER on stdout as it starts and NEVER CANCELLED when cancelled.
``/background`` answers at once and leaves a task awaiting for ever, which
says BACKGROUND CANCELLED when cancelled (at the server's stop).
``/threads`` awaits 0.5 s, then says how many threads the process has;
``/stream-later`` awaits, then streams three chunks (no Content-Length);
``/post-threads`` receives the request body whole, awaits 0.5 s, then says
the body's length and the process's thread count; ``/gone-first`` blocks
its first step 0.5 s (its client leaves meanwhile), then awaits and answers,
saying GONE FIRST ANSWERED on stdout."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any


async def _answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Any) -> list[bytes]:
    """The request body's pieces, as received."""
    out = []
    while True:
        m = await receive()
        out.append(m.get("body", b""))
        if not m.get("more_body"):
            return out


_background: set[asyncio.Task[None]] = set()


async def _forever() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("BACKGROUND CANCELLED", flush=True)
        raise


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            kind = m["type"].rsplit(".", 1)[-1]  # startup, shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    path = scope["path"]
    if path == "/brief":
        await asyncio.sleep(0.001)
        await _answer(send, b"brief")
        return
    if path == "/hold":
        print("HOLDING", flush=True)
        await asyncio.sleep(1.0)
        await _answer(send, b"held")
        return
    if path == "/threads":
        await asyncio.sleep(0.5)
        await _answer(send, str(len(os.listdir("/proc/self/task"))).encode())
        return
    if path == "/post-threads":
        size = sum(map(len, await _body(receive)))
        await asyncio.sleep(0.5)
        await _answer(send, b"%d %d" % (size, len(os.listdir("/proc/self/task"))))
        return
    if path == "/gone-first":
        time.sleep(0.5)  # blocks the loop's step: the client goes meanwhile
        await asyncio.sleep(0.01)
        await _answer(send, b"too late")
        print("GONE FIRST ANSWERED", flush=True)
        return
    if path == "/stream-later":
        await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/background":
        _background.add(asyncio.get_running_loop().create_task(_forever()))
        await _answer(send, b"started")
        return
    if path == "/never":
        print("NEVER", flush=True)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("NEVER CANCELLED", flush=True)
            raise
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
    await _answer(send, b"%.3f %d" % (gap_ms, owner))
