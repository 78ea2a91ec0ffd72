"""Streamed responses of an HttpServer (servers/stream_app.py), both backends:
generators sent chunked as they produce, a StreamingResponse whose length is
enforced (short or long: the connection closes, the body is never corrupt),
HEAD, HTTP/1.0 (until the close), a pipelined request answered after the
stream, an HttpStream written by another thread after the handler returned,
a slow reader (the writer waits: the server's memory stays bounded), the
generator closed when its client goes away, and Server-Sent Events read by
a real client (http.client), whose departure the sending thread notices.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable

from helpers import MiB, ServerProcess, example
from http_helpers import Conn, request


def start(spawn: Callable[..., ServerProcess], backend: str) -> ServerProcess:
    return spawn("stream_app.py", backend=backend)


def read_chunked(conn: Conn) -> bytes:
    body = b""
    while True:
        size = int(conn.read_until(b"\r\n")[:-2].split(b";")[0], 16)
        if size == 0:
            assert conn.read_until(b"\r\n") == b"\r\n"
            return body
        body += conn.read_exact(size)
        assert conn.read_exact(2) == b"\r\n"


def closed_counts(port: int) -> dict[str, int]:
    with Conn(port) as c:
        c.send(request("GET", "/closed"))
        return dict(json.loads(c.read_reply().body))


def wait_closed(port: int, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while closed_counts(port)[name] < 1:
        assert time.monotonic() < deadline, f"{name}: the server never noticed the client left"
        time.sleep(0.05)


def test_generator_chunked_then_pipelined(spawn, backend):
    srv = start(spawn, backend)
    with Conn(srv.port) as c:
        c.send(request("GET", "/gen") + request("GET", "/plain"))
        reply = c.read_reply(head=True)
        assert reply.status == 200
        assert reply.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in reply.headers
        assert read_chunked(c) == b"one,two,three"
        assert c.read_reply().body == b"plain"  # after the stream, in order


def test_length_enforced(spawn, backend):
    srv = start(spawn, backend)
    with Conn(srv.port) as c:
        c.send(request("GET", "/len/10"))
        reply = c.read_reply()
        assert reply.headers["content-length"] == "10"
        assert reply.headers["x-streamed"] == "yes"
        assert reply.body == b"0123456789"
        c.send(request("GET", "/plain"))
        assert c.read_reply().body == b"plain"
    for n, sent in ((12, b"0123456789"), (8, b"01234")):  # short, then long
        with Conn(srv.port) as c:
            c.send(request("GET", f"/len/{n}"))
            reply = c.read_reply(head=True)
            assert reply.headers["content-length"] == str(n)
            assert c.read_to_eof() == sent  # then closed: the client sees a cut body


def test_head_and_http10(spawn, backend):
    srv = start(spawn, backend)
    with Conn(srv.port) as c:
        c.send(request("HEAD", "/forever") + request("GET", "/plain"))
        reply = c.read_reply(head=True)
        assert reply.status == 200 and reply.headers["transfer-encoding"] == "chunked"
        assert c.read_reply().body == b"plain"  # no body came between
    with Conn(srv.port) as c:
        c.send(b"GET /gen HTTP/1.0\r\n\r\n")
        reply = c.read_reply(head=True)
        assert "transfer-encoding" not in reply.headers
        assert "content-length" not in reply.headers
        assert reply.headers["connection"] == "close"
        assert c.read_to_eof() == b"one,two,three"


def test_written_by_another_thread(spawn, backend):
    srv = start(spawn, backend)
    with Conn(srv.port) as c:
        c.send(request("GET", "/thread") + request("GET", "/plain"))
        reply = c.read_reply(head=True)
        assert reply.headers["transfer-encoding"] == "chunked"
        assert read_chunked(c) == b"".join(b"line %d\n" % i for i in range(5))
        assert c.read_reply().body == b"plain"


def test_slow_reader_bounded_memory(spawn, backend):
    srv = start(spawn, backend)
    mb = 64
    rss0 = srv.rss()
    with Conn(srv.port, rcvbuf=64 << 10) as c:
        c.send(request("GET", f"/big/{mb}"))
        time.sleep(1.5)  # the client reads nothing: the writer must wait
        grown = srv.rss() - rss0
        assert grown < 24 * MiB, f"the server took {grown / MiB:.1f} MiB for a slow reader"
        reply = c.read_reply()
        assert reply.headers["content-length"] == str(mb * MiB)
        assert reply.body == (bytes(range(256)) * 256) * (mb * 16)


def test_disconnect_closes_generator(spawn, backend):
    srv = start(spawn, backend)
    c = Conn(srv.port)
    c.send(request("GET", "/forever"))
    c.read_reply(head=True)
    c.read_until(b"tick 3\n")
    c.close()
    wait_closed(srv.port, "forever")


def test_sse_real_client(spawn, backend):
    srv = start(spawn, backend)
    client = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    client.request("GET", "/sse", headers={"Accept": "text/event-stream"})
    resp = client.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Cache-Control") == "no-cache"
    events, fields, heartbeats = [], {}, 0
    while len(events) < 4:
        line = resp.readline().decode().rstrip("\n")
        if line.startswith(":"):
            heartbeats += 1
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            events.append(fields)
            fields = {}
    assert [e["event"] for e in events] == ["tick"] * 4
    first = int(events[0]["id"])
    assert [e["data"] for e in events] == [f"tick {first + i}" for i in range(4)]
    client.close()
    wait_closed(srv.port, "sse")


def test_sse_example(spawn, backend):
    """python -m pyparallel.examples.sse: the clock (a generator) and the
    broadcast thread's events, each read by a real client."""
    srv = spawn(*example("sse", "--interval", "0.05", "--workers", "2"), backend=backend)
    for path, event in (("/clock", "time"), ("/events", "tick")):
        client = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        client.request("GET", path)
        resp = client.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "text/event-stream"
        seen = 0
        while seen < 3:
            if resp.readline().decode().strip() == f"event: {event}":
                seen += 1
        client.close()
    with Conn(srv.port) as c:
        c.send(request("GET", "/"))
        assert b"EventSource" in c.read_reply().body


def test_generator_raising_cuts_the_stream(spawn, backend):
    """A generator that raises mid-body: the traceback goes to the log and the
    client sees a chunked body without its last chunk, then the close."""
    srv = start(spawn, backend)
    srv.allow_tracebacks = True
    with Conn(srv.port) as c:
        c.send(request("GET", "/raise"))
        reply = c.read_reply(head=True)
        assert reply.headers["transfer-encoding"] == "chunked"
        rest = c.read_to_eof()
        assert rest == b"6\r\nbefore\r\n"  # no "0\r\n\r\n": not a complete body
    deadline = time.monotonic() + 10
    while "generator failed on purpose" not in srv.stderr_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
