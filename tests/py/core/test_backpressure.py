"""A peer that does not read costs bounded memory and does not slow down the
other connections of its worker (servers/mixed.py on one worker)."""

from __future__ import annotations

import hashlib
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable

from helpers import MiB, ServerProcess, connect, recv_exact, recv_until_eof

RSS_GROWTH_LIMIT = 64 * MiB
LATENCY_LIMIT = 0.050
SEND_HIGH_WATER = 1 * MiB  # the engine's default


def echo_latencies(port: int, rounds: int, spacing: float,
                   sample: Callable[[], None] | None = None) -> list[float]:
    """Round-trip times of small echoes, one every `spacing` seconds."""
    out = []
    with connect(port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(rounds):
            msg = b"%08d" % i * 8
            start = time.perf_counter()
            s.sendall(msg)
            assert recv_exact(s, len(msg)) == msg
            out.append(time.perf_counter() - start)
            if sample is not None and i % 10 == 0:
                sample()
            time.sleep(spacing)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def test_chargen_to_stuck_client(spawn, backend: str) -> None:
    """Chargen to a client that never reads: the server sends what the pipe
    holds and waits; its memory stays put and an echo client on the same
    worker still gets its replies within 50 ms."""
    srv = spawn("mixed.py", "--workers", "1", backend=backend)
    echo_latencies(srv.ports["echo"], 20, 0.0)  # warm up: pools and buffers in use
    baseline = srv.rss()
    peak = [baseline]
    with connect(srv.ports["chargen"], rcvbuf=4096):  # the stuck client: it never reads
        time.sleep(0.3)  # chargen fills the pipe to the stuck client
        lat = echo_latencies(srv.ports["echo"], 200, 0.015,
                             sample=lambda: peak.append(srv.rss()))
        peak.append(srv.rss())
        stats = srv.stats()["total"]
        # It sent what the pipe holds, then waited: nothing was queued without bound.
        assert stats["bytes_out"] > 64 * 1024
    growth = max(peak) - baseline
    print(f"\nstuck chargen client on {backend}: RSS +{growth / MiB:.1f} MiB, echo p99 "
          f"{p99(lat) * 1000:.2f} ms, max {max(lat) * 1000:.2f} ms")
    assert growth < RSS_GROWTH_LIMIT, f"server RSS grew by {growth / MiB:.1f} MiB"
    assert p99(lat) < LATENCY_LIMIT, (
        f"echo p99 {p99(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms over {len(lat)} rounds")


def test_chargen_to_fast_reader_does_not_starve_echo(spawn, backend: str) -> None:
    srv = spawn("mixed.py", "--workers", "1", backend=backend)
    stop = threading.Event()
    received = [0]

    def drink() -> None:
        with connect(srv.ports["chargen"]) as s:
            while not stop.is_set():
                received[0] += len(s.recv(1 << 20))

    reader = threading.Thread(target=drink, daemon=True)
    reader.start()
    try:
        time.sleep(0.2)
        lat = echo_latencies(srv.ports["echo"], 200, 0.005)
    finally:
        stop.set()
        reader.join(10)
    assert received[0] > 10 * MiB, f"chargen sent only {received[0]} bytes"
    print(f"\necho next to a chargen reader on {backend}: p99 {p99(lat) * 1000:.2f} ms, "
          f"max {max(lat) * 1000:.2f} ms; chargen {received[0] / MiB:.0f} MiB")
    assert p99(lat) < LATENCY_LIMIT, (
        f"echo p99 {p99(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms next to a chargen hog")


def fill_until_stalled(socks: list[socket.socket], chunk: bytes, limit: int,
                       stall: float = 1.0) -> list[tuple[int, bytes]]:
    """Send chunk after chunk on every socket (non-blocking) until the peer has
    taken nothing for `stall` seconds; (bytes sent, their SHA-256) per socket."""
    digests = [hashlib.sha256() for _ in socks]
    sent = [0] * len(socks)
    for s in socks:
        s.setblocking(False)
    last_progress = time.monotonic()
    while sum(sent) < limit and time.monotonic() - last_progress < stall:
        _, writable, _ = select.select([], socks, [], 0.1)
        for s in writable:
            i = socks.index(s)
            try:
                n = s.send(chunk)
            except BlockingIOError:
                continue
            digests[i].update(chunk[:n])
            sent[i] += n
            last_progress = time.monotonic()
    for s in socks:
        s.settimeout(20)
    return [(n, d.digest()) for n, d in zip(sent, digests)]


def read_back(s: socket.socket, n: int) -> tuple[int, bytes]:
    digest, total = hashlib.sha256(), 0
    while total < n:
        data = s.recv(1 << 20)
        if not data:
            break
        digest.update(data)
        total += len(data)
    return total, digest.digest()


STUCK_CLIENTS = 8


def read_all_back(socks: list[socket.socket],
                  sent: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    results: list[tuple[int, bytes]] = [(0, b"")] * len(socks)

    def read(i: int) -> None:
        results[i] = read_back(socks[i], sent[i][0])

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(socks))]
    for t in readers:
        t.start()
    for t in readers:
        t.join(60)
    return results


def test_echo_to_client_that_never_reads(spawn, backend: str) -> None:
    """One client sends as much as it can and never reads: the server stops
    reading it, its memory stays bounded, and once the client reads, every
    byte comes back."""
    srv: ServerProcess = spawn("mixed.py", "--workers", "1", backend=backend)
    baseline = srv.rss()
    with connect(srv.ports["echo"]) as s:
        sent = fill_until_stalled([s], bytes(range(256)) * 256, limit=1024 * MiB)
        growth = srv.rss() - baseline
        stats = srv.stats()["total"]
        results = read_all_back([s], sent)
    held = stats["bytes_in"] - stats["bytes_out"]  # read from the peer, not yet written back
    print(f"\nnever-reading echo client on {backend}: {sent[0][0] / MiB:.1f} MiB sent before "
          f"the stall, {held / MiB:.1f} MiB of it held by the server, RSS +{growth / MiB:.1f} "
          f"MiB, {stats['paused']} pauses")
    assert results == sent, "echoed bytes differ from the bytes sent"
    assert sent[0][0] < 1024 * MiB, "the server kept reading from a peer that never reads"
    assert stats["paused"] >= 1, "the server never stopped reading"
    # Reading stops at the high-water mark: besides the queued output, at most
    # one receive's worth may be in the server.
    assert held <= SEND_HIGH_WATER + 256 * 1024, (
        f"the server holds {held / MiB:.1f} MiB read from a peer that does not read")
    assert growth < RSS_GROWTH_LIMIT, f"server RSS grew by {growth / MiB:.1f} MiB"


def test_clients_that_never_read_get_no_data_handed_past_high_water(spawn, backend: str) -> None:
    """Several such clients on one worker: no data is handed to data_received
    once a connection has more than send_high_water queued (reading stops
    there), and every byte still comes back in the end."""
    srv: ServerProcess = spawn("mixed.py", "--workers", "1", backend=backend)
    socks = [connect(srv.ports["watched"]) for _ in range(STUCK_CLIENTS)]
    ports = [s.getsockname()[1] for s in socks]
    try:
        sent = fill_until_stalled(socks, bytes(range(256)) * 256, limit=1024 * MiB)
        stats = srv.stats()["total"]
        results = read_all_back(socks, sent)
    finally:
        for s in socks:
            s.close()
    total = sum(n for n, _ in sent)
    queued = [int(srv.wait_line(rf"^QUEUED-MAX {port} ").split()[2]) for port in ports]
    assert results == sent, "echoed bytes differ from the bytes sent"
    assert total < 1024 * MiB, "the server kept reading from peers that never read"
    assert stats["paused"] >= STUCK_CLIENTS, "the server did not stop reading every client"
    assert max(queued) <= SEND_HIGH_WATER, (
        f"data handed to data_received with {max(queued)} bytes already queued (per client: "
        f"{queued}); reading should have stopped at {SEND_HIGH_WATER}")


def test_half_close_while_paused_echoes_everything(spawn, backend: str) -> None:
    """Clients that sent more than the server will buffer, then half-close before
    reading, get every byte back: the FIN must not cost them queued data."""
    srv = spawn("mixed.py", "--workers", "1", backend=backend)
    data = bytes(range(256)) * (3 * MiB // 256)  # three times the send high-water mark
    socks = [connect(srv.ports["echo"], timeout=20, rcvbuf=4096) for _ in range(16)]
    try:
        senders = [threading.Thread(target=s.sendall, args=(data,)) for s in socks]
        for t in senders:
            t.start()
        for t in senders:
            t.join(30)
        time.sleep(0.3)  # the server is paused, its sends wait for the tiny windows
        for s in socks:
            s.shutdown(socket.SHUT_WR)
        results: list[bytes | str] = [b""] * len(socks)

        def read(i: int) -> None:
            try:
                results[i] = recv_until_eof(socks[i])
            except OSError as exc:
                results[i] = repr(exc)

        readers = [threading.Thread(target=read, args=(i,)) for i in range(len(socks))]
        for t in readers:
            t.start()
        for t in readers:
            t.join(30)
    finally:
        for s in socks:
            s.close()
    bad = [r if isinstance(r, str) else len(r) for r in results if r != data]
    assert not bad, f"{len(bad)} of {len(socks)} clients lost data (got {bad[:4]} of {len(data)})"
