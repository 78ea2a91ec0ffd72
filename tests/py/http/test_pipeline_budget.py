"""Hostile pipelining and the process-wide memory budget (servers/pipeline_app.py).

A client that pipelines hundreds of requests for large answers and never reads
must not make the server queue them all: it stops taking requests off the
connection while the answers queued are over the high-water mark (or a file is
being sent) and goes on once they drain, every answer in order. Past the
memory budget, new request bodies get 503 and the slowest readers are closed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import MiB, ServerProcess
from http_helpers import Conn, request

BIG_LEN = 1 << 20  # pipeline_app.py's answers
FILE_LEN = 256 << 10
FLOOD = 300  # pipelined requests of one client


def big_body(i: int) -> bytes:
    return (b"%08d" % i + bytes(range(256)) * (BIG_LEN // 256))[:BIG_LEN]


@pytest.fixture
def data_file(tmp_path: Path) -> bytes:
    data = os.urandom(FILE_LEN)
    (tmp_path / "data.bin").write_bytes(data)
    return data


def start(spawn: Callable[..., ServerProcess], backend: str, tmp_path: Path,
          *args: str) -> ServerProcess:
    return spawn("pipeline_app.py", "--file", str(tmp_path / "data.bin"), *args, backend=backend)


def totals(srv: ServerProcess) -> dict[str, Any]:
    return dict(srv.stats()["total"])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(srv: ServerProcess, key: str = "requests", quiet: float = 1.0,
           timeout: float = 30.0) -> dict[str, Any]:
    """The server's counters once `key` has not moved for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last = totals(srv)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = totals(srv)
        if now[key] != last[key]:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"{key} still moving after {timeout} s: {last}")


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# ---- pipelined answers wait for the output to drain ------------------------------------

@pytest.mark.parametrize("kind", ["python", "c-static", "file"])
def test_pipelined_flood_from_a_client_that_never_reads(spawn, backend: str, tmp_path: Path,
                                                        data_file: bytes, kind: str) -> None:
    """300 pipelined requests for large answers (a Python handler's 1 MiB, a C
    static route's 1 MiB, or a file sent by the kernel), small ones in between,
    from a client that does not read: the server answers a few and waits, its
    memory and open descriptors stay bounded; then the client reads and gets
    every answer, correct and in order."""
    srv = start(spawn, backend, tmp_path)
    with Conn(srv.port) as warm:  # pools and buffers in use before the baseline
        warm.send(request("GET", "/big/1"))
        assert warm.read_reply().body == big_body(1)
    base = totals(srv)
    base_rss, base_fds = srv.rss(), open_fds(srv.pid)
    parts, expect = [], []
    for i in range(FLOOD):
        if i % 3 == 2:
            parts.append(request("GET", f"/id/{i}"))
            expect.append(f"req {i}".encode())
        elif kind == "python":
            parts.append(request("GET", f"/big/{i}"))
            expect.append(big_body(i))
        elif kind == "c-static":
            parts.append(request("GET", "/big-c"))
            expect.append(big_body(0))
        else:
            parts.append(request("GET", f"/file/{i}"))
            expect.append(data_file)
    with Conn(srv.port, timeout=30, rcvbuf=65536) as c:
        c.send(b"".join(parts))
        held = settle(srv)
        rss, fds = srv.rss(), open_fds(srv.pid)
        answered = held["requests"] - base["requests"]
        print(f"\n{kind} on {backend}: {answered} of {FLOOD} answered while the client did not "
              f"read; pool in use {held['pool_in_use'] / MiB:.1f} MiB, RSS "
              f"+{(rss - base_rss) / MiB:.1f} MiB, descriptors +{fds - base_fds}")
        assert answered < FLOOD // 2, f"{answered} requests taken in without backpressure"
        assert held["pool_in_use"] < 32 * MiB, held
        assert rss - base_rss < 96 * MiB
        assert fds - base_fds <= 4, f"{fds - base_fds} descriptors held for one connection"
        assert held["pipeline_waits"] > base["pipeline_waits"]
        for i, body in enumerate(expect):
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == body, i
        assert c.still_open()
    wait_for(lambda: open_fds(srv.pid) <= base_fds, "the file descriptors back")


def test_pipelined_requests_after_a_file_wait_for_it(spawn, backend: str, tmp_path: Path,
                                                     data_file: bytes) -> None:
    """Requests that arrive while an earlier answer's file is still queued (a
    separate write) are held too: one file open per connection."""
    srv = start(spawn, backend, tmp_path)
    base_fds = open_fds(srv.pid)
    with Conn(srv.port, timeout=30, rcvbuf=16384) as c:
        c.send(request("GET", "/file/0") * 100)  # the socket buffers fill with the first ones
        settle(srv)
        c.send(request("GET", "/file/1") * 100)
        settle(srv)
        assert open_fds(srv.pid) - base_fds <= 4
        for i in range(200):
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == data_file, i
