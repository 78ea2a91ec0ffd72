"""A streamed body cut by the server (a reader too slow past the stream's
wait) never goes out looking complete: no chunked terminator, the close."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from wsgi_helpers import served

from helpers import BACKENDS, ServerProcess
from http_helpers import request

MIB = 1 << 20


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # a short wait for a client that reads nothing (internal knob, milliseconds)
    with served(request.param, "stream_app:app", "--workers", "2",
                env={"PX_WSGI_STREAM_WAIT_MS": "200"}) as proc:
        yield proc


def test_timed_out_chunked_body_is_cut_not_ended(server: ServerProcess) -> None:
    size = 64
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(request("GET", f"/big?{size}"))
    time.sleep(2.0)  # reading nothing, well past the wait: the server gives up
    got = bytearray()
    sock.settimeout(10)
    closed = False
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                closed = True
                break
            got += data
    except TimeoutError:
        pass  # still open: the body was taken for a whole one (kept alive)
    sock.close()
    assert b"chunked" in got[:512].lower()
    assert len(got) < size * MIB, "the whole body went out although the wait had run out"
    assert not got.endswith(b"0\r\n\r\n"), "a cut body was ended as if complete"
    assert closed, "the connection stayed open after a cut body"
