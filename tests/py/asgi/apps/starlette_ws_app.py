"""A Starlette app with a WebSocketEndpoint (text echo, and a JSON route),
for test_asgi_websocket.py."""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket


def say(line: str) -> None:
    """One write a line: lines of several threads never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Echo(WebSocketEndpoint):
    encoding = "text"

    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="echo" if "echo" in websocket.scope["subprotocols"]
                               else None)

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        if data == "fail":
            raise ValueError("the endpoint failed")
        await websocket.send_text(f"echo: {data}")

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        say(f"STARLETTE DISCONNECT {close_code}")


class Sizes(WebSocketEndpoint):
    encoding = "bytes"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_json({"size": len(data)})


app = Starlette(routes=[WebSocketRoute("/echo", Echo), WebSocketRoute("/sizes", Sizes)])
