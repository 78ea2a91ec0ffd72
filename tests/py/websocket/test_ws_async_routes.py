"""``async def`` WebSocket routes of an HttpServer (servers/ws_app.py), driven
by a real client (the websockets library) on both backends: a per-message
coroutine whose replies keep the messages' order, a per-connection coroutine
with an awaitable receive() (greeting, replies, a return that closes with 1000,
an exception that closes with 1011, the client's close code seen by receive()),
and a slow reader behind a small bounded inbox (max_queue=4) that still takes
every message, in turn; many connections at once on two workers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from helpers import ServerProcess
from http_helpers import Conn, request


@pytest.fixture
def srv(spawn, backend) -> ServerProcess:
    return spawn("ws_app.py", backend=backend)


def url(srv: ServerProcess, path: str) -> str:
    return f"ws://127.0.0.1:{srv.port}{path}"


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_async_message_handler_keeps_order(srv):
    async def go() -> list[str]:
        async with connect(url(srv, "/aecho")) as ws:
            for i in range(50):
                await ws.send(f"m{i}")  # sent without waiting: replies must keep order
            got = [await ws.recv() for _ in range(50)]
            await ws.send(b"\x00bin")
            got.append(repr(await ws.recv()))
        return got

    got = run(go())
    assert got[:50] == [f"m{i}" for i in range(50)]
    assert got[50] == repr(b"\x00bin")


def test_session_receive_send_and_return(srv):
    async def go() -> tuple[list[str], int | None]:
        async with connect(url(srv, "/session")) as ws:
            out = [await ws.recv()]
            for word in ("one", "two", "three"):
                await ws.send(word)
                out.append(await ws.recv())
            await ws.send(b"bytes")
            out.append(await ws.recv())
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        return out, ws.close_code

    out, code = run(go())
    assert out == ["hello /session", "1:ONE", "2:TWO", "3:THREE", "4:BYTES"]
    assert code == 1000


def test_session_exception_closes_with_1011(srv):
    async def go() -> int | None:
        async with connect(url(srv, "/session")) as ws:
            await ws.recv()
            await ws.send("boom")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        return ws.close_code

    assert run(go()) == 1011
    srv.allow_tracebacks = True
    deadline = time.monotonic() + 10
    while "session boom" not in srv.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = srv.stderr_text()
    assert "RuntimeError: session boom" in log and "closing with 1011" in log


def test_session_sees_the_clients_close_code(srv):
    async def go() -> None:
        ws = await connect(url(srv, "/session"))
        await ws.recv()
        await ws.close(4123, "leaving")

    run(go())
    deadline = time.monotonic() + 10
    while True:
        with Conn(srv.port) as c:
            c.send(request("GET", "/sessions"))
            seen = json.loads(c.read_reply().body)
        if seen.get("4123") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert seen.get("4123") == 1


def test_slow_session_behind_a_full_inbox_loses_nothing(srv):
    async def go() -> list[str]:
        async with connect(url(srv, "/slow")) as ws:
            for _ in range(20):  # 5 times what its inbox holds
                await ws.send("x" * 100)
            return [str(await ws.recv()) for _ in range(20)]

    assert run(go()) == [str(100 * (i + 1)) for i in range(20)]  # every one, in turn


def test_async_route_whose_on_open_raises_is_closed(srv):
    srv.allow_tracebacks = True

    async def go() -> int | None:
        async with connect(url(srv, "/abadopen")) as ws:
            for i in range(10):  # more than its inbox holds: nothing may wait for a reader
                try:
                    await ws.send(f"m{i}")
                except ConnectionClosed:
                    break
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        return ws.close_code

    assert run(go()) == 1011
    async def after() -> str:  # the worker serves on
        async with connect(url(srv, "/session")) as ws:
            return str(await ws.recv())
    assert run(after()) == "hello /session"


def test_many_sessions_on_two_workers(srv):
    async def one(i: int) -> str:
        async with connect(url(srv, "/session")) as ws:
            await ws.recv()
            await ws.send(f"c{i}")
            return str(await ws.recv())

    async def go() -> list[str]:
        return list(await asyncio.gather(*(one(i) for i in range(200))))

    assert run(go()) == [f"1:C{i}" for i in range(200)]
