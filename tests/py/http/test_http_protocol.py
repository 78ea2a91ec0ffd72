"""HTTP/1.1 framing through real clients (raw sockets and http.client) against
the test application (servers/http_app.py), one server per backend: request
smuggling vectors, limits, pipelining, the head deadline, keep-alive,
HTTP/1.0, HEAD, Expect: 100-continue, chunked bodies, handler exceptions."""

from __future__ import annotations

import http.client
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import BACKENDS, CRASH_MARKERS, HOST, ServerProcess, child_env
from http_helpers import (
    BIG_SIZE,
    HEAD_TIMEOUT,
    Conn,
    app_server,
    chunked,
    make_site,
    request,
    wait_for,
)

MAX_LINE = 2048
MAX_HEADER_BYTES = 4096
MAX_HEADERS = 20
MAX_BODY = 100_000
BODY_TIMEOUT = 10.0

LIMIT_ARGS = ("--head-timeout", str(HEAD_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
              "--max-request-line", str(MAX_LINE), "--max-header-bytes", str(MAX_HEADER_BYTES),
              "--max-headers", str(MAX_HEADERS), "--max-body", str(MAX_BODY))


@pytest.fixture(scope="module", params=BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    """The application with small limits, shared by this module's tests on one
    backend; it must stop cleanly with no connection left after all of them."""
    site = make_site(tmp_path_factory.mktemp("site"))
    with app_server(str(request.param), *LIMIT_ARGS, "--root", str(site.root),
                    "--file", str(site.root / "big.bin")) as proc:
        yield proc


# ---- request smuggling and malformed heads: exact status, then a close ----------

H = "Host: test\r\n"
SMUGGLING = [
    # framing conflicts
    ("cl-and-te", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-and-cl", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("cl-duplicate-same", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("cl-duplicate-differ", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("cl-list", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5, 5\r\n\r\nhello", 400),
    ("cl-plus", f"POST /echo HTTP/1.1\r\n{H}Content-Length: +5\r\n\r\nhello", 400),
    ("cl-negative", f"POST /echo HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n", 400),
    ("cl-hex", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl-suffix", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 5a\r\n\r\nhello", 400),
    ("cl-empty", f"POST /echo HTTP/1.1\r\n{H}Content-Length:\r\n\r\n", 400),
    ("cl-overflow", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("te-chunked-twice", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-not-last", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te-in-http10", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-empty-element", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-gzip", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n", 501),
    ("te-gzip-chunked", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    # line structure
    ("obs-fold", f"GET /hello HTTP/1.1\r\n{H}X-Folded: a\r\n b\r\n\r\n", 400),
    ("obs-fold-tab", f"GET /hello HTTP/1.1\r\n{H}X-Folded: a\r\n\tb\r\n\r\n", 400),
    ("bare-cr-in-value", f"GET /hello HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n", 400),
    ("bare-cr-line-end", f"GET /hello HTTP/1.1\r\n{H}X-A: a\r\r\n\r\n", 400),
    ("bare-lf-request-line", f"GET /hello HTTP/1.1\n{H}\r\n", 400),
    ("bare-lf-header", f"GET /hello HTTP/1.1\r\n{H}X-A: a\n\r\n", 400),
    ("bare-lf-end", f"GET /hello HTTP/1.1\r\n{H}\n", 400),
    ("control-in-value", f"GET /hello HTTP/1.1\r\n{H}X-A: a\x01b\r\n\r\n", 400),
    ("del-in-value", f"GET /hello HTTP/1.1\r\n{H}X-A: a\x7fb\r\n\r\n", 400),
    ("nul-in-value", f"GET /hello HTTP/1.1\r\n{H}X-A: a\x00b\r\n\r\n", 400),
    ("space-before-colon", f"GET /hello HTTP/1.1\r\n{H}X-A : a\r\n\r\n", 400),
    ("tab-before-colon", f"GET /hello HTTP/1.1\r\n{H}X-A\t: a\r\n\r\n", 400),
    ("cl-space-before-colon", f"POST /echo HTTP/1.1\r\n{H}Content-Length : 5\r\n\r\nhello", 400),
    ("no-colon", f"GET /hello HTTP/1.1\r\n{H}X-A a\r\n\r\n", 400),
    ("empty-name", f"GET /hello HTTP/1.1\r\n{H}: a\r\n\r\n", 400),
    ("name-with-space", f"GET /hello HTTP/1.1\r\n{H}X A: a\r\n\r\n", 400),
    ("name-non-token", f"GET /hello HTTP/1.1\r\n{H}X@A: a\r\n\r\n", 400),
    ("name-non-ascii", f"GET /hello HTTP/1.1\r\n{H}X-\xe9: a\r\n\r\n", 400),
    ("method-non-token", "GE(T /hello HTTP/1.1\r\nHost: test\r\n\r\n", 400),
    ("method-control", "G\x01T /hello HTTP/1.1\r\nHost: test\r\n\r\n", 400),
    ("method-empty", " /hello HTTP/1.1\r\nHost: test\r\n\r\n", 400),
    ("leading-bare-lf-line", f"\nGET /hello HTTP/1.1\r\n{H}\r\n", 400),
    ("nine-leading-empty-lines", "\r\n" * 9 + f"GET /hello HTTP/1.1\r\n{H}\r\n", 400),
    ("double-space", f"GET  /hello HTTP/1.1\r\n{H}\r\n", 400),
    ("target-fragment", f"GET /hello#x HTTP/1.1\r\n{H}\r\n", 400),
    ("target-bad-scheme", f"GET ftp://test/hello HTTP/1.1\r\n{H}\r\n", 400),
    ("target-star-get", f"GET * HTTP/1.1\r\n{H}\r\n", 400),
    ("version-lowercase", f"GET /hello http/1.1\r\n{H}\r\n", 400),
    ("version-garbage", f"GET /hello HTTP/1.x\r\n{H}\r\n", 400),
    ("no-version", f"GET /hello\r\n{H}\r\n", 400),
    # hosts
    ("missing-host", "GET /hello HTTP/1.1\r\n\r\n", 400),
    ("duplicate-host", f"GET /hello HTTP/1.1\r\n{H}{H}\r\n", 400),
    ("host-with-space", "GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    # versions and expectations
    ("http-2.0", f"GET /hello HTTP/2.0\r\n{H}\r\n", 505),
    ("http-1.2", f"GET /hello HTTP/1.2\r\n{H}\r\n", 505),
    ("http-0.9", f"GET /hello HTTP/0.9\r\n{H}\r\n", 505),
    ("expect-other", f"POST /echo HTTP/1.1\r\n{H}Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417),
    # chunked bodies
    ("chunk-size-not-hex", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-0x", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-negative", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-empty", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-space", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-17-digits", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-bare-lf", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("chunk-data-too-long", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello!\r\n0\r\n\r\n", 400),
    ("chunk-data-no-crlf", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n", 400),
    ("chunk-ext-empty", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-space-before-crlf", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;a=b \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-bad-value", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;a=@\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-unterminated", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-bare-lf", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5;a=b\nhello\r\n0\r\n\r\n", 400),
    ("trailer-obs-fold", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n", 400),
    ("trailer-space-before-colon", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T : a\r\n\r\n", 400),
    ("trailer-bare-lf", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\n\r\n", 400),
    ("chunk-size-huge", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", 413),
    # more of the same families
    ("cl-exponent", f"POST /echo HTTP/1.1\r\n{H}Content-Length: 1e1\r\n\r\n0123456789", 400),
    ("te-unknown", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\n\r\n", 501),
    ("te-quoted", f"POST /echo HTTP/1.1\r\n{H}Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", 400),
    ("bare-cr-request-line", f"GET /hello HTTP/1.1\rX\r\n{H}\r\n", 400),
    ("target-with-tab", f"GET /hel\tlo HTTP/1.1\r\n{H}\r\n", 400),
    ("target-with-nul", f"GET /hel\x00lo HTTP/1.1\r\n{H}\r\n", 400),
    ("name-with-nul", f"GET /hello HTTP/1.1\r\n{H}X-\x00: a\r\n\r\n", 400),
]


def assert_refused_and_closed(port: int, data: bytes, status: int, pieces: int = 1) -> None:
    with Conn(port) as c:
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            try:
                c.send(data[i:i + step])
            except (BrokenPipeError, ConnectionResetError):
                break  # already answered and closed; the answer is still readable
            if pieces > 1:
                time.sleep(0.01)
        reply = c.read_reply()
        assert reply.status == status, (reply.status, reply.body)
        assert reply.headers.get("connection") == "close"
        leftover = c.closed_cleanly()
        assert leftover is None, f"after the {status}: {leftover!r}"


@pytest.mark.parametrize("name,raw,status", SMUGGLING, ids=[v[0] for v in SMUGGLING])
def test_smuggling_vector_refused(app: ServerProcess, name: str, raw: str, status: int) -> None:
    assert_refused_and_closed(app.port, raw.encode("latin-1"), status)


IN_PIECES = [v for v in SMUGGLING if v[0] in ("cl-and-te", "obs-fold", "bare-lf-header",
                                               "chunk-ext-unterminated", "http-2.0", "te-gzip",
                                               "missing-host")]


@pytest.mark.parametrize("name,raw,status", IN_PIECES, ids=[v[0] for v in IN_PIECES])
def test_smuggling_vector_refused_in_pieces(app: ServerProcess, name: str, raw: str,
                                            status: int) -> None:
    """The same verdict when the bytes arrive a few at a time."""
    assert_refused_and_closed(app.port, raw.encode("latin-1"), status, pieces=7)


def test_smuggled_request_after_error_is_not_answered(app: ServerProcess) -> None:
    """What follows a refused request on its connection is never served."""
    data = (f"POST /echo HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"0\r\n\r\nGET /id/smuggled HTTP/1.1\r\n{H}\r\n").encode()
    with Conn(app.port) as c:
        c.send(data)
        assert c.read_reply().status == 400
        assert c.closed_cleanly() is None


def test_valid_requests_next_to_the_vectors_are_served(app: ServerProcess) -> None:
    """The vectors' well-formed twins are accepted, so the refusals above are
    about the defect and not the request."""
    ok = [
        request("POST", "/echo", {"Content-Length": "5"}, b"hello"),
        request("POST", "/echo", {"Transfer-Encoding": "chunked"}, chunked(b"hello", [2], ext=True)),
        request("POST", "/echo", {"Transfer-Encoding": "Chunked"}, b"5\r\nhello\r\n0\r\nX-T: a\r\n\r\n"),
        request("GET", "/hello", {"X-A": "a \t b", "X-Empty": ""}),
        request("GET", "http://test/hello"),
        request("GET", "/hello", {"Content-Length": "0"}),
        request("OPTIONS", "*"),
        request("GET", "/hello", version="HTTP/1.0", host=False),
    ]
    for data in ok:
        with Conn(app.port) as c:
            c.send(data)
            reply = c.read_reply()
            assert reply.status in (200, 404, 405), (data, reply)
            if data.startswith(b"POST"):
                assert reply.body == b"hello"


# ---- limits ------------------------------------------------------------------------

def test_request_line_at_the_limit_is_served(app: ServerProcess) -> None:
    line_len = len("GET  HTTP/1.1")
    target = "/hello?" + "q" * (MAX_LINE - line_len - len("/hello?"))
    data = request("GET", target)
    assert data.index(b"\r\n") == MAX_LINE
    with Conn(app.port) as c:
        c.send(data)
        assert c.read_reply().status == 200


def test_request_line_over_the_limit_is_414(app: ServerProcess) -> None:
    assert_refused_and_closed(app.port, request("GET", "/hello?" + "q" * MAX_LINE), 414)


def test_request_line_over_the_limit_is_414_before_it_ends(app: ServerProcess) -> None:
    """The verdict does not wait for the end of the line."""
    with Conn(app.port) as c:
        c.send(b"GET /" + b"a" * (MAX_LINE + 10))
        reply = c.read_reply()
        assert reply.status == 414
        assert c.closed_cleanly() is None


def test_request_line_one_byte_over_the_limit_is_414(app: ServerProcess) -> None:
    target = "/hello?" + "q" * (MAX_LINE - len("GET  HTTP/1.1") - len("/hello?") + 1)
    data = request("GET", target)
    assert data.index(b"\r\n") == MAX_LINE + 1
    assert_refused_and_closed(app.port, data, 414)


def test_header_block_at_the_limit_is_served(app: ServerProcess) -> None:
    """max_header_bytes counts the whole head, request line and final CRLFs included."""
    base = len(request("GET", "/hello", {"X-Pad": ""}))
    exact = request("GET", "/hello", {"X-Pad": "p" * (MAX_HEADER_BYTES - base)})
    assert len(exact) == MAX_HEADER_BYTES
    with Conn(app.port) as c:
        c.send(exact)
        assert c.read_reply().status == 200
    over = request("GET", "/hello", {"X-Pad": "p" * (MAX_HEADER_BYTES - base + 1)})
    assert_refused_and_closed(app.port, over, 431)


def test_too_many_headers_is_431(app: ServerProcess) -> None:
    headers = {f"X-H{i}": "v" for i in range(MAX_HEADERS)}  # plus Host: one too many
    assert_refused_and_closed(app.port, request("GET", "/hello", headers), 431)
    headers.pop("X-H0")
    with Conn(app.port) as c:
        c.send(request("GET", "/hello", headers))
        assert c.read_reply().status == 200


def test_header_block_too_big_is_431(app: ServerProcess) -> None:
    assert_refused_and_closed(app.port, request("GET", "/hello", {"X-Big": "v" * MAX_HEADER_BYTES}),
                              431)
    with Conn(app.port) as c:
        c.send(request("GET", "/hello", {"X-Big": "v" * (MAX_HEADER_BYTES // 2)}))
        assert c.read_reply().status == 200


def test_body_over_the_limit_is_413(app: ServerProcess) -> None:
    # The head alone decides: the verdict comes before any body byte is sent.
    assert_refused_and_closed(app.port, request("POST", "/echo", {"Content-Length": str(MAX_BODY + 1)}),
                              413)
    body = os.urandom(MAX_BODY)
    with Conn(app.port) as c:
        c.send(request("POST", "/echo", body=body))
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == body


def test_chunked_body_over_the_limit_is_413(app: ServerProcess) -> None:
    head = request("POST", "/echo", {"Transfer-Encoding": "chunked"})
    with Conn(app.port) as c:
        c.send(head + b"%x\r\n" % (MAX_BODY // 2) + b"a" * (MAX_BODY // 2) + b"\r\n")
        c.send(b"%x\r\n" % (MAX_BODY // 2 + 1))  # the size line alone is over the limit
        reply = c.read_reply()
        assert reply.status == 413
        assert c.closed_cleanly() is None


def test_default_limits(spawn, backend: str) -> None:
    """Without configuration: 8 KiB request line, 16 KiB head, 100 headers, 1 MiB body."""
    proc = spawn("http_app.py", backend=backend)
    port = proc.port
    with Conn(port) as c:
        c.send(request("GET", "/hello?" + "q" * 7000))
        assert c.read_reply().status == 200
    assert_refused_and_closed(port, request("GET", "/hello?" + "q" * 8200), 414)
    with Conn(port) as c:
        c.send(request("GET", "/hello", {f"X-{i}": "v" for i in range(99)}))
        assert c.read_reply().status == 200
    assert_refused_and_closed(port, request("GET", "/hello", {f"X-{i}": "v" for i in range(100)}), 431)
    assert_refused_and_closed(port, request("GET", "/hello", {"X-Big": "v" * 16400}), 431)
    assert_refused_and_closed(port, request("POST", "/echo", {"Content-Length": str((1 << 20) + 1)}),
                              413)
    with Conn(port) as c:
        body = os.urandom(1 << 20)
        c.send(request("POST", "/echo", body=body))
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == body


# ---- pipelining ----------------------------------------------------------------------

def test_hundred_pipelined_requests_in_one_write(app: ServerProcess) -> None:
    data = b"".join(request("GET", f"/id/{i}") for i in range(100))
    with Conn(app.port) as c:
        c.send(data)
        for i in range(100):
            reply = c.read_reply()
            assert reply.status == 200
            assert reply.body == f"req {i}".encode()
        assert c.still_open()


def test_pipelined_mixed_methods_and_bodies_in_order(app: ServerProcess) -> None:
    rng = random.Random(7)
    parts, expect = [], []
    for i in range(100):
        kind = i % 4
        if kind == 0:
            parts.append(request("GET", f"/id/{i}"))
            expect.append((False, f"req {i}".encode()))
        elif kind == 1:
            body = rng.randbytes(rng.randrange(0, 3000))
            parts.append(request("POST", "/echo", {"Content-Length": str(len(body))}, body))
            expect.append((False, body))
        elif kind == 2:
            body = rng.randbytes(rng.randrange(1, 3000))
            parts.append(request("POST", "/echo", {"Transfer-Encoding": "chunked"},
                                 chunked(body, [rng.randrange(1, 500)], ext=bool(i % 3))))
            expect.append((False, body))
        else:
            parts.append(request("HEAD", f"/id/{i}"))
            expect.append((True, f"req {i}".encode()))
    data = b"".join(parts)
    with Conn(app.port) as c:
        c.send(data)
        for i, (head, body) in enumerate(expect):
            reply = c.read_reply(head=head)
            assert reply.status == 200, i
            if head:
                assert reply.body == b"" and int(reply.headers["content-length"]) == len(body)
            else:
                assert reply.body == body, i
        assert c.still_open()


def test_pipelined_file_and_buffer_responses_keep_their_order(app: ServerProcess) -> None:
    """Kernel-sent file bodies and buffered bodies interleave in request order."""
    big = (Path(app.argv[app.argv.index("--file") + 1])).read_bytes()
    rng = random.Random(11)
    parts, expect = [], []
    for i in range(40):
        if i % 2:
            parts.append(request("GET", f"/id/{i}"))
            expect.append(f"req {i}".encode())
        else:
            a = rng.randrange(len(big) - 1)
            b = min(len(big) - 1, a + rng.randrange(1 << 19))
            target = "/static/big.bin" if i % 4 else "/file"
            parts.append(request("GET", target, {"Range": f"bytes={a}-{b}"}))
            expect.append(big[a:b + 1])
    with Conn(app.port, timeout=30) as c:
        c.send(b"".join(parts))
        for i, body in enumerate(expect):
            reply = c.read_reply()
            assert reply.status in (200, 206) and reply.body == body, i
        assert c.still_open()


def test_pipeline_larger_than_the_socket_buffers(app: ServerProcess) -> None:
    """Three megabytes of pipelined requests written while the answers are read:
    requests cross every receive boundary and all come back in order."""
    rng = random.Random(3)
    parts, expect = [], []
    for i in range(300):
        body = rng.randbytes(rng.randrange(0, 20000))
        headers = {"X-Pad": "p" * rng.randrange(0, 3000)}
        if i % 2:
            headers["Transfer-Encoding"] = "chunked"
            parts.append(request("POST", "/echo", headers, chunked(body, [rng.randrange(1, 5000)])))
        else:
            parts.append(request("POST", "/echo", headers, body))
        expect.append(body)
    with Conn(app.port, timeout=20) as c:
        writer = threading.Thread(target=c.sock.sendall, args=(b"".join(parts),), daemon=True)
        writer.start()
        for i, body in enumerate(expect):
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == body, i
        writer.join(20)
        assert not writer.is_alive()
        assert c.still_open()


def test_client_that_never_reads_is_held_back(app: ServerProcess) -> None:
    """Pipelined requests from a client that reads no answers: the server stops
    reading once its answers back up (the writer blocks long before 180 MB of
    requests are in), and every answer still arrives, in order, afterwards."""
    body = os.urandom(MAX_BODY - 10_000)
    one = request("POST", "/echo", body=body)
    total = 2000
    written = [0]
    with Conn(app.port, timeout=30, rcvbuf=65536) as c:
        def writer() -> None:
            try:
                for _ in range(total):
                    c.sock.sendall(one)
                    written[0] += 1
            except OSError:
                pass  # reported by the reads below

        rss_before = app.rss()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(3)
        assert written[0] < total // 2, f"{written[0]} requests taken in without backpressure"
        assert app.rss() - rss_before < 150 << 20
        for i in range(total):
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == body, i
        thread.join(20)
        assert written[0] == total


def test_pipelined_requests_split_at_every_byte(app: ServerProcess) -> None:
    """Requests arriving in odd pieces are framed the same."""
    data = b"".join([request("GET", "/id/a"), request("POST", "/echo", body=b"xyz"),
                     request("POST", "/echo", {"Transfer-Encoding": "chunked"},
                             chunked(b"chunky", [1, 2])), request("GET", "/id/b")])
    with Conn(app.port) as c:
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
        assert [c.read_reply().body for _ in range(4)] == [b"req a", b"xyz", b"chunky", b"req b"]


# ---- deadlines ---------------------------------------------------------------------------

def test_head_deadline_cuts_off_a_slow_client(app: ServerProcess) -> None:
    """One header byte per second: closed at the head deadline, not before."""
    data = request("GET", "/hello", {"X-Slow": "y" * 20})
    with Conn(app.port) as c:
        start = time.monotonic()
        closed_at = None
        for byte in data:
            try:
                c.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            sent = time.monotonic()
            ready, _, _ = select.select([c.sock], [], [], 1.0)
            if ready:
                try:
                    got = c.sock.recv(4096)
                except ConnectionResetError:
                    got = b""
                assert got == b"", f"the server answered a partial head: {got!r}"
                closed_at = time.monotonic()
                break
            assert sent - start < HEAD_TIMEOUT + 3, "still open long after the head deadline"
        assert closed_at is not None, "the whole request was sent: it was never cut off"
        elapsed = closed_at - start
        assert HEAD_TIMEOUT - 0.25 <= elapsed <= HEAD_TIMEOUT + 1.5, elapsed


def test_head_deadline_waits_while_the_server_holds_back(app: ServerProcess) -> None:
    """Pipelined requests whose answers back up, then the start of one more head:
    while the server is not reading (its answers are not drained) the head
    deadline is held, so a client that reads late still gets every answer; the
    deadline runs on once the server reads again."""
    n = 8  # answers of 5 MiB each: far over the high-water mark
    with Conn(app.port, timeout=30, rcvbuf=65536) as c:
        c.send(request("GET", "/file") * n + b"GET /hello HTTP/1.1\r\nHo")
        time.sleep(HEAD_TIMEOUT + 1.5)  # past the head deadline, reading nothing
        for i in range(n):
            reply = c.read_reply()
            assert reply.status == 200 and len(reply.body) == BIG_SIZE, i
        start = time.monotonic()
        assert c.closed_cleanly(timeout=HEAD_TIMEOUT + 3) is None  # the deadline ran on
        assert time.monotonic() - start <= HEAD_TIMEOUT + 1.5


def test_idle_connection_is_not_cut_at_the_head_deadline(app: ServerProcess) -> None:
    """The head deadline starts with the first byte of a request, not at accept
    or after a response (the keep-alive timeout governs idle connections)."""
    with Conn(app.port) as c:
        time.sleep(HEAD_TIMEOUT + 0.7)
        c.send(request("GET", "/id/1"))
        assert c.read_reply().body == b"req 1"
        time.sleep(HEAD_TIMEOUT + 0.7)
        c.send(request("GET", "/id/2"))
        assert c.read_reply().body == b"req 2"


def test_head_deadline_restarts_for_each_request(app: ServerProcess) -> None:
    """A slow but complete head within the deadline, then another one: each
    request has its own deadline."""
    with Conn(app.port) as c:
        for i in range(2):
            data = request("GET", f"/id/{i}")
            half = len(data) // 2
            c.send(data[:half])
            time.sleep(HEAD_TIMEOUT * 0.6)
            c.send(data[half:])
            assert c.read_reply().body == f"req {i}".encode()


def test_slow_content_length_body_gets_the_body_timeout(app: ServerProcess) -> None:
    """Once the head is in, the body has body_timeout (not what is left of the
    head deadline)."""
    head = request("POST", "/echo", {"Content-Length": "10"})
    with Conn(app.port) as c:
        c.send(head + b"12345")
        time.sleep(HEAD_TIMEOUT + 1.0)  # well within BODY_TIMEOUT
        try:
            c.send(b"67890")
            reply = c.read_reply()
        except (AssertionError, ConnectionResetError, BrokenPipeError) as exc:
            raise AssertionError(f"cut off while sending the body: {exc!r}") from None
        assert reply.status == 200 and reply.body == b"1234567890"


def test_slow_chunked_body_gets_the_body_timeout(app: ServerProcess) -> None:
    head = request("POST", "/echo", {"Transfer-Encoding": "chunked"})
    with Conn(app.port) as c:
        c.send(head + b"5\r\nhello\r\n")
        time.sleep(HEAD_TIMEOUT + 1.0)  # well within BODY_TIMEOUT
        c.send(b"0\r\n\r\n")
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == b"hello"


def test_body_deadline_cuts_off_a_slow_chunked_body(spawn, backend: str) -> None:
    """body_timeout bounds the body once the head is in (here shorter than the
    head deadline)."""
    proc = spawn("http_app.py", "--head-timeout", "6", "--body-timeout", "1.5", backend=backend)
    with Conn(proc.port) as c:
        c.send(request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
        start = time.monotonic()
        closed_at = None
        while time.monotonic() - start < 5:
            try:
                c.send(b"1\r\nx\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            ready, _, _ = select.select([c.sock], [], [], 0.5)
            if ready:
                try:
                    got = c.sock.recv(4096)
                except ConnectionResetError:
                    got = b""
                assert got == b"", f"the server answered a partial body: {got!r}"
                closed_at = time.monotonic()
                break
        assert closed_at is not None, "a body trickling for 5 s was never cut off"
        assert 1.5 - 0.25 <= closed_at - start <= 1.5 + 1.5, closed_at - start


# ---- keep-alive and versions ------------------------------------------------------------

def test_keepalive_timeout_closes_idle_connections(spawn, backend: str) -> None:
    proc = spawn("http_app.py", "--keepalive-timeout", "1.0", backend=backend)
    with Conn(proc.port) as c:
        c.send(request("GET", "/id/1"))
        assert c.read_reply().body == b"req 1"
        start = time.monotonic()
        assert c.closed_cleanly(6) is None
        assert 0.7 <= time.monotonic() - start <= 3.0
    with Conn(proc.port) as c:  # never used: the same
        start = time.monotonic()
        assert c.closed_cleanly(6) is None
        assert 0.7 <= time.monotonic() - start <= 3.0


def test_keep_alive_reuses_one_connection(app: ServerProcess) -> None:
    conn = http.client.HTTPConnection(HOST, app.port, timeout=10)
    try:
        conn.request("GET", "/id/0")
        r = conn.getresponse()
        assert r.read() == b"req 0"
        sock = conn.sock
        local = sock.getsockname()
        for i in range(1, 50):
            conn.request("GET", f"/id/{i}")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == f"req {i}".encode()
            assert r.getheader("Connection") is None
            assert conn.sock is sock and sock.getsockname() == local
    finally:
        conn.close()


def test_http10_without_keep_alive_closes(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", "/id/10", version="HTTP/1.0", host=False))
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == b"req 10"
        assert reply.version == "HTTP/1.1"
        assert reply.headers.get("connection") == "close"
        assert c.closed_cleanly() is None


def test_http10_with_keep_alive_stays_open(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        for i in range(3):
            c.send(request("GET", f"/id/{i}", {"Connection": "keep-alive"}, version="HTTP/1.0",
                           host=False))
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == f"req {i}".encode()
            assert reply.headers.get("connection", "").lower() == "keep-alive"
        # and without it, the last one closes
        c.send(request("GET", "/id/last", version="HTTP/1.0", host=False))
        assert c.read_reply().body == b"req last"
        assert c.closed_cleanly() is None


def test_http10_keep_alive_to_a_static_route_stays_open(app: ServerProcess) -> None:
    """Static routes answer through the same head writer as every response:
    HTTP/1.0 keep-alive is kept and said, twice on one connection."""
    with Conn(app.port) as c:
        for _ in range(2):
            c.send(request("GET", "/static-hello", {"Connection": "keep-alive"},
                           version="HTTP/1.0", host=False))
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == b"static hello"
            assert reply.headers.get("connection", "").lower() == "keep-alive"
        assert c.still_open()
        c.send(request("GET", "/static-hello", version="HTTP/1.0", host=False))
        reply = c.read_reply()
        assert reply.body == b"static hello" and reply.headers.get("connection") == "close"
        assert c.closed_cleanly() is None


def test_http11_connection_close(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", "/id/1", {"Connection": "close"}) + request("GET", "/id/2"))
        reply = c.read_reply()
        assert reply.body == b"req 1" and reply.headers.get("connection") == "close"
        assert c.closed_cleanly() is None  # the pipelined second request is not answered


def test_request_fields_reach_the_handler(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("POST", "/info?a=1&b=%20", {"X-Mixed-Case": "V", "x-two": "1",
                                                   "X-Two": "2"}, b"body"))
        info = json.loads(c.read_reply().body)
    assert info["method"] == "POST" and info["path"] == "/info" and info["query"] == "a=1&b=%20"
    assert info["target"] == "/info?a=1&b=%20" and info["version"] == "HTTP/1.1"
    assert info["keep_alive"] is True
    assert info["headers"]["x-mixed-case"] == "V" and info["headers"]["x-two"] == "1, 2"
    assert info["headers"]["host"] == "test"


def test_request_json_args_header_and_peer(app: ServerProcess) -> None:
    """Request.json(), .args, .header() and .remote_addr in a C-routed handler."""
    with Conn(app.port) as c:
        c.send(request("POST", "/sum?x=1&x=2&empty=", {"User-Agent": "probe/1"}, b"[1, 2, 39]"))
        reply = c.read_reply()
        local = c.sock.getsockname()
    assert reply.status == 200, reply
    info = json.loads(reply.body)
    assert info["sum"] == 42 and info["agent"] == "probe/1"
    assert info["args"] == {"x": "1", "empty": ""}
    assert info["client"] == [local[0], local[1]]


@pytest.mark.parametrize("body,status", [(b"[1, 2", 400), (b"\xff\xfe", 400), (b"", 400),
                                         (b'{"a": 1}', 422)])
def test_http_error_from_a_c_routed_handler(app: ServerProcess, body: bytes, status: int) -> None:
    """A body that is not JSON is the client's error (400); an HttpError raised by
    a handler the C route table calls gets its own status, not a 500."""
    with Conn(app.port) as c:
        c.send(request("POST", "/sum", body=body) + request("GET", "/hello"))
        first, second = c.read_reply(), c.read_reply()
    assert first.status == status, first
    assert second.body == b"hello"  # the connection carries on


# ---- HEAD ---------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/hello", "/id/x?a=1", "/file", "/part/10/1010",
                                    "/static/hello.txt", "/static/big.bin", "/static/sub/"])
def test_head_has_no_body_but_the_get_length(app: ServerProcess, target: str) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", target))
        get = c.read_reply()
        assert get.status == 200 or (target.startswith("/part") and get.status == 206)
        c.send(request("HEAD", target) + request("GET", "/id/after"))
        head = c.read_reply(head=True)
        assert head.status == get.status
        assert head.headers["content-length"] == str(len(get.body))
        assert head.headers.get("content-type") == get.headers.get("content-type")
        # the next bytes are the next response: the HEAD answer carried no body
        nxt = c.read_reply()
        assert nxt.status == 200 and nxt.body == b"req after"


# ---- Expect: 100-continue and request bodies -------------------------------------------------

def test_expect_100_continue(app: ServerProcess) -> None:
    body = os.urandom(50_000)
    with Conn(app.port) as c:
        c.send(request("POST", "/echo", {"Content-Length": str(len(body)),
                                         "Expect": "100-continue"}))
        interim = c.read_reply()
        assert interim.status == 100 and interim.body == b""
        c.send(body)
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == body
        # the connection goes on
        c.send(request("GET", "/id/next"))
        assert c.read_reply().body == b"req next"


def test_expect_100_continue_with_chunked_body(app: ServerProcess) -> None:
    body = os.urandom(20_000)
    with Conn(app.port) as c:
        c.send(request("POST", "/echo", {"Transfer-Encoding": "chunked", "Expect": "100-continue"}))
        assert c.read_reply().status == 100
        c.send(chunked(body, [4096, 1, 777]))
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == body


def test_expect_100_continue_pipelined(app: ServerProcess) -> None:
    """The interim 100 comes after the answers to the requests before it."""
    with Conn(app.port) as c:
        c.send(request("GET", "/id/1") +
               request("POST", "/echo", {"Expect": "100-continue", "Content-Length": "5"}))
        assert c.read_reply().body == b"req 1"
        assert c.read_reply().status == 100
        c.send(b"hello" + request("POST", "/echo", {"Expect": "100-continue", "Content-Length": "3"}))
        assert c.read_reply().body == b"hello"
        assert c.read_reply().status == 100
        c.send(b"xyz")
        assert c.read_reply().body == b"xyz"


def test_expect_100_continue_refused_body_too_big(app: ServerProcess) -> None:
    """Over max_body: 413 instead of 100, and the client never sends the body."""
    assert_refused_and_closed(app.port, request("POST", "/echo", {
        "Content-Length": str(MAX_BODY + 1), "Expect": "100-continue"}), 413)


def test_expect_ignored_in_http10(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("POST", "/echo", {"Expect": "100-continue", "Content-Length": "3"},
                       version="HTTP/1.0", host=False))
        c.send(b"abc")
        reply = c.read_reply()
        assert reply.status == 200 and reply.body == b"abc"


@pytest.mark.parametrize("sizes", [[1], [7, 1, 4096], [65536], [1 << 20]], ids=str)
def test_chunked_post_echoed_exactly(app: ServerProcess, sizes: list[int]) -> None:
    # What the client sends counts against the limit (framing may add a 16th
    # and 4 KiB): one-byte chunks with these extensions send 31 bytes a byte,
    # so a smaller body (the whole limit so sent: test_hostile_body.py).
    body = os.urandom(MAX_BODY if sizes != [1] else 3_000)
    with Conn(app.port) as c:
        c.send(request("POST", "/echo", {"Transfer-Encoding": "chunked"},
                       chunked(body, sizes, ext=True, trailers=b"X-Sum: 1\r\nX-Other: 2\r\n")))
        reply = c.read_reply()
        assert reply.status == 200
        assert reply.headers["x-body-length"] == str(len(body))
        assert reply.body == body


def test_chunked_post_through_http_client(app: ServerProcess) -> None:
    body = os.urandom(80_000)
    conn = http.client.HTTPConnection(HOST, app.port, timeout=10)
    try:
        conn.request("POST", "/echo", body=(body[i:i + 9999] for i in range(0, len(body), 9999)),
                     encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        assert r.status == 200 and r.read() == body
        conn.request("PUT", "/echo", body=body[:1234])
        r = conn.getresponse()
        assert r.status == 200 and r.read() == body[:1234] and r.getheader("X-Method") == "PUT"
    finally:
        conn.close()


def test_empty_bodies(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("POST", "/echo", {"Content-Length": "0"}) +
               request("POST", "/echo", {"Transfer-Encoding": "chunked"}, b"0\r\n\r\n"))
        for _ in range(2):
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == b""
            assert reply.headers["content-length"] == "0"


# ---- handler exceptions ------------------------------------------------------------------

def test_handler_exception_is_500_and_logged(spawn, backend: str) -> None:
    proc = spawn("http_app.py", backend=backend)
    proc.allow_tracebacks = True
    for attempt in range(3):
        with Conn(proc.port) as c:
            c.send(request("GET", "/boom") + request("GET", "/id/never"))
            reply = c.read_reply()
            assert reply.status == 500
            assert b"boom from the handler" not in reply.body  # no details to the client
            assert reply.headers.get("connection") == "close"
            assert c.closed_cleanly() is None
        with Conn(proc.port) as c:  # and the server goes on serving
            c.send(request("GET", f"/id/{attempt}"))
            assert c.read_reply().body == f"req {attempt}".encode()
    assert wait_for(lambda: proc.stderr_text().count("RuntimeError: boom from the handler") == 3,
                    10), proc.stderr_text()[-3000:]
    err = proc.stderr_text()
    assert "Traceback (most recent call last)" in err and "in boom" in err
    # the engine counted the errors
    stats = proc.stats()
    assert stats["total"]["errors"] >= 3


def test_unknown_route_and_method(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", "/nothing-here") + request("DELETE", "/hello") +
               request("BREW", "/hello"))
        assert c.read_reply().status == 404
        r = c.read_reply()
        assert r.status == 405 and "GET" in r.headers["allow"]
        assert c.read_reply().status == 405
        assert c.still_open()


@pytest.mark.parametrize("target,status,body", [
    ("/greet/J%C3%BCrgen%20X?x=1&y=", 200, {"name": "J\u00fcrgen X", "x": "1", "y": ""}),
    ("/greet/a?name=zzz", 200, {"name": "a"}),  # the path's parameter wins
    ("/greet/me", 200, {"me": True}),            # exact before {param}
    ("/greet/%ZZ%2f", 200, {"name": "%ZZ/"}),    # lenient decoding, like unquote
    ("/greet/%FF", 200, {"name": "\ufffd"}),
    ("/greet/", 404, None), ("/greet/a/b", 404, None),
    ("/files/a.b.txt", 200, {"stem": "a.b"}), ("/files/.txt", 404, None),
    ("/tree/a/b%2Fc", 200, {"rest": "a/b/c"}), ("/tree/", 200, {"rest": ""}),
    ("/tree", 404, None),
    # several parameters in a segment: the earlier ones take what they can
    ("/pkg/py-parallel-1.2.tar.gz", 200, {"name": "py-parallel", "version": "1.2.tar",
                                          "ext": "gz"}),
    ("/pkg/a-1.whl", 200, {"name": "a", "version": "1", "ext": "whl"}),
    ("/pkg/a1.whl", 404, None),
])
def test_routes_matched_in_c(app: ServerProcess, target: str, status: int, body: object) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", target))
        reply = c.read_reply()
        assert reply.status == status, (target, reply)
        if body is not None:
            assert json.loads(reply.body) == body


def test_method_name_route_and_allow(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", "/plain") + request("HEAD", "/plain") + request("POST", "/plain") +
               request("DELETE", "/echo") + request("POST", "/tree/x"))
        assert c.read_reply().body == b"plain"
        assert c.read_reply(head=True).status == 200
        r = c.read_reply()
        assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
        assert r.body == b"405 Method Not Allowed\n"
        r = c.read_reply()
        assert r.status == 405 and r.headers["allow"] == "GET, POST, PUT"
        r = c.read_reply()
        assert r.status == 405 and r.headers["allow"] == "GET"
        assert c.still_open()


ROUTE_TABLE_CHECKS = r"""
import json
import pyparallel as px
from pyparallel import _core
from pyparallel.http import HttpServer, route

out = {"defaults": _core.http_defaults(), "server_name": HttpServer.server_name}
eng = px.engine(1)
for pattern in ("no-slash", "/{a}/{a}"):
    class Bad(HttpServer):
        @route(pattern)
        def handler(self, request, **params):
            return b""
    try:
        Bad.__px_listen__(eng, "127.0.0.1", 0, -1)
        out[pattern] = "accepted"
    except ValueError as exc:
        out[pattern] = str(exc)
print(json.dumps(out))
"""


def test_route_table_refusals_and_defaults() -> None:
    """Patterns the C table cannot route (no leading '/', a name twice) are refused when the
    class starts listening; the Python layer's defaults are the engine's."""
    res = subprocess.run([sys.executable, "-c", ROUTE_TABLE_CHECKS], env=child_env(None),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and not any(m in res.stderr for m in CRASH_MARKERS), res.stderr
    out = json.loads(res.stdout)
    assert out["defaults"] == {"keepalive_timeout": 60.0, "head_timeout": 10.0,
                               "body_timeout": 30.0, "max_body": 1 << 20, "max_headers": 100,
                               "max_request_line": 8192, "max_header_bytes": 16384,
                               "server_name": "pyparallel"}
    assert out["server_name"] == "pyparallel"
    for pattern in ("no-slash", "/{a}/{a}"):
        assert out[pattern].startswith(f"route {pattern!r} "), out


# ---- statuses without a body ---------------------------------------------------------------

@pytest.mark.parametrize("code", [204, 304])
def test_no_body_status_sends_no_body(app: ServerProcess, code: int) -> None:
    """A handler's body for a status that has none is not sent: sending it
    without a length would desynchronise the connection."""
    with Conn(app.port) as c:
        c.send(request("GET", f"/status/{code}") + request("GET", "/id/next"))
        reply = c.read_reply()
        assert reply.status == code and "content-length" not in reply.headers
        nxt = c.read_reply()
        assert nxt.status == 200 and nxt.body == b"req next"


def test_412_reason_phrase(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", "/status/412"))
        reply = c.read_reply()
        assert reply.status == 412 and reply.reason == "Precondition Failed"


@pytest.mark.parametrize("code", [100, 101, 199])
def test_informational_status_from_a_handler_is_refused(app: ServerProcess, code: int) -> None:
    with Conn(app.port) as c:
        c.send(request("GET", f"/status/{code}") + request("GET", "/id/next"))
        reply = c.read_reply()
        assert reply.status == 500, f"a {reply.status} as the final response"
