"""Hostile request bodies and the RFC 9112 leniencies, through real sockets on
both backends: chunk-extension floods (held decoded only, refused once what was
sent passes the limit), bodies nothing takes (answered before they are sent,
dropped unread: the test application and the directory server), empty lines
before a request, BWS in chunk extensions, IPv6 absolute-form targets,
OPTIONS * and CONNECT."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import BACKENDS, HOST, ServerProcess, child_env
from http_helpers import Conn, app_server, chunked, request

MAX_BODY = 100_000
H = "Host: test\r\n"


@pytest.fixture(scope="module", params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("root")
    (root / "hello.txt").write_bytes(b"hello, world\n")
    with app_server(str(request.param), "--max-body", str(MAX_BODY), "--body-timeout", "20",
                    "--root", str(root)) as proc:
        yield proc


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


CHUNK = b"1;e=" + b"v" * 900 + b"\r\nx\r\n"  # one body byte behind 900 of extensions


def flood(sock: socket.socket, chunks: int) -> bool:
    """Send chunks extension-laden chunks; False once the server closed."""
    block = CHUNK * 64
    try:
        for _ in range(chunks // 64):
            sock.sendall(block)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


CHUNKED_POST = f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n".encode()


# ---- chunk-extension floods --------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_chunk_extension_flood_is_not_held(backend: str) -> None:
    """24 MiB of chunk extensions for 26 KB of body, under a 256 MiB limit: the
    server grows by far less than was sent (a wide margin: 8 MiB), the body
    arrives whole. The first round warms the engine's receive buffers up (on
    io_uring they grow by ~16 MiB under a first burst), so one worker."""
    with app_server(backend, "--max-body", str(256 << 20), "--body-timeout", "30",
                    "--workers", "1") as proc:
        for round in range(2):
            with Conn(proc.port, timeout=30) as c:
                c.send(CHUNKED_POST)
                before = rss_kib(proc.pid)
                assert flood(c.sock, 26_880)
                grown = rss_kib(proc.pid) - before
                c.send(b"0\r\n\r\n")
                reply = c.read_reply()
                assert reply.status == 200 and reply.body == b"x" * 26_880
            if round == 1:
                assert grown < 8 * 1024, f"the server grew by {grown} KiB"


def test_chunk_extension_flood_is_refused_past_the_limit(app: ServerProcess) -> None:
    """What the client sends counts against the body limit: the flood is a 413
    and a close long before 4 MiB (the decoded body is 1/200 of the limit)."""
    with Conn(app.port) as c:
        c.send(CHUNKED_POST)
        flood(c.sock, 4_480)
        reply = c.read_reply()
        assert reply.status == 413 and reply.headers["connection"] == "close"
        assert c.closed_cleanly() is None


def test_body_at_the_limit_in_extension_laden_one_byte_chunks_is_413(app: ServerProcess) -> None:
    """The same body fits in large chunks, not in one-byte chunks that send 31
    bytes for each (past max_body + max_body / 16 + 4 KiB as sent)."""
    body = b"z" * MAX_BODY
    for sizes, status in (([4096], 200), ([1], 413)):
        with Conn(app.port) as c:
            try:
                c.send(request("POST", "/echo", {"Transfer-Encoding": "chunked"},
                               chunked(body, sizes, ext=True)))
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before all of it was sent; the answer is readable
            reply = c.read_reply()
            assert reply.status == status
            assert status != 200 or reply.body == body


def test_long_chunk_extension_is_400(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(CHUNKED_POST + b"5;e=" + b"v" * 1100)
        reply = c.read_reply()
        assert reply.status == 400 and reply.headers["connection"] == "close"


def test_chunk_extension_at_its_limit_is_served(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(CHUNKED_POST + b"5;" + b"e" * 1023 + b"\r\nhello\r\n0\r\n\r\n")
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == b"hello"


# ---- bodies nothing takes ----------------------------------------------------------

def test_body_to_a_get_only_route_is_answered_before_it_is_sent(app: ServerProcess) -> None:
    """/tree/* takes GET only: the 405 comes before the body, which is then
    dropped unread, and the connection goes on."""
    with Conn(app.port) as c:
        c.send(f"POST /tree/x HTTP/1.1\r\n{H}Content-Length: 90000\r\n\r\n".encode())
        reply = c.read_reply()
        assert reply.status == 405 and reply.headers["allow"] == "GET"
        assert "connection" not in reply.headers
        c.send(b"b" * 90_000 + request("GET", "/hello"))
        assert c.read_reply().body == b"hello"


def test_body_to_no_route_is_404_before_it_is_sent(app: ServerProcess) -> None:
    """No route matches and the app keeps the default fallback (a 404 that
    reads nothing): the 404 comes before the body, which is dropped unread."""
    with Conn(app.port) as c:
        c.send(f"POST /no/such/route HTTP/1.1\r\n{H}Content-Length: 90000\r\n\r\n".encode())
        reply = c.read_reply()
        assert reply.status == 404
        assert "connection" not in reply.headers
        c.send(b"b" * 90_000 + request("GET", "/hello"))
        assert c.read_reply().body == b"hello"


def test_body_too_big_for_the_limit_is_413_at_once(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(f"POST /tree/x HTTP/1.1\r\n{H}Content-Length: 100000000\r\n\r\n".encode())
        reply = c.read_reply()
        assert reply.status == 413 and reply.headers["connection"] == "close"


def test_chunked_body_to_a_static_route_is_answered_first(app: ServerProcess) -> None:
    """A GET with a body to a static route: answered at once, the body dropped
    as it comes (extensions, BWS and all), then the next request."""
    with Conn(app.port) as c:
        c.send(f"GET /static-hello HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nhe"
               .encode())
        assert c.read_reply().body == b"static hello"
        c.send(b"llo\r\n5 ; e = \"x\"\r\nworld\r\n0\r\n\r\n" + request("GET", "/id/2"))
        assert c.read_reply().body == b"req 2"


def test_static_files_routed_with_default_methods_refuse_bodies_first(app: ServerProcess
                                                                     ) -> None:
    """StaticFiles answers GET and HEAD only, so its route takes no other
    method even when routed with the default ones: a POST is a 405 from the
    engine before its body arrives; a GET's body is dropped unread."""
    with Conn(app.port) as c:
        c.send(f"POST /assets/hello.txt HTTP/1.1\r\n{H}Content-Length: 90000\r\n\r\n".encode())
        reply = c.read_reply()
        assert reply.status == 405 and reply.headers["allow"] == "GET, HEAD"
        c.send(b"p" * 90_000)
        c.send(f"GET /assets/hello.txt HTTP/1.1\r\n{H}Content-Length: 90000\r\n\r\n".encode())
        assert c.read_reply().body == b"hello, world\n"
        c.send(b"g" * 90_000 + request("GET", "/assets/hello.txt"))
        assert c.read_reply().body == b"hello, world\n"


def test_expect_continue_to_a_route_without_bodies_closes(app: ServerProcess) -> None:
    """No 100 Continue for a body nothing takes: the answer, then a close (the
    client may never send the body it announced)."""
    with Conn(app.port) as c:
        c.send(f"PUT /tree/x HTTP/1.1\r\n{H}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
               .encode())
        reply = c.read_reply()
        assert reply.status == 405 and reply.headers["connection"] == "close"
        assert c.closed_cleanly() is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_directory_server_answers_before_the_body(tmp_path: Path, backend: str) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello, world\n")
    argv = [sys.executable, "-m", "pyparallel.http.server", str(tmp_path), "--port", "0",
            "--host", HOST, "--workers", "1"]
    proc = ServerProcess(argv, child_env(backend), ready=False)
    try:
        line = proc.wait_line(r"^serving .* on http://", 20)
        port = int(line.rsplit(":", 1)[1].rstrip("/"))
        with Conn(port) as c:
            c.send(f"POST /hello.txt HTTP/1.1\r\n{H}Content-Length: 500000\r\n\r\n".encode())
            assert c.read_reply().status == 405
            c.send(b"p" * 500_000)
            c.send(f"GET /hello.txt HTTP/1.1\r\n{H}Content-Length: 200000\r\n\r\n".encode())
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == b"hello, world\n"
            c.send(b"g" * 200_000 + request("GET", "/hello.txt"))
            assert c.read_reply().body == b"hello, world\n"
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(20) == 0
    finally:
        proc.close()


# ---- RFC 9112 leniencies -------------------------------------------------------------

def test_empty_lines_before_a_request_are_skipped(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(b"\r\n" + request("GET", "/hello") + b"\r\n\r\n" + request("GET", "/id/1"))
        assert c.read_reply().body == b"hello"
        assert c.read_reply().body == b"req 1"


def test_bws_before_a_chunk_extension_is_accepted(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(CHUNKED_POST + b"5 ;a=b\r\nhello\r\n6\t; c = \"d\"\r\n world\r\n0 ;e\r\n\r\n")
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == b"hello world"


def test_ipv6_absolute_form(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(f"GET http://[::1]:8080/hello HTTP/1.1\r\n{H}\r\n".encode())
        assert c.read_reply().body == b"hello"
        c.send(f"GET http://[::1/hello HTTP/1.1\r\n{H}\r\n".encode())
        assert c.read_reply().status == 400


def test_options_star_is_answered(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("OPTIONS", "*"))
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == b""
        allow = reply.headers["allow"].split(", ")
        assert {"GET", "HEAD", "POST", "PUT", "OPTIONS"} <= set(allow)
        assert len(allow) == len(set(allow))
        c.send(request("GET", "/hello"))
        assert c.read_reply().body == b"hello"


def test_connect_is_501(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        reply = c.read_reply()
        assert reply.status == 501 and reply.headers["connection"] == "close"
