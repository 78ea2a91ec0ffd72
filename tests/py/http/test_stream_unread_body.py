"""A streamed response to a request whose body its handler never read, while
the client waits for a 100 Continue (servers/stream_unread_app.py), both
backends: the connection closes, but only after the whole stream and its
end, written by a thread after the handler returned or by the handler."""

from __future__ import annotations

import pytest

from http_helpers import Conn, request

PIECES = 64
PIECE = 4000


def decode_chunked(data: bytes) -> bytes:
    body = b""
    while True:
        assert b"\r\n" in data, "the stream was cut"
        line, _, data = data.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            assert data == b"\r\n", "the stream's end is missing"
            return body
        assert len(data) >= size + 2, "the stream was cut"
        body += data[:size]
        data = data[size + 2:]


@pytest.mark.parametrize("path", ["/later", "/inline"])
def test_whole_stream_then_close(spawn, backend, path):
    srv = spawn("stream_unread_app.py", backend=backend)
    want = b"".join((b"piece %02d " % i).ljust(PIECE, b"x") for i in range(PIECES))
    with Conn(srv.port) as c:
        c.send(request("POST", path, {"Content-Length": "100000", "Expect": "100-continue"}))
        data = c.read_to_eof()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"100 Continue" not in head
    assert b"transfer-encoding: chunked" in head.lower()
    assert decode_chunked(rest) == want
