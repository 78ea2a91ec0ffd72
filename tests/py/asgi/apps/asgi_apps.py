"""Plain ASGI apps for the edge-case suite. Each prints what it saw to stdout
(one line, flushed), which the tests read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

INFLIGHT = 0  # streams being produced right now (a leak keeps this above 0)
BIG_SENT = 0  # bytes /big has got through send() so far
BIG_CHUNK = 256 * 1024
BIG_TOTAL = 128 * 1024 * 1024


def say(line: str) -> None:
    print(line, flush=True)


async def _start(send: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
                 ) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers or [(b"content-type", b"text/plain")]})


async def _body(send: Any, body: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _read_all(receive: Any) -> tuple[bytes, list[int]]:
    body, sizes = b"", []
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            raise ConnectionResetError("disconnected")
        body += m["body"]
        sizes.append(len(m["body"]))
        if not m.get("more_body"):
            return body, sizes


async def scope_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The scope as JSON (bytes as latin-1 text) and the body's length."""
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    body, _ = await _read_all(receive)

    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.decode("latin-1")
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    out = plain({k: v for k, v in scope.items()})
    out["body_len"] = len(body)
    out["loop"] = type(asyncio.get_running_loop()).__name__
    await _start(send, 200, [(b"content-type", b"application/json")])
    await _body(send, json.dumps(out).encode())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Routes by path: the edge cases."""
    global INFLIGHT
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    path = scope["path"]
    if path == "/json":
        await _start(send, 200, [(b"content-type", b"application/json")])
        await _body(send, b'{"message":"Hello, World!"}')
    elif path == "/echo":  # the body back as it arrives, with the sizes of the messages
        await _start(send, 200)
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                say("BODY DISCONNECT")
                return
            await _body(send, m["body"], True)
            if not m.get("more_body"):
                break
        await _body(send, b"")
    elif path == "/upload":  # count the body, report it
        try:
            body, sizes = await _read_all(receive)
        except ConnectionResetError:
            say("UPLOAD DISCONNECT")
            return
        await _start(send, 200)
        await _body(send, f"{len(body)} {max(sizes)}".encode())
    elif path == "/count":  # the body's length, nothing of it kept
        n = 0
        while True:
            m = await receive()
            n += len(m.get("body", b""))
            if not m.get("more_body"):
                break
        await _start(send, 200)
        await _body(send, str(n).encode())
    elif path == "/stream":  # a body streamed until the client goes away
        INFLIGHT += 1
        seen = asyncio.Event()

        async def watch() -> None:
            m = await receive()  # the (empty) request
            m = await receive()
            if m["type"] == "http.disconnect":
                seen.set()
        watcher = asyncio.ensure_future(watch())
        try:
            await _start(send, 200)
            n = 0
            while not seen.is_set() and n < 100000:
                await _body(send, b"x" * 1024 + b"\n", True)
                n += 1
                await asyncio.sleep(0.005)
            say("STREAM DISCONNECT SEEN" if seen.is_set() else "STREAM NOT STOPPED")
        finally:
            watcher.cancel()
            INFLIGHT -= 1
    elif path == "/big":  # far more than a client that does not read can take
        global BIG_SENT
        BIG_SENT = 0
        await _start(send, 200, [(b"content-length", str(BIG_TOTAL).encode())])
        chunk = b"b" * BIG_CHUNK
        for _ in range(BIG_TOTAL // BIG_CHUNK):
            await _body(send, chunk, True)
            BIG_SENT += len(chunk)
        await _body(send, b"")
        say("BIG DONE")
    elif path == "/executor":  # a job on the loop's default executor
        result = await asyncio.get_running_loop().run_in_executor(None, lambda: b"executor ok")
        await _start(send, 200)
        await _body(send, result)
    elif path == "/big-sent":
        await _start(send, 200)
        await _body(send, str(BIG_SENT).encode())
    elif path == "/file":  # this file, by http.response.pathsend
        assert "http.response.pathsend" in scope["extensions"]
        await _start(send, 200, [(b"content-type", b"text/x-python")])
        await send({"type": "http.response.pathsend", "path": __file__})
    elif path == "/inflight":
        await _start(send, 200)
        await _body(send, str(INFLIGHT).encode())
    elif path == "/chunks":  # several body messages, no length: chunked
        await _start(send, 200)
        for i in range(3):
            await _body(send, f"part{i};".encode(), True)
        await _body(send, b"")
    elif path == "/length":  # several messages with a Content-Length: not chunked
        await _start(send, 200, [(b"content-type", b"text/plain"), (b"content-length", b"10")])
        await _body(send, b"01234", True)
        await _body(send, b"56789")
    elif path == "/length-short":  # a Content-Length the body does not meet
        await _start(send, 200, [(b"content-length", b"100")])
        await _body(send, b"short")
    elif path == "/length-long":  # streamed past its Content-Length: send() raises
        await _start(send, 200, [(b"content-length", b"6")])
        await _body(send, b"0123", True)
        try:
            await _body(send, b"4567", True)
        except ValueError as e:
            say(f"LENGTH REFUSED {e}")
            raise
    elif path == "/headers":  # repeated headers, as given
        await _start(send, 201, [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"),
                                 (b"x-thing", b"yes"), (b"content-type", b"text/plain")])
        await _body(send, b"made")
    elif path == "/long-poll":  # waits for news, or for the client to go
        m = await receive()
        m = await receive()
        say(f"LONG POLL {m['type']}")
    elif path == "/never":  # never answers
        await asyncio.sleep(3600)
    elif path == "/raise-before":
        raise ValueError("raised-before-start")
    elif path == "/raise-after":
        await _start(send, 200)
        await _body(send, b"partial", True)
        raise ValueError("raised-after-start")
    elif path == "/no-response":
        return
    elif path == "/raise-after-whole":  # the whole response, then an exception
        await _start(send, 200)
        await _body(send, b"whole")
        raise ValueError("raised-after-whole")
    elif path == "/after-yield":  # the whole response from a later step
        await asyncio.sleep(0)
        await _start(send, 200)
        await _body(send, b"yielded")
    elif path == "/work-after-whole":  # the whole response, then work that waits
        await _start(send, 200)
        await _body(send, b"answered")
        await asyncio.sleep(0.5)
        say("WORK AFTER WHOLE done")
    else:
        await _start(send, 404)
        await _body(send, b"not found")


async def lifespan_fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        m = await receive()
        assert m["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed", "message": "database-unreachable"})
        return
    await _start(send, 200)
    await _body(send, b"should not serve")


async def lifespan_raises(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raises in its startup: with --lifespan on, a failure."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup-exploded")
    await _start(send, 200)
    await _body(send, b"served")
