"""A bare ASGI app with WebSocket routes, for test_asgi_websocket.py; what
the app hears at the end of a connection is printed for the test to see."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def say(line: str) -> None:
    """One write a line: lines of several threads never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    assert scope["type"] == "websocket"
    path = scope["path"][len(scope["root_path"]):]  # the path includes the mount point
    handler = ROUTES.get(path)
    if handler is None:
        await send({"type": "websocket.close", "code": 1000})
        return
    await handler(scope, receive, send)


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Echo; a text "close CODE REASON" makes the server close with it."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            say(f"DISCONNECT {scope['query_string'].decode()} {message['code']}")
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except OSError as e:  # ASGI 2.4: a send on a closed WebSocket raises
                say(f"SEND AFTER CLOSE {type(e).__name__}")
            return
        text = message.get("text")
        if text is not None and text.startswith("close "):
            _, code, reason = text.split(" ", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            after = await receive()
            say(f"AFTER CLOSE {after['type']} {after.get('code')}")
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def info(scope: Scope, receive: Any, send: Any) -> None:
    """Accept with a subprotocol of the client's and a header; send the scope."""
    await receive()
    offered = scope["subprotocols"]
    chosen = next((p for p in ("chat.v2", "chat.v1") if p in offered), None)
    await send({"type": "websocket.accept", "subprotocol": chosen,
                "headers": [(b"x-served-by", b"asgi-ws")]})
    keys = ("type", "scheme", "path", "raw_path", "query_string", "root_path", "subprotocols",
            "http_version")
    out = {k: (scope[k].decode() if isinstance(scope[k], bytes) else scope[k]) for k in keys}
    out["asgi"] = scope["asgi"]
    out["client"] = list(scope["client"])
    out["server"] = list(scope["server"])
    out["state"] = scope["state"]
    out["extensions"] = sorted(scope["extensions"])
    out["headers"] = {k.decode(): v.decode() for k, v in scope["headers"]}
    await send({"type": "websocket.send", "text": json.dumps(out)})
    await receive()


async def deny(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.close"})


async def custom_denial(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Token")]})
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"token"})


async def boom(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    raise RuntimeError(f"boom after {message.get('text')}")


async def boom_early(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    raise RuntimeError("boom before accept")


async def done(scope: Scope, receive: Any, send: Any) -> None:
    """Accept, say hello, return: the server closes with 1000."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "hello"})


async def hold(scope: Scope, receive: Any, send: Any) -> None:
    """Receive nothing for a while (query: seconds), then count what came."""
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(float(scope["query_string"]))
    count = total = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "end":
            await send({"type": "websocket.send", "text": f"{count} {total}"})
            continue
        count += 1
        total += len(message["bytes"])


async def firehose(scope: Scope, receive: Any, send: Any) -> None:
    """Send 64 KiB messages until the client goes (it never reads)."""
    await receive()
    await send({"type": "websocket.accept"})
    chunk = b"\xa5" * 65536
    try:
        while True:
            await send({"type": "websocket.send", "bytes": chunk})
    except OSError:
        say("FIREHOSE GONE")


async def executor(scope: Scope, receive: Any, send: Any) -> None:
    """Accept, run a job on the loop's default executor, say so."""
    await receive()
    await send({"type": "websocket.accept"})
    result = await asyncio.get_running_loop().run_in_executor(None, lambda: "executor ok")
    await send({"type": "websocket.send", "text": result})


ROUTES = {"/firehose": firehose, "/executor": executor, "/echo": echo, "/info": info, "/deny": deny, "/custom": custom_denial,
          "/boom": boom, "/boom-early": boom_early, "/done": done, "/hold": hold}
