"""HttpServer WebSocket routes at shutdown: SIGTERM with WebSockets open
closes each with a close frame 1001 ("server shutting down") before its TCP
close, not with a bare TCP close (1006 for the client), and on_close hears
1001."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def test_shutdown_closes_with_1001(spawn, backend):
    srv = spawn("ws_app.py", backend=backend)

    async def go() -> None:
        socks = [await connect(f"ws://127.0.0.1:{srv.port}/echo") for _ in range(3)]
        for ws in socks:
            await ws.send("up")
            assert await ws.recv() == "up"
        finished = await asyncio.to_thread(srv.finish)
        finished.assert_clean()
        for ws in socks:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001 and ws.close_reason == "server shutting down"
    asyncio.run(asyncio.wait_for(go(), 30))
