"""A bare ASGI app whose requests use real asyncio clients (clients_common):
/redis?key=K&n=N, /pubsub?channel=C, /fetch?path=P; the lifespan shutdown
closes the clients."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import clients_common as cc


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await cc.close_all()
                await send({"type": "lifespan.shutdown.complete"})
                return
    q = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/redis":
        out = await cc.redis_round(q["key"], int(q.get("n", "10")))
    elif path == "/pubsub":
        out = await cc.redis_pubsub(q["channel"])
    elif path == "/fetch":
        out = await cc.fetch(q["path"])
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    body = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
