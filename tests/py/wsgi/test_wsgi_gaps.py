"""WSGI pieces beyond the common path, on both backends, plain and wrapped in
wsgiref.validate: the app's own reason phrase reaches the wire; write() from
a thread the app started, in order, before the iterable; a slow generator of
a handed-off request is consumed on the thread that ran the app, not on the
worker (a fast request beside it is answered meanwhile); a chunked request
body has no CONTENT_LENGTH and wsgi.input (and Flask's get_data) reads it
to the end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from wsgi_helpers import read_reply, served

from helpers import BACKENDS, ServerProcess
from http_helpers import Conn, chunked, request


@pytest.fixture(scope="module", params=[(b, v) for b in BACKENDS for v in ("app", "validated")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    backend, app = request.param
    with served(backend, f"gaps_app:{app}", "--workers", "1") as proc:
        yield proc


def get(port: int, path: str, method: str = "GET"):
    with Conn(port, timeout=30) as c:
        c.send(request(method, path))
        return read_reply(c, head=method == "HEAD")


def test_reason_phrase_of_the_app(server: ServerProcess) -> None:
    r = get(server.port, "/reason")
    assert (r.status, r.reason, r.body) == (200, "Super", b"super")
    r = get(server.port, "/reason-streamed")
    assert (r.status, r.reason) == (299, "Streamed Along")
    assert r.body == b"part 0;part 1;part 2;"
    r = get(server.port, "/reason-head", method="HEAD")
    assert (r.status, r.reason) == (404, "Nowhere To Be Found")
    r = get(server.port, "/missing")  # the standard phrase when the app gives it
    assert (r.status, r.reason) == (404, "Not Found")


def test_write_from_a_thread_of_the_app(server: ServerProcess) -> None:
    for _ in range(3):
        r = get(server.port, "/write-thread")
        assert r.status == 200
        assert r.body == b"w0;w1;w2;w3;w4;iterable;"


@pytest.mark.parametrize("query", ["block", "noblock"])
def test_slow_generator_leaves_the_worker_free(server: ServerProcess, query: str) -> None:
    """One worker: while a generator takes ~1 s, /fast requests are answered
    (the worker is not the one iterating), and every item comes from the
    thread that ran the app."""
    result: dict[str, object] = {}

    def slow() -> None:
        result["reply"] = get(server.port, f"/slow-gen?{query}")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)  # the generator is running (it takes about 1 s)
    answered_while_running = []
    while t.is_alive() and len(answered_while_running) < 3:
        assert get(server.port, "/fast").body == b"fast"
        answered_while_running.append(t.is_alive())
    t.join(30)
    reply = result["reply"]
    assert reply.body == (b"item 0;item 1;item 2;item 3;"  # type: ignore[attr-defined]
                          b"same thread")
    assert any(answered_while_running), "no /fast answer while the generator ran"


def test_chunked_request_body(server: ServerProcess) -> None:
    body = b"".join(b"%06d," % i for i in range(20000))  # 140 kB
    with Conn(server.port, timeout=30) as c:
        c.send(request("POST", "/chunked-upload", {"Transfer-Encoding": "chunked"})
               + chunked(body, [1000, 7, 65536]))
        r = read_reply(c)
    assert r.status == 200
    assert r.body == b"length=0;" + body


@pytest.mark.parametrize("backend", BACKENDS)
def test_flask_reads_a_chunked_body(backend: str) -> None:
    pytest.importorskip("flask", reason="Flask is in the test requirements")
    body = b"".join(b"%06d," % i for i in range(20000))
    with served(backend, "gaps_app:flask_app", "--factory", "--workers", "1") as proc:
        with Conn(proc.port, timeout=30) as c:
            c.send(request("POST", "/upload", {"Transfer-Encoding": "chunked"})
                   + chunked(body, [4096, 13]))
            r = read_reply(c)
    assert r.status == 200, r.body
    got = json.loads(r.body)
    assert got == {"length_header": None, "size": len(body), "head": body[:16].decode(),
                   "tail": body[-16:].decode()}
