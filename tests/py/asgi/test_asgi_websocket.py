"""The ASGI ``websocket`` scope under ``pyparallel serve``, driven by a real
client (the websockets library) on both backends: a bare ASGI echo app
(apps/asgi_ws_apps.py), a Starlette WebSocketEndpoint
(apps/starlette_ws_app.py) and FastAPI's WebSocket endpoint
(apps/fastapi_app.py). Text and binary echo, fragmented messages, close codes
both ways, refusal before accept (403, or the app's own response), the
subprotocol and headers of the accept, a client that goes away seen as
websocket.disconnect, an exception closing with 1011 and its traceback
logged, and the message limit the engine keeps."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from asgi_helpers import served_asgi
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import ServerProcess
from http_helpers import Conn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "websocket"))

from ws_raw import PING, Raw  # noqa: E402

BACKENDS = ["uring", "epoll"]
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def url(proc: ServerProcess, path: str) -> str:
    return f"ws://127.0.0.1:{proc.port}{path}"


def wait_stderr(proc: ServerProcess, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in proc.stderr_text():
        assert time.monotonic() < deadline, proc.stderr_text()
        time.sleep(0.05)
    return proc.stderr_text()


async def pieces(*parts: str | bytes) -> AsyncIterator[str | bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_app_echo_and_close_codes(backend: str) -> None:
    with served_asgi(backend, "asgi_ws_apps:app", "--workers", "2") as proc:
        async def go() -> None:
            async with connect(url(proc, "/echo?normal")) as ws:
                await ws.send("héllo")
                assert await ws.recv() == "héllo"
                await ws.send(b"\x00\x01\xff")
                assert await ws.recv() == b"\x00\x01\xff"
                await ws.send(["frag", "men", "ted"])  # three frames, one message
                assert await ws.recv() == "fragmented"
                await ws.send(pieces(b"ab", b"", b"cd"))
                assert await ws.recv() == b"abcd"
                big = bytes(range(256)) * 4096  # 1 MiB
                await ws.send(big)
                assert await ws.recv() == big
                await (await ws.ping(b"hi"))  # answered by the engine
                for i in range(300):  # many in flight: echoed in order, none lost
                    await ws.send(f"n{i}")
                for i in range(300):
                    assert await ws.recv() == f"n{i}"
            assert ws.close_code == 1000
            # the client's close code reaches the app as websocket.disconnect
            ws = await connect(url(proc, "/echo?custom"))
            await ws.send("x")
            assert await ws.recv() == "x"
            await ws.close(4321, "custom")
            # the server's close: the client gets the app's code and reason,
            # and the app's next receive() is the disconnect
            async with connect(url(proc, "/echo?server")) as ws:
                await ws.send("close 4001 going")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 4001 and ws.close_reason == "going"
        run(go())
        proc.wait_line(r"^DISCONNECT normal 1000$", 20)
        proc.wait_line(r"^DISCONNECT custom 4321$", 20)
        proc.wait_line(r"^AFTER CLOSE websocket.disconnect 4001$", 20)


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_gone_and_denials(backend: str) -> None:
    with served_asgi(backend, "asgi_ws_apps:app", "--workers", "2") as proc:
        async def go() -> None:
            ws = await connect(url(proc, "/echo?dropped"))
            await ws.send("x")
            assert await ws.recv() == "x"
            ws.transport.abort()  # no close frame: 1006
            for path in ("/deny", "/nowhere"):  # websocket.close before accept
                with pytest.raises(InvalidStatus) as e:
                    await connect(url(proc, path))
                assert e.value.response.status_code == 403
            with pytest.raises(InvalidStatus) as e:  # websocket.http.response
                await connect(url(proc, "/custom"))
            r = e.value.response
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Token" and bytes(r.body) == b"no token"
        run(go())
        proc.wait_line(r"^DISCONNECT dropped 1006$", 20)
        proc.wait_line(r"^SEND AFTER CLOSE ClientDisconnected$", 20)
        # not a valid upgrade: answered by the server, the app never called
        with Conn(proc.port) as c:
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() +
                   b"\r\nSec-WebSocket-Version: 8\r\n\r\n")
            reply = c.read_reply()
            assert reply.status == 426 and reply.headers["sec-websocket-version"] == "13"
        with Conn(proc.port) as c:  # the same app still answers plain HTTP
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_reply().body == b"plain http"


@pytest.mark.parametrize("backend", BACKENDS)
def test_scope_subprotocol_and_headers(backend: str) -> None:
    with served_asgi(backend, "asgi_ws_apps:app", "--root-path", "/api",
                     "--url-scheme-header", "X-Forwarded-Proto") as proc:
        async def go() -> None:
            async with connect(url(proc, "/api/info?x=1"),
                               subprotocols=["chat.v1", "chat.v2"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "chat.v2"  # the app's choice among those offered
                assert ws.response.headers["x-served-by"] == "asgi-ws"
                scope = json.loads(await ws.recv())
            assert scope["type"] == "websocket" and scope["scheme"] == "ws"
            assert scope["path"] == "/api/info" and scope["raw_path"] == "/api/info"
            assert scope["root_path"] == "/api" and scope["query_string"] == "x=1"
            assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
            assert scope["http_version"] == "1.1"
            assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
            assert scope["client"][0] == "127.0.0.1"
            assert scope["server"] == ["127.0.0.1", proc.port]
            assert scope["state"] == {"started": "yes"}  # from the lifespan
            assert scope["extensions"] == ["websocket.http.response"]
            assert scope["headers"]["sec-websocket-protocol"] == "chat.v1, chat.v2"
            async with connect(url(proc, "/api/info"),  # none offered: none chosen
                               additional_headers={"X-Forwarded-Proto": "https"}) as ws:
                assert ws.subprotocol is None
                scope = json.loads(await ws.recv())
                assert scope["subprotocols"] == [] and scope["scheme"] == "wss"
        run(go())


@pytest.mark.parametrize("backend", BACKENDS)
def test_exceptions_and_app_return(backend: str) -> None:
    with served_asgi(backend, "asgi_ws_apps:app", allow_tracebacks=True) as proc:
        async def go() -> None:
            async with connect(url(proc, "/boom")) as ws:
                await ws.send("trigger")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1011
            with pytest.raises(InvalidStatus) as e:
                await connect(url(proc, "/boom-early"))
            assert e.value.response.status_code == 500
            async with connect(url(proc, "/done")) as ws:  # the app returned: 1000
                assert await ws.recv() == "hello"
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1000
        run(go())
        err = wait_stderr(proc, "RuntimeError: boom before accept")
        assert "Exception in ASGI application (websocket /boom): closed with 1011" in err
        assert "RuntimeError: boom after trigger" in err
        assert "Traceback (most recent call last)" in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_message_deflate(backend: str) -> None:
    """The client's permessage-deflate offer is taken (the engine compresses
    and inflates; the app sees plain messages), and refused with
    --no-ws-per-message-deflate."""
    text, data = '{"k": "' + "value " * 5000 + '"}', bytes(range(16)) * 8192

    async def roundtrip(proc: ServerProcess, agreed: bool) -> None:
        async with connect(url(proc, "/echo?deflate"), max_size=None) as ws:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions")
            assert (ext is not None and ext.startswith("permessage-deflate")) == agreed, ext
            for m in (text, data, "short", ["frag " * 100, "ment " * 100]):
                await ws.send(m)
                assert await ws.recv() == (m if not isinstance(m, list) else "".join(m))
    with served_asgi(backend, "asgi_ws_apps:app") as proc:
        run(roundtrip(proc, True))
    with served_asgi(backend, "asgi_ws_apps:app", "--no-ws-per-message-deflate") as proc:
        run(roundtrip(proc, False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_message_limit(backend: str) -> None:
    with served_asgi(backend, "asgi_ws_apps:app", "--ws-max-size", "1000") as proc:
        async def go() -> None:
            async with connect(url(proc, "/echo?limit")) as ws:
                await ws.send(b"x" * 1000)
                assert await ws.recv() == b"x" * 1000
                await ws.send(["a" * 600, "b" * 600])  # fragments over the limit: 1009
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1009
        run(go())
        proc.wait_line(r"^DISCONNECT limit 1009$", 20)


@pytest.mark.parametrize("backend", BACKENDS)
def test_starlette_endpoint(backend: str) -> None:
    pytest.importorskip("starlette", reason="starlette is in tools/requirements-test.txt")
    with served_asgi(backend, "starlette_ws_app:app", "--workers", "2",
                     allow_tracebacks=True) as proc:
        async def go() -> None:
            async with connect(url(proc, "/echo"), subprotocols=["echo"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "echo"
                await ws.send("one")
                assert await ws.recv() == "echo: one"
                await ws.send(["tw", "o"])
                assert await ws.recv() == "echo: two"
            async with connect(url(proc, "/sizes")) as ws:
                await ws.send(b"12345")
                assert json.loads(await ws.recv()) == {"size": 5}
                await ws.send("text on a bytes endpoint")  # Starlette closes with 1003
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1003
            async with connect(url(proc, "/echo")) as ws:
                await ws.send("fail")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 1011
            ws = await connect(url(proc, "/echo"))
            await ws.close(4100)
        run(go())
        proc.wait_line(r"^STARLETTE DISCONNECT 1000$", 20)
        proc.wait_line(r"^STARLETTE DISCONNECT 4100$", 20)
        assert "ValueError: the endpoint failed" in wait_stderr(proc, "the endpoint failed")


@pytest.mark.parametrize("backend", BACKENDS)
def test_fastapi_websocket(backend: str) -> None:
    pytest.importorskip("fastapi", reason="fastapi is in tools/requirements-test.txt")
    with served_asgi(backend, "fastapi_app:app", "--workers", "2") as proc:
        async def go() -> None:
            async with connect(url(proc, "/ws/blue?token=t"),
                               subprotocols=["json.v1"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "json.v1"
                assert json.loads(await ws.recv()) == {
                    "room": "blue", "prefix": "item", "greeting": "hello from lifespan"}
                await ws.send(json.dumps({"n": 1}))
                assert json.loads(await ws.recv()) == {"room": "blue", "echo": {"n": 1}}
                await ws.send(json.dumps({"bye": True}))
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == 4000 and ws.close_reason == "bye"
            with pytest.raises(InvalidStatus) as e:  # no token: refused before accept
                await connect(url(proc, "/ws/blue"))
            assert e.value.response.status_code == 403
            ws = await connect(url(proc, "/ws/red?token=t"))
            await ws.recv()
            await ws.close(1001)
        run(go())
        proc.wait_line(r"^FASTAPI WS DISCONNECT red 1001$", 20)


def test_raw_socket_denial_is_plain_http() -> None:
    """A refusal before accept is an ordinary HTTP response on a connection
    that stays usable (keep-alive), as for any other request."""
    with served_asgi("epoll", "asgi_ws_apps:app") as proc:
        with Conn(proc.port) as c:
            c.send(b"GET /deny HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() +
                   b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            assert c.read_reply().status == 403
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_reply().body == b"plain http"


@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_app_holds_the_client_back(backend: str) -> None:
    """An app that does not receive: at most --ws-max-queue messages wait for
    it in the server; the client's sends wait in the TCP buffers behind them
    rather than in the server's memory."""
    msg, n = 256 * 1024, 120  # 30 MiB sent while the app sleeps
    with served_asgi(backend, "asgi_ws_apps:app", "--ws-max-queue", "4") as proc:
        async def go() -> None:
            async with connect(url(proc, "/hold?4"), max_size=None) as ws:
                base = proc.rss()
                sender = asyncio.ensure_future(
                    asyncio.gather(*(ws.send(bytes([i]) * msg) for i in range(n))))
                await asyncio.sleep(2.0)  # the app still sleeps
                grown = proc.rss() - base
                assert grown < 12 * 1024 * 1024, f"{grown / 2**20:.1f} MiB held for the app"
                await sender
                await ws.send("end")
                assert await ws.recv() == f"{n} {n * msg}"  # nothing lost
        run(go())


@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_clients_hold_no_executor_thread(backend: str) -> None:
    """Twelve clients that never read, each with the app sending to it over
    the high-water mark: their sends wait on the loop, not in the loop's
    default executor (six threads here), so another connection's executor
    job still runs at once; when they go, each sender hears it."""
    with served_asgi(backend, "asgi_ws_apps:app", "--workers", "1") as proc:
        hoses = [Raw(proc.port, "/firehose") for _ in range(12)]
        try:
            time.sleep(1.0)  # every sender is over the mark by now

            async def go() -> None:
                async with connect(url(proc, "/executor")) as ws:
                    assert await asyncio.wait_for(ws.recv(), 5) == "executor ok"
            t0 = time.monotonic()
            run(go())
            assert time.monotonic() - t0 < 5
        finally:
            for h in hoses:
                h.close()
        deadline = time.monotonic() + 20
        while sum(line.strip() == "FIREHOSE GONE" for line in proc.lines) < 12:
            assert time.monotonic() < deadline, proc.lines[-5:]
            time.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_keepalive_ping_timeout(backend: str) -> None:
    """The engine pings; a client that never answers is closed with 1011,
    which the app hears as websocket.disconnect."""
    with served_asgi(backend, "asgi_ws_apps:app", "--ws-ping-interval", "0.3",
                     "--ws-ping-timeout", "0.3") as proc:
        with Raw(proc.port, "/echo?silent") as raw:
            assert raw.status == 101
            op, _, _ = raw.recv_frame()
            assert op == PING
            assert raw.expect_close(1011, 15) == b"keepalive ping timeout"
        proc.wait_line(r"^DISCONNECT silent 1011$", 20)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_handoff(backend: str) -> None:
    """--handoff-ms 0: the apps run on a companion loop per worker."""
    with served_asgi(backend, "asgi_ws_apps:app", "--handoff-ms", "0") as proc:
        async def go() -> None:
            async with connect(url(proc, "/echo?companion")) as ws:
                for i in range(20):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
            with pytest.raises(InvalidStatus) as e:
                await connect(url(proc, "/deny"))
            assert e.value.response.status_code == 403
        run(go())
        proc.wait_line(r"^DISCONNECT companion 1000$", 20)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shutdown_says_going_away(backend: str) -> None:
    """SIGTERM with WebSockets open: each gets a close frame 1001 before its
    TCP close, and the app hears websocket.disconnect before the process
    exits (its worker's loop runs what the close set off)."""
    with served_asgi(backend, "asgi_ws_apps:app", "--workers", "2") as proc:
        async def go() -> None:
            socks = [await connect(url(proc, f"/echo?stop{i}")) for i in range(3)]
            for ws in socks:
                await ws.send("up")
                assert await ws.recv() == "up"
            finished = await asyncio.to_thread(proc.finish)
            assert finished.rc == 0
            for ws in socks:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1001 and ws.close_reason == "server shutting down"
        run(go())
        for i in range(3):
            assert proc.finished is not None
            assert f"DISCONNECT stop{i} 1001" in proc.finished.stdout, proc.finished.describe()
