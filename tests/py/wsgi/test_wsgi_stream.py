"""Streamed WSGI responses on both backends: a body without a length is sent
chunked (HTTP/1.1) or until the close (HTTP/1.0); write() sends at once; a
large body waits for a slow reader (memory stays flat); a client that leaves
stops the iteration and close() is called; a length the app set and did not
keep closes the connection."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from wsgi_helpers import read_reply, served

from helpers import BACKENDS, ServerProcess
from http_helpers import Conn, request, wait_for

MIB = 1 << 20


@pytest.fixture(scope="module", params=[(b, v) for b in BACKENDS for v in ("app", "validated")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    backend, app = request.param  # also wrapped in wsgiref.validate
    with served(backend, f"stream_app:{app}", "--workers", "2") as proc:
        yield proc


def get(port: int, path: str, version: str = "HTTP/1.1"):
    with Conn(port) as c:
        c.send(request("GET", path, version=version))
        return read_reply(c)


def test_no_length_is_chunked(server: ServerProcess) -> None:
    r = get(server.port, "/chunked")
    assert r.status == 200 and r.chunked  # type: ignore[attr-defined]
    assert r.body == b"".join(b"piece %d;" % i for i in range(10))
    with Conn(server.port) as c:  # and the connection goes on
        c.send(request("GET", "/chunked") * 2)
        assert read_reply(c).body == read_reply(c).body


def test_no_length_http10_until_close(server: ServerProcess) -> None:
    r = get(server.port, "/chunked", version="HTTP/1.0")
    assert r.status == 200 and "transfer-encoding" not in r.headers
    assert "content-length" not in r.headers
    assert r.body == b"".join(b"piece %d;" % i for i in range(10))


def test_write_sends_before_the_app_returns(server: ServerProcess) -> None:
    with Conn(server.port, timeout=20) as c:
        c.send(request("GET", "/write-early"))
        assert c.read_until(b"early;")  # while the app still waits
        assert get(server.port, "/release").body == b"released"
        assert read_reply_rest(c).endswith(b"4\r\nlate\r\n0\r\n\r\n")


def read_reply_rest(c: Conn) -> bytes:
    return c.read_until(b"0\r\n\r\n")


def test_large_body_waits_for_a_slow_reader(server: ServerProcess) -> None:
    size = 160
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(request("GET", f"/big?{size}"))
    rss0 = server.rss()
    time.sleep(1.0)  # not reading: the server must wait, not buffer 160 MiB
    grown = server.rss() - rss0
    got = 0
    sock.settimeout(30)
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        got += len(data)
        if data.endswith(b"0\r\n\r\n") and got >= size * MIB:
            break
    sock.close()
    assert got > size * MIB
    assert grown < 40 * MIB, f"RSS grew {grown / MIB:.0f} MiB behind a reader that waited"


def test_client_leaving_calls_close(server: ServerProcess) -> None:
    before = int(get(server.port, "/close-count").body)
    with Conn(server.port) as c:
        c.send(request("GET", "/forever"))
        c.read_exact(256 * 1024)
    assert wait_for(lambda: int(get(server.port, "/close-count").body) == before + 1, 20)


@pytest.mark.parametrize("declared,actual", [(3, 2), (2, 3)])
def test_streamed_length_not_kept_closes(server: ServerProcess, declared: int,
                                        actual: int) -> None:
    with Conn(server.port) as c:
        c.send(request("GET", f"/length?{declared},{actual}"))
        head = read_reply(c, head=True)
        assert head.headers["content-length"] == str(declared * MIB)
        rest = c.read_to_eof(30)  # then the connection closes
        # short: never the whole announced body; long: not a byte past it
        assert len(rest) == min(declared, actual) * MIB
    assert wait_for(lambda: "Content-Length" in server.stderr_text(), 10)


def test_streamed_length_kept(server: ServerProcess) -> None:
    r = get(server.port, "/length?2,2")
    assert r.status == 200 and len(r.body) == 2 * MIB and not r.chunked  # type: ignore[attr-defined]
