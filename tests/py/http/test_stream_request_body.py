"""Request.body with stream_bodies (servers/stream_body_app.py), both
backends: the handler is called at the head, and Request.body reads the body
whole at its first use (Content-Length or chunked, after a 100 Continue when
asked), .json() too; a body past max_body is 413; after the handler returned
the body is gone: RuntimeError, never a silent b""."""

from __future__ import annotations

import hashlib

from http_helpers import Conn, chunked, request


def test_body_read_at_first_use(spawn, backend):
    srv = spawn("stream_body_app.py", backend=backend)
    body = bytes(range(256)) * 1200  # 300 kB: more than the body buffer
    want = f"{len(body)}:{hashlib.sha256(body).hexdigest()}".encode()
    with Conn(srv.port) as c:
        c.send(request("POST", "/digest", body=body))
        assert c.read_reply().body == want
        c.send(request("POST", "/digest", {"Transfer-Encoding": "chunked"})
               + chunked(body, [5000, 17]))
        assert c.read_reply().body == want
        c.send(request("POST", "/json", body=b'{"a": [1, 2]}'))
        assert c.read_reply().body == b'{"got":{"a":[1,2]}}'
    with Conn(srv.port) as c:  # the client waits for 100 Continue before sending
        c.send(request("POST", "/digest", {"Content-Length": str(len(body)),
                                           "Expect": "100-continue"}))
        assert c.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        c.send(body)
        assert c.read_reply().body == want


def test_body_past_max_body_is_413(spawn, backend):
    srv = spawn("stream_body_app.py", backend=backend)
    with Conn(srv.port) as c:
        c.send(request("POST", "/digest", {"Transfer-Encoding": "chunked"})
               + chunked(b"x" * (2 << 20), [65536]))
        r = c.read_reply()
    assert r.status == 413


def test_body_after_the_handler_is_an_error(spawn, backend):
    srv = spawn("stream_body_app.py", backend=backend)
    with Conn(srv.port) as c:
        c.send(request("POST", "/keep", body=b"abc" * 1000))
        assert c.read_reply().body == b"kept"
        c.send(request("GET", "/late"))
        r = c.read_reply()
    assert r.body.startswith(b"RuntimeError: Request.body: the body was streamed")
