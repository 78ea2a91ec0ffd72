"""Environs made as copies of a thread's template (the environ of an earlier
request with the same headers, its other values brought up to date): every
request on one keep-alive connection (one worker, so one thread and its
templates) sees its own path, query, method, protocol, host, peer, body and
Content-Length, never the previous request's, and never what an app changed
in its copy. Both backends, plain and wrapped in wsgiref.validate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from wsgi_helpers import read_reply, served

from helpers import BACKENDS, ServerProcess
from http_helpers import Conn, chunked


@pytest.fixture(scope="module", params=[(b, t) for b in BACKENDS
                                        for t in ("template_app:app", "template_app:validated")],
                ids=lambda p: f"{p[0]}-{p[1].split(':')[1]}")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    backend, target = request.param
    with served(backend, target, "--workers", "1") as proc:
        yield proc


@pytest.fixture(scope="module", params=[(b, t) for b in BACKENDS
                                        for t in ("template_app:app", "template_app:validated")],
                ids=lambda p: f"{p[0]}-{p[1].split(':')[1]}")
def lenient(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The same, where an app's error (a Content-Length refused) is expected in the log."""
    backend, target = request.param
    with served(backend, target, "--workers", "1", allow_tracebacks=True) as proc:
        yield proc


HEADERS = "Host: example.org:8080\r\nAccept: */*\r\nCookie: a=1\r\nCookie: b=2\r\n"


def ask(c: Conn, line: str, headers: str = HEADERS, body: bytes = b"") -> dict[str, Any]:
    c.send(f"{line}\r\n{headers}\r\n".encode() + body)
    r = read_reply(c)
    assert r.status == 200, r.body
    env: dict[str, Any] = json.loads(r.body)
    return env


def test_each_request_its_own_values(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        first = ask(c, "GET /a/b?x=1 HTTP/1.1")
        assert (first["PATH_INFO"], first["QUERY_STRING"], first["REQUEST_URI"]) == \
            ("/a/b", "x=1", "/a/b?x=1")
        assert (first["SERVER_NAME"], first["SERVER_PORT"]) == ("example.org", "8080")
        assert first["HTTP_COOKIE"] == "a=1; b=2" and first["HTTP_ACCEPT"] == "*/*"
        assert first["REQUEST_METHOD"] == "GET" and first["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert "CONTENT_LENGTH" not in first and first["body"] == ""

        env = ask(c, "GET /c HTTP/1.1")
        assert (env["PATH_INFO"], env["QUERY_STRING"], env["REQUEST_URI"]) == ("/c", "", "/c")
        assert env["HTTP_COOKIE"] == "a=1; b=2"

        env = ask(c, "PUT /c%20d?y HTTP/1.1")
        assert (env["REQUEST_METHOD"], env["PATH_INFO"], env["QUERY_STRING"]) == \
            ("PUT", "/c d", "y")

        env = ask(c, "GET http://other.test:81/abs HTTP/1.1")  # the target's authority wins
        assert (env["SERVER_NAME"], env["SERVER_PORT"], env["PATH_INFO"]) == \
            ("other.test", "81", "/abs")
        env = ask(c, "GET /abs HTTP/1.1")
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org", "8080")

        env = ask(c, "GET /old HTTP/1.0", HEADERS + "Connection: keep-alive\r\n")
        assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
        env = ask(c, "GET /old HTTP/1.1", HEADERS + "Connection: keep-alive\r\n")
        assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert {k: v for k, v in env.items() if k.startswith("HTTP_")} == {
            "HTTP_HOST": "example.org:8080", "HTTP_ACCEPT": "*/*", "HTTP_COOKIE": "a=1; b=2",
            "HTTP_CONNECTION": "keep-alive"}


def test_bodies_and_lengths(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        sized = HEADERS + "Content-Length: 5\r\n"
        env = ask(c, "POST /p HTTP/1.1", sized, b"hello")
        assert (env["CONTENT_LENGTH"], env["body"]) == ("5", "hello")
        env = ask(c, "POST /p HTTP/1.1", sized, b"world")
        assert (env["CONTENT_LENGTH"], env["body"]) == ("5", "world")
        env = ask(c, "GET /p HTTP/1.1")  # no body after bodies: wsgi.input reads nothing
        assert "CONTENT_LENGTH" not in env and env["body"] == ""

        # chunked bodies, read as they arrive: each request's own
        te = HEADERS + "Transfer-Encoding: chunked\r\n"
        for body, sizes in ((b"abc", [3]), (b"abcdefg", [4, 3]), (b"", [])):
            env = ask(c, "POST /p HTTP/1.1", te, chunked(body, sizes))
            assert "CONTENT_LENGTH" not in env and env["body"] == body.decode()
        env = ask(c, "GET /p HTTP/1.1")
        assert "CONTENT_LENGTH" not in env and env["body"] == ""


def test_peers_of_two_connections(server: ServerProcess) -> None:
    with Conn(server.port) as a, Conn(server.port) as b:
        for _ in range(3):
            for c in (a, b):
                env = ask(c, "GET /peer HTTP/1.1")
                assert env["REMOTE_ADDR"] == "127.0.0.1"
                assert int(env["REMOTE_PORT"]) == c.sock.getsockname()[1]


def test_changes_of_the_app_stay_in_its_copy(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        before = ask(c, "GET /mutate?q HTTP/1.1")
        after = ask(c, "GET /mutate?q HTTP/1.1")
        assert {k: v for k, v in after.items() if k != "host_shared"} == \
            {k: v for k, v in before.items() if k != "host_shared"}
        assert "HTTP_X_ADDED" not in after and after["QUERY_STRING"] == "q"


def test_long_heads(server: ServerProcess) -> None:
    """Heads too long for a template (over 4 KiB of headers) are built whole each time."""
    long = HEADERS + "".join(f"X-Long-{i}: {'v' * 200}\r\n" for i in range(30))
    with Conn(server.port) as c:
        for i in range(2):
            env = ask(c, f"POST /long/{i} HTTP/1.1", long + "Content-Length: 2\r\n", b"ok")
            assert (env["PATH_INFO"], env["body"], env["CONTENT_LENGTH"]) == \
                (f"/long/{i}", "ok", "2")
            assert env["HTTP_X_LONG_29"] == "v" * 200
            env = ask(c, f"GET /long/{i} HTTP/1.1", long)
            assert "CONTENT_LENGTH" not in env and env["body"] == ""


def test_identical_requests_share_strings(server: ServerProcess) -> None:
    """The environ of a request with the headers of the one before is a copy:
    its header values are the same str objects, not made again."""
    with Conn(server.port) as c:
        ask(c, "GET /one HTTP/1.1")
        assert ask(c, "GET /two HTTP/1.1")["host_shared"] is True


def test_start_response_kept_past_its_request(server: ServerProcess) -> None:
    """start_response and write() are reused by the next request only when the
    app kept neither: kept ones stay bound to their own (finished) request."""
    with Conn(server.port) as c:
        for _ in range(2):
            c.send(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_reply(c).body == b"kept"
            for _ in range(2):
                c.send(b"GET /stale HTTP/1.1\r\nHost: x\r\n\r\n")
                r = read_reply(c)
                assert r.status == 200
                assert r.body == (b"own:write: write() after the app returned|start: "
                                  b"start_response() called again without exc_info (PEP 3333)")
        env = ask(c, "GET /after HTTP/1.1")
        assert env["PATH_INFO"] == "/after"


@pytest.mark.parametrize("length,ok", [
    ("5", True), ("05", True), ("%205", True),  # blanks before: as strtoll
    ("+5", False), ("-5", False), ("5%20", False), ("5x", False), ("0x5", False), ("", False),
    ("1" * 19, False),
])
def test_app_content_length_parsed(lenient: ServerProcess, length: str, ok: bool) -> None:
    """The app's Content-Length: digits (after blanks), else a 500 and the
    connection closed, never a corrupt stream."""
    with Conn(lenient.port) as c:
        c.send(f"GET /length?{length} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = read_reply(c)
        if ok:
            assert (r.status, r.body, r.headers["content-length"]) == (200, b"12345", "5")
        else:
            assert r.status == 500 and r.headers.get("connection") == "close"
            assert c.read_to_eof() == b""


def test_header_names_every_time(lenient: ServerProcess) -> None:
    """The same header name objects request after request: each is what it is
    every time (Content-Length taken out, Connection honoured, a name that is
    not a token refused)."""
    for _ in range(3):
        with Conn(lenient.port) as c:
            for _ in range(2):
                c.send(b"GET /headers?plain HTTP/1.1\r\nHost: x\r\n\r\n")
                r = read_reply(c)
                assert (r.status, r.body, r.headers["x-custom"]) == (200, b"12345", "yes")
                assert r.headers["content-length"] == "5" and r.headers["content-type"] == "text/plain"
            c.send(b"GET /headers?close HTTP/1.1\r\nHost: x\r\n\r\n")
            r = read_reply(c)
            assert (r.status, r.headers["x-custom"], r.headers.get("connection")) == \
                (200, "closing", "close")
            assert c.read_to_eof() == b""
        with Conn(lenient.port) as c:
            c.send(b"GET /headers?bad HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_reply(c).status == 500
