"""Closes started by the server from inside a message callback, and the
timeout paths of a client that stopped reading."""

from __future__ import annotations

import json
import struct
import time

import pytest
from ws_raw import CLOSE, TEXT, Raw, close_payload, frame

from helpers import ServerProcess
from http_helpers import Conn, request


@pytest.fixture
def srv(spawn, backend) -> ServerProcess:
    return spawn("ws_app.py", backend=backend)


def closes(port: int) -> dict[str, int]:
    with Conn(port) as c:
        c.send(request("GET", "/closes"))
        return json.loads(c.read_reply().body)  # type: ignore[no-any-return]


def wait_close(port: int, key: str, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while closes(port).get(key, 0) < count:
        assert time.monotonic() < deadline, closes(port)
        time.sleep(0.05)


@pytest.mark.parametrize("message, code", [(b"boom", 1011), (b"close", 4000)])
def test_close_from_callback_reads_the_answer(srv, message, code):
    """The server closes inside on_message (an exception: 1011; close():
    4000); the client's prompt answer is parsed: its code is what on_close
    reports, and TCP closes at once, not after the 5 s close_timeout."""
    srv.allow_tracebacks = True
    with Raw(srv.port, "/raise") as ws:
        ws.send(frame(TEXT, message))
        op, _, payload = ws.recv_frame()
        assert op == CLOSE and struct.unpack(">H", payload[:2])[0] == code
        t0 = time.monotonic()
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_eof(10)
        assert time.monotonic() - t0 < 4.0
    wait_close(srv.port, "raise 1000", 1)
    assert closes(srv.port).get("raise 1006", 0) == 0

