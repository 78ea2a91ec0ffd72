"""HttpServer WebSocket routes (servers/ws_app.py) driven by a real client,
the websockets library, on both backends: the handshake and its refusals,
subprotocol selection, on_connect refusing, messages from another thread,
the server's close handshake (answered, or not within close_timeout), an
exception in a callback (1011), ping keep-alive (answered by the client;
a client that never answers is closed with 1011), the idle timeout, and
many clients in parallel on two workers."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from ws_raw import CLOSE, PING, TEXT, Raw, close_payload, frame

from helpers import ServerProcess
from http_helpers import Conn, request


@pytest.fixture
def srv(spawn, backend) -> ServerProcess:
    return spawn("ws_app.py", backend=backend)


def url(srv: ServerProcess, path: str) -> str:
    return f"ws://127.0.0.1:{srv.port}{path}"


def get_json(port: int, path: str) -> object:
    with Conn(port) as c:
        c.send(request("GET", path))
        return json.loads(c.read_reply().body)


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_echo_and_close_codes(srv):
    async def go() -> None:
        async with connect(url(srv, "/echo")) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01\x02")
            assert await ws.recv() == b"\x00\x01\x02"
            await ws.send(["frag", "ment"])  # fragmented by the client
            assert await ws.recv() == "fragment"
            await ws.ping(b"hi")
        assert ws.close_code == 1000
        ws2 = await connect(url(srv, "/echo"))
        await ws2.close(4321, "custom")
    run(go())
    deadline = time.monotonic() + 10
    while True:
        closes = get_json(srv.port, "/closes")
        if closes.get("1000") == 1 and closes.get("4321") == 1:
            break
        assert time.monotonic() < deadline, closes
        time.sleep(0.05)
    assert get_json(srv.port, "/opened") == 0


def test_handshake_refusals(srv):
    with Conn(srv.port) as c:  # wrong version: 426 naming the one we speak
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        reply = c.read_reply()
        assert reply.status == 426
        assert reply.headers["sec-websocket-version"] == "13"
    bad = [
        b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",  # a plain GET
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        b"GET /echo HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ]
    for req in bad:
        with Conn(srv.port) as c:
            c.send(req)
            assert c.read_reply().status == 400, req
    with Conn(srv.port) as c:  # the route takes GET only
        c.send(request("POST", "/echo", body=b"x"))
        assert c.read_reply().status == 405
    with Raw(srv.port) as ws:  # RFC 6455 section 1.3's accept key is ours too
        assert ws.status == 101
        assert "sec-websocket-accept" in ws.head.lower()

    async def refused() -> None:
        with pytest.raises(InvalidStatus) as e:
            await connect(url(srv, "/refuse"))
        assert e.value.response.status_code == 403
        async with connect(url(srv, "/refuse?ok=1")) as ws:
            await ws.send("in")
            assert await ws.recv() == "in"
    run(refused())


def test_subprotocols(srv):
    async def go() -> None:
        async with connect(url(srv, "/proto"), subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"  # the server's preference
            await ws.send("x")
            assert await ws.recv() == "chat.v2"
        async with connect(url(srv, "/proto"), subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
        async with connect(url(srv, "/proto")) as ws:
            assert ws.subprotocol is None
            await ws.send("x")
            assert await ws.recv() == "None"
    run(go())


def test_frame_after_handshake_in_same_packet(srv):
    """Frames sent right behind the upgrade request (one write) are frames,
    not a next HTTP request."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                 + frame(TEXT, b"early") + frame(CLOSE, close_payload(1000)))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    assert rest == b"\x81\x05early" + b"\x88\x02" + struct.pack(">H", 1000)


def test_push_from_another_thread(srv):
    async def go() -> None:
        async with connect(url(srv, "/push")) as ws:
            got = [await ws.recv() for _ in range(20)]
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert got == [f"push {i}" for i in range(20)]
        assert ws.close_code == 4001 and ws.close_reason == "pushed"
    run(go())


def test_server_close_handshake_and_timeout(srv):
    async def go() -> None:
        async with connect(url(srv, "/cmd")) as ws:
            await ws.send("close")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4000 and ws.close_reason == "bye"
        async with connect(url(srv, "/cmd")) as ws:
            await ws.send("raise")  # the callback's exception: 1011, logged
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1011
    run(go())
    srv.allow_tracebacks = True
    # a client that never answers our close: TCP closed after close_timeout
    with Raw(srv.port, "/cmd") as ws:
        ws.send(frame(TEXT, b"close"))
        t0 = time.monotonic()
        op, _, payload = ws.recv_frame()
        assert op == CLOSE and struct.unpack(">H", payload[:2])[0] == 4000
        ws.expect_eof(10)
        assert time.monotonic() - t0 >= 0.2
    with Raw(srv.port, "/cmd") as ws:  # a send after close() raises, nothing sent
        ws.send(frame(TEXT, b"sendafter"))
        op, _, payload = ws.recv_frame()
        assert op == CLOSE and struct.unpack(">H", payload[:2])[0] == 1000
        ws.send(frame(CLOSE, payload))
        ws.expect_eof(10)
    deadline = time.monotonic() + 10
    while get_json(srv.port, "/closes").get("cmd 1006", 0) < 1:  # the unanswered one
        assert time.monotonic() < deadline, get_json(srv.port, "/closes")
        time.sleep(0.05)


def test_keepalive_pings(srv):
    async def go() -> None:
        async with connect(url(srv, "/ping"), ping_interval=None) as ws:
            await asyncio.sleep(1.0)  # several pings, answered by the library
            await ws.send("still here")
            assert await ws.recv() == "still here"
    run(go())
    with Raw(srv.port, "/ping") as ws:  # never answers: closed with 1011
        t0 = time.monotonic()
        op, _, _ = ws.recv_frame()
        assert op == PING
        ws.expect_close(1011)
        assert time.monotonic() - t0 >= 0.3


def test_idle_timeout(srv):
    with Raw(srv.port, "/idle") as ws:
        ws.send(frame(TEXT, b"a"))
        assert ws.recv_message() == (TEXT, b"a")
        t0 = time.monotonic()
        ws.expect_eof(10)
        assert time.monotonic() - t0 >= 0.3


def test_many_clients_in_parallel(srv):
    async def one(i: int) -> None:
        async with connect(url(srv, "/echo")) as ws:
            for k in range(20):
                msg = f"{i}:{k}" * (1 + k)
                await ws.send(msg)
                assert await ws.recv() == msg

    async def go() -> None:
        await asyncio.gather(*(one(i) for i in range(50)))
    run(go())
    stats = srv.stats()["total"]
    assert stats["ws_upgrades"] >= 50
    assert stats["ws_messages_in"] >= 1000
