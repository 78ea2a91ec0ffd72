"""TechEmpower /json and /plaintext as a bare ASGI application (no framework),
and /await: the /json answer after awaiting 1 ms (a fast database or cache
call), which shows what a request that awaits costs a server.

    uvicorn --loop uvloop --http httptools --app-dir bench/peers asgi_app:app
"""

import asyncio
import json

HELLO = b"Hello, World!"
JSON_TYPE = (b"content-type", b"application/json")
TEXT_TYPE = (b"content-type", b"text/plain")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/await":
        await asyncio.sleep(0.001)
        path = "/json"
    if path == "/json":
        body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
        status, ctype = 200, JSON_TYPE
    elif path == "/plaintext":
        body, status, ctype = HELLO, 200, TEXT_TYPE
    else:
        body, status, ctype = b"not found", 404, TEXT_TYPE
    await send({"type": "http.response.start", "status": status,
                "headers": [ctype, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
