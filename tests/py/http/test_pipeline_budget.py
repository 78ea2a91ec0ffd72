"""Hostile pipelining and the process-wide memory budget (servers/pipeline_app.py).

A client that pipelines hundreds of requests for large answers and never reads
must not make the server queue them all: it stops taking requests off the
connection while the answers queued are over the high-water mark (or a file is
being sent) and goes on once they drain, every answer in order. Past the
memory budget, new request bodies get 503 and the slowest readers are closed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import MiB, ServerProcess
from http_helpers import Conn, chunked, request

BIG_LEN = 1 << 20  # pipeline_app.py's answers
FILE_LEN = 256 << 10
FLOOD = 300  # pipelined requests of one client
BUDGET = 8 * MiB
SLOW_ANSWERS = 16  # 16 MiB asked for by each slow reader: more than socket buffers hold


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


def established(port: int) -> int:
    """The server's sockets of port in the ESTABLISHED state, as the kernel
    lists them (reading them does not wake the server)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


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


@pytest.mark.parametrize("target", ["/big/1", "/big-c", "/file/1"])
def test_pipelined_flood_then_end_of_stream(spawn, backend: str, tmp_path: Path,
                                            data_file: bytes, target: str) -> None:
    """The client pipelines 100 requests and shuts its side down at once: the
    end of the stream, read while the requests wait for their answers to
    drain, comes after them; every answer arrives, then the close."""
    srv = start(spawn, backend, tmp_path)
    expect = data_file if target.startswith("/file") else big_body(int(target == "/big/1"))
    with Conn(srv.port, timeout=30, rcvbuf=65536) as c:
        c.send(request("GET", target) * 100)
        c.sock.shutdown(socket.SHUT_WR)
        for i in range(100):
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == expect, i
        assert c.closed_cleanly() is None


def test_pipelined_requests_after_a_file_wait_for_it(spawn, backend: str, tmp_path: Path,
                                                     data_file: bytes) -> None:
    """Requests that arrive while an earlier answer's file is still queued (a
    separate write) are held too: one file open per connection."""
    srv = start(spawn, backend, tmp_path)
    with Conn(srv.port) as warm:  # whatever the first answer opens for good, before the baseline
        warm.send(request("GET", "/file/0"))
        assert warm.read_reply().body == data_file
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


def reads_all(c: Conn, n: int = SLOW_ANSWERS) -> bool:
    """True when the n answers to /big/0.. arrive whole, False when the server
    closed the connection on the way (a reset, or the end of the stream)."""
    try:
        for i in range(n):
            reply = c.read_reply()
            assert reply.status == 200 and reply.body == big_body(i), i
    except ConnectionResetError:
        return False
    except AssertionError as exc:
        if "connection closed" not in str(exc):
            raise
        return False
    return True


# ---- the memory budget --------------------------------------------------------------------

def test_default_memory_budget() -> None:
    """0 (the default) is derived from the machine: a quarter of its memory, at
    least 64 MiB; an explicit budget is taken as given."""
    from pyparallel import _core
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    budget = _core.Engine(workers=1).memory_budget
    assert 64 * MiB <= budget <= max(physical // 4, 64 * MiB)
    assert _core.Engine(workers=1, memory_budget=12345678).memory_budget == 12345678


def test_bodies_past_the_budget_get_503(spawn, backend: str, tmp_path: Path,
                                        data_file: bytes) -> None:
    """With an 8 MiB budget: a body that announces more is refused at once;
    a chunked body (which announces nothing) is taken and, being received,
    grows past the budget; meanwhile every new body gets 503 with
    Connection: close, requests without a body are served, and the body
    already admitted completes. Once it is done bodies are taken again."""
    srv = start(spawn, backend, tmp_path, "--workers", "1", "--memory-budget", str(BUDGET),
                "--max-body", str(64 * MiB))

    def refused(head: bytes) -> None:
        with Conn(srv.port) as c:
            c.send(head)
            reply = c.read_reply()
            assert reply.status == 503, reply
            assert reply.headers.get("connection") == "close"
            assert c.closed_cleanly() is None

    refused(request("POST", "/echo", {"Content-Length": str(9 * MiB)}))
    body = os.urandom(10 * MiB)
    encoded = chunked(body, [65536])
    assert encoded.endswith(b"0\r\n\r\n")
    holder = Conn(srv.port, timeout=30)
    try:
        holder.send(request("POST", "/echo", {"Transfer-Encoding": "chunked"}) + encoded[:-5])
        wait_for(lambda: totals(srv)["budget_held"] >= 10 * MiB, "the body held in memory")
        refused(request("POST", "/echo", {"Content-Length": "100"}))
        refused(request("POST", "/echo", {"Transfer-Encoding": "chunked"}))
        with Conn(srv.port) as c:
            c.send(request("GET", "/id/7"))
            assert c.read_reply().body == b"req 7"
        holder.send(encoded[-5:])
        reply = holder.read_reply()
        assert reply.status == 200 and reply.body == body
    finally:
        holder.close()
    wait_for(lambda: totals(srv)["budget_held"] < MiB, "the body memory given back")
    with Conn(srv.port) as c:
        c.send(request("POST", "/echo", body=b"small"))
        assert c.read_reply().body == b"small"
    assert totals(srv)["budget_refused"] == 3


def test_slow_readers_are_closed_over_the_budget(spawn, backend: str, tmp_path: Path,
                                                 data_file: bytes) -> None:
    """Twelve clients pipeline large answers and never read. Whatever the
    kernel's socket buffers take, each keeps at least send_low_water (256 KiB)
    queued in the server while answers are left: together more than a 2 MiB
    budget, so the server closes the slowest of them until it is back under
    (with nothing else to wake it: the test watches its sockets from
    outside); a client that reads keeps being served."""
    budget = 2 * MiB
    srv = start(spawn, backend, tmp_path, "--workers", "1", "--memory-budget", str(budget))
    slow = []
    try:
        for _ in range(12):
            c = Conn(srv.port, timeout=30, rcvbuf=16384)
            c.send(b"".join(request("GET", f"/big/{i}") for i in range(SLOW_ANSWERS)))
            slow.append(c)
        wait_for(lambda: established(srv.port) < len(slow), "slow readers closed")
        assert totals(srv)["budget_closed"] >= 1
        wait_for(lambda: totals(srv)["budget_held"] <= budget, "the budget met again")
        with Conn(srv.port, timeout=30) as c:
            for i in range(3):
                c.send(request("GET", f"/big/{i}"))
                assert c.read_reply().body == big_body(i)
        closed = sum(not reads_all(c) for c in slow)
        stats = totals(srv)
        print(f"\n{backend}: {stats['budget_closed']} slow readers closed, {closed} saw it")
        assert 1 <= closed < len(slow)
        assert stats["budget_closed"] >= closed
    finally:
        for c in slow:
            c.close()
