"""Protocol features, one test each, against one engine per backend that serves
every feature on a port of its own (servers/features.py)."""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import (
    BACKENDS,
    SERVERS,
    ServerProcess,
    child_env,
    connect,
    recv_exact,
    recv_until_eof,
    recv_until_line,
)

FILE_SIZE = 3 * (1 << 20) + 12345


@pytest.fixture(scope="module")
def file_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data = os.urandom(FILE_SIZE)
    path = tmp_path_factory.mktemp("sendfile") / "payload.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture(scope="module", params=BACKENDS)
def features(request: pytest.FixtureRequest,
             file_data: tuple[Path, bytes]) -> Iterator[ServerProcess]:
    """The feature server on one backend, shared by the tests of this module;
    it must shut down cleanly, with no connection left, after all of them."""
    proc = ServerProcess([sys.executable, str(SERVERS / "features.py"), "--workers", "2",
                          "--file", str(file_data[0])], child_env(str(request.param)))
    try:
        yield proc
        proc.finish().assert_clean()
        assert proc.finished is not None and proc.finished.stats is not None
        assert proc.finished.stats["backend"] == {"uring": "io_uring"}.get(
            str(request.param), str(request.param))
    finally:
        proc.close()


def test_initial_bytes_to_send_bytes(features: ServerProcess) -> None:
    with connect(features.ports["initial"]) as s:
        assert recv_exact(s, 9) == b"welcome\r\n"
        s.sendall(b"then echo")
        assert recv_exact(s, 9) == b"then echo"


def test_initial_bytes_to_send_callable(features: ServerProcess) -> None:
    # The method runs per connection, inside a callback: px.transport() is set.
    for _ in range(3):
        with connect(features.ports["initial_callable"]) as s:
            expect = b"hello %d\n" % s.getsockname()[1]
            assert recv_exact(s, len(expect)) == expect


def test_next_bytes_to_send_callable(features: ServerProcess) -> None:
    with connect(features.ports["next"]) as s:
        for i in range(1, 6):
            s.sendall(b"anything")
            want = b"%d\n" % i
            assert recv_exact(s, len(want)) == want


def test_next_bytes_to_send_bytes(features: ServerProcess) -> None:
    with connect(features.ports["next_static"]) as s:
        for _ in range(3):
            s.sendall(b"?")
            assert recv_exact(s, 4) == b"ack\n"


def test_line_mode_splits_lines_across_reads(features: ServerProcess) -> None:
    with connect(features.ports["lines"]) as s:
        for piece in (b"abc\r\nde", b"f\nx", b"y", b"z\n", b"\n"):
            s.sendall(piece)
            time.sleep(0.02)  # separate reads on the server side
        assert recv_exact(s, 13) == b"ABC\nDEF\nXYZ\n\n"
        # A pending partial line exactly max_line_length long is still allowed.
        s.sendall(b"q" * 32)
        time.sleep(0.1)
        s.sendall(b"\n")
        assert recv_exact(s, 33) == b"Q" * 32 + b"\n"


def test_line_mode_partial_line_over_max_closes(features: ServerProcess) -> None:
    with connect(features.ports["lines"]) as s:
        s.sendall(b"ok\n")
        assert recv_exact(s, 3) == b"OK\n"
        s.sendall(b"z" * 33)  # no newline: the line can only grow past the limit
        assert recv_until_eof(s) == b""
    # Without an exception_handler the error is re-raised from run() in the main thread.
    features.wait_line(r"^RAISED ValueError: line longer than max_line_length \(32 bytes\)$")


def test_line_mode_complete_line_over_max_closes(features: ServerProcess) -> None:
    with connect(features.ports["lines"]) as s:
        s.sendall(b"a" * 100 + b"\n")
        s.settimeout(3)
        assert s.recv(4096) == b"", "the over-long line was delivered"


def test_send_complete_streams_in_order(features: ServerProcess) -> None:
    with connect(features.ports["streaming"]) as s:
        data = recv_until_eof(s)
    chunks = b"".join((b"%06d:" % i) * 10000 for i in range(40))
    ids = list(range(1, 41))
    assert data[:len(chunks)] == chunks
    assert data[len(chunks):] == b"ids " + json.dumps(ids).encode() + b"\n"


@pytest.mark.parametrize("request_byte, reply", [
    (b"t", b"tuple!"),                                                  # tuple, mixed types
    (b"l", b"".join(bytes([65 + i % 26]) * (i % 7 + 1) for i in range(200))),  # > 64 pieces
    (b"s", "h\u00e9llo \u2713 \U0001F600".encode()),                     # str as UTF-8
    (b"m", b"23456"),                                                   # memoryview slice
    (b"b", b"bytearray"),                                               # bytearray
    (b"x", b"x" * 1_000_000),                                           # one large bytes
], ids=["tuple", "list", "str", "memoryview", "bytearray", "large"])
def test_sendables(features: ServerProcess, request_byte: bytes, reply: bytes) -> None:
    with connect(features.ports["sendables"]) as s:
        s.sendall(request_byte)
        assert recv_exact(s, len(reply)) == reply
        # An empty tuple sends nothing: the next reply follows directly.
        s.sendall(b"e")
        s.sendall(b"b" + request_byte)
        assert recv_exact(s, 9 + len(reply)) == b"bytearray" + reply


@pytest.mark.parametrize("offset, count", [
    (0, None), (0, 1), (4095, 4097), (12345, 2 * (1 << 20)), (FILE_SIZE - 7, 7), (FILE_SIZE, 0),
])
def test_sendfile_byte_exact(features: ServerProcess, file_data: tuple[Path, bytes],
                             offset: int, count: int | None) -> None:
    _, data = file_data
    part = data[offset:] if count is None else data[offset:offset + count]
    with connect(features.ports["sendfile"]) as s:
        s.sendall(b"%d %s\n" % (offset, b"-" if count is None else b"%d" % count))
        got = recv_exact(s, len(part) + 4)
    assert got[:2] == b"<<" and got[-2:] == b">>"
    assert got[2:-2] == part


def test_sendfile_several_in_one_reply(features: ServerProcess,
                                       file_data: tuple[Path, bytes]) -> None:
    _, data = file_data
    with connect(features.ports["sendfile"]) as s:
        s.sendall(b"1 10\n100 1000\n")
        got = recv_exact(s, 4 + 10 + 4 + 1000)
    assert got == b"<<" + data[1:11] + b">><<" + data[100:1100] + b">>"


def test_rate_limit_spaces_reads(features: ServerProcess) -> None:
    with connect(features.ports["rate"]) as s:
        times = []
        for i in range(5):
            s.sendall(b"r%d" % i)
            assert recv_exact(s, 2) == b"r%d" % i
            times.append(time.monotonic())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.18, f"reads not spaced by rate_limit=0.2 s: {gaps}"
    assert max(gaps) <= 0.6, f"rate_limit paused far longer than 0.2 s: {gaps}"


def test_connection_lost_none_on_clean_close(features: ServerProcess) -> None:
    with connect(features.ports["lost"]) as s:
        port = s.getsockname()[1]
        s.sendall(b"bye")
        assert recv_exact(s, 3) == b"bye"
    assert features.wait_line(rf"^LOST lost {port} ") == f"LOST lost {port} None"


def test_connection_lost_error_on_reset(features: ServerProcess) -> None:
    s = connect(features.ports["lost"])
    port = s.getsockname()[1]
    s.sendall(b"x")
    assert recv_exact(s, 1) == b"x"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # sends a reset
    line = features.wait_line(rf"^LOST lost {port} ")
    assert line == f"LOST lost {port} ConnectionError(104, 'Connection reset by peer')"


def test_transport_addresses_and_current(features: ServerProcess) -> None:
    with connect(features.ports["whoami"]) as s:
        s.sendall(b"?")
        info = json.loads(recv_until_line(s))
        assert tuple(info["peername"]) == s.getsockname()
        assert tuple(info["extra_peername"]) == s.getsockname()
        assert tuple(info["sockname"]) == s.getpeername()
    assert info["current_is_transport"] is True
    assert info["protocol_is_self"] is True
    assert info["closed"] is False
    assert info["worker"] in (0, 1)


def test_transport_outside_callback_is_none() -> None:
    import pyparallel as px
    assert px.transport() is None


def test_live_stats_from_a_worker(features: ServerProcess) -> None:
    stats = features.stats()
    assert stats["backend"] in ("io_uring", "epoll")
    assert len(stats["workers"]) == 2
    assert stats["total"]["connections"] >= 1  # the stats connection itself
    assert stats["total"]["accepts"] >= 1
