"""Memory goes back (servers/memory_app.py): idle keep-alive connections cost
at most 512 bytes each at the default configuration, and after a burst of
connections and large responses the pools and the io_uring receive buffers
are returned once unused for pool_idle_ms, so the server's RSS comes back to
within 20 % of what it was before the burst."""

from __future__ import annotations

import socket
import time

from helpers import HOST, MiB, connect

BATCH = 100  # connections opened, then asked, then read, at a time
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: test\r\n\r\n"


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body; returns the body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "closed before the response head ended"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    chunks = [body]
    got = len(body)
    while got < length:
        chunk = sock.recv(min(length - got, 1 << 20))
        assert chunk, "closed inside the body"
        chunks.append(chunk)
        got += len(chunk)
    assert got == length
    return b"".join(chunks)


def open_idle(port: int, n: int) -> list[socket.socket]:
    """n keep-alive connections, each with one request answered (as
    bench/http_idle.py does it)."""
    socks: list[socket.socket] = []
    while len(socks) < n:
        batch = [socket.create_connection((HOST, port), timeout=10)
                 for _ in range(min(BATCH, n - len(socks)))]
        for s in batch:
            s.sendall(REQUEST)
        for s in batch:
            assert read_response(s) == b"Hello, World!"
        socks.extend(batch)
    return socks


def warm_up(port: int, big: bool = False) -> None:
    with connect(port) as s:
        s.sendall(REQUEST)
        read_response(s)
        if big:
            s.sendall(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
            assert len(read_response(s)) == BIG_MIB * MiB


# Per connection, the engine keeps its connection struct (280 bytes) in a pool
# slab and nothing else while the connection is idle: no receive buffer (the
# io_uring ring lends few buffers and grows only when it runs dry), no output
# chunk. What else the measurement takes in is per process or per worker (the
# ring's buffers touched while connecting, the slabs' last partial pages, the
# interpreter's allocations for the requests): spread over 10,000 connections
# it measured 406-444 bytes on io_uring and 364 on epoll with two workers. The
# bound is the target itself, ~15 % above the io_uring figure; before the
# ring lent few buffers it measured 900-1,400 bytes.
IDLE_CONNS = 10_000
IDLE_BOUND = 512


def test_idle_connection_cost(spawn, backend: str) -> None:
    srv = spawn("memory_app.py", backend=backend)  # the default configuration
    port = srv.ports["http"]
    warm_up(port)
    time.sleep(0.5)
    before = srv.rss()
    socks = open_idle(port, IDLE_CONNS)
    try:
        time.sleep(1.0)
        per_conn = (srv.rss() - before) / IDLE_CONNS
    finally:
        for s in socks:
            s.close()
    assert per_conn <= IDLE_BOUND, f"{per_conn:.0f} bytes per idle connection"


POOL_IDLE_MS = 200
BURST_CONNS = 3000
BIG_CLIENTS = 16
BIG_MIB = 4  # as servers/memory_app.py


def settled_rss(srv, seconds: float) -> int:
    """The RSS once it has stopped falling for a while (releases done)."""
    last = srv.rss()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = srv.rss()
        if now >= last - (64 << 10):
            return now
        last = now
    return last


def test_rss_returns_after_burst(spawn, backend: str) -> None:
    srv = spawn("memory_app.py", "--pool-idle-ms", str(POOL_IDLE_MS), backend=backend)
    port = srv.ports["http"]
    warm_up(port, big=True)
    time.sleep(2.5)  # the warm-up's own slabs and buffers released
    before = settled_rss(srv, 10)

    socks = open_idle(port, BURST_CONNS)
    kept, socks = socks[:10], socks[10:]
    big = [connect(port, rcvbuf=64 << 10) for _ in range(BIG_CLIENTS)]
    socks.extend(big)
    try:
        for s in big:  # queued in full: the clients do not read yet
            s.sendall(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
        queued = BIG_CLIENTS * BIG_MIB * MiB // 2
        deadline = time.monotonic() + 20
        while (during := srv.rss()) < before + queued:
            assert time.monotonic() < deadline, \
                f"the burst never showed in the RSS: {before} -> {during}"
            time.sleep(0.1)
        for s in big:
            assert len(read_response(s)) == BIG_MIB * MiB
    finally:
        for s in socks:
            s.close()

    # Released 1-2 intervals after last use, checked at least once a second.
    deadline = time.monotonic() + 20
    while (after := srv.rss()) > before * 1.2:
        assert time.monotonic() < deadline, (
            f"RSS before {before >> 10} KiB, during {during >> 10} KiB, "
            f"after {after >> 10} KiB: not back within 20 %")
        time.sleep(0.2)
    # Connections kept across the releases (their receives armed while the
    # io_uring ring was swapped) are still answered.
    for s in kept:
        s.sendall(REQUEST)
        assert read_response(s) == b"Hello, World!"
        s.close()
    stats = srv.stats()["total"]
    assert stats["pool_in_use"] < stats["pool_bytes"] or stats["pool_bytes"] < MiB, stats
