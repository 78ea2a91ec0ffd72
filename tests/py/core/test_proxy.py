"""The proxy example (python -m pyparallel.examples.proxy) at 2 and 4 workers,
its connections spread until every worker holds client sides and upstream
sides (and some pair crosses workers): data both ways to an echo upstream;
200 MB each way (at 2 workers) through slow readers on both ends, every
byte checked against a deterministic pattern while the proxy's RSS stays
bounded; a download the client does not read yet does not stop its upload; a
client stays paused while its upstream is full at connect;
half-close carried through in both directions; an upstream that refuses
closes the client with a logged reason. The upstream runs in this process."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from helpers import HOST, MiB, connect, example, recv_exact, recv_until_eof

Handler = Callable[[socket.socket], None]
WORKERS = [2, 4]
PAIR = re.compile(r"^proxy: \S+:(\d+) \(worker (\d+)\) -> \S+ \(worker (\d+)\)$", re.M)


class Upstream:
    """A threaded TCP server on loopback; each connection runs `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        try:
            with conn:
                self.handler(conn)
        except BaseException as e:  # reported by the test
            self.errors.append(e)

    def close(self) -> None:
        self.sock.close()
        for t in list(self.threads):
            t.join(30)
        assert not self.errors, self.errors


@pytest.fixture
def upstreams() -> Iterator[Callable[[Handler], Upstream]]:
    made: list[Upstream] = []

    def make(handler: Handler) -> Upstream:
        made.append(Upstream(handler))
        return made[-1]
    yield make
    for u in made:
        u.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(1 << 16):
        conn.sendall(data)


def start_proxy(spawn, backend: str, workers: int, upstream_port: int):
    return spawn(*example("proxy", "--workers", str(workers), "--verbose",
                          "--upstream", f"{HOST}:{upstream_port}"), backend=backend)


def pair_of(srv, sock: socket.socket, timeout: float = 10.0) -> tuple[int, int]:
    """(client-side worker, upstream-side worker) of the proxy's pair for sock."""
    port = sock.getsockname()[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in PAIR.finditer(srv.stderr_text()):
            if int(m.group(1)) == port:
                return int(m.group(2)), int(m.group(3))
        time.sleep(0.01)
    raise AssertionError(f"no pair logged for {port}\n{srv.stderr_text()[-2000:]}")


def spread(srv, workers: int, at_least: int, limit: int = 64) -> list[socket.socket]:
    """Clients until both sides of the proxy's pairs are on every worker and
    some pair crosses workers (the kernel and the engine pick the workers)."""
    socks: list[socket.socket] = []
    down: set[int] = set()
    up: set[int] = set()
    crossed = False
    while len(socks) < limit:
        if len(socks) >= at_least and len(down) == len(up) == workers and crossed:
            return socks
        s = connect(srv.port, timeout=60)
        d, u = pair_of(srv, s)
        down.add(d)
        up.add(u)
        crossed |= d != u
        socks.append(s)
    raise AssertionError(f"not spread after {limit} clients: {down} {up} {crossed}")


@pytest.mark.parametrize("workers", WORKERS)
def test_echo_through_the_proxy(spawn, backend: str, upstreams, workers: int) -> None:
    up = upstreams(echo)
    srv = start_proxy(spawn, backend, workers, up.port)
    socks = spread(srv, workers, 2 * workers)
    for i, s in enumerate(socks):
        for size in (1, 1000, 200_000):
            data = random.Random(i * 7 + size).randbytes(size)
            threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
            assert recv_exact(s, size) == data
    for s in socks:
        s.close()
    srv.finish().assert_clean()


# ---- 200 MB both ways through slow readers ---------------------------------

TOTAL = 200 * MiB          # each way, over all the connections
RATE = 60 * MiB            # bytes/s each slow reader side takes, over all connections
PERIOD = 65521             # the patterns repeat with this (prime) period
# Growth allowed over the proxy's RSS before the transfer: the proxy holds at
# most HIGH_WATER (1 MiB) plus a few receives per direction and connection;
# measured 12-28 MiB for 4-8 connections, ~300 MiB with the pauses disabled.
RSS_FIXED, RSS_PER_CONN = 32 * MiB, 4 * MiB


def pattern(seed: int) -> bytes:
    """Two periods of a pattern: any piece of at most PERIOD bytes at stream
    offset o is pattern[o % PERIOD:][:len]."""
    one = random.Random(seed).randbytes(PERIOD)
    return one + one


def send_pattern(sock: socket.socket, pat: bytes, size: int) -> None:
    block = memoryview(pat[:PERIOD] * 16)  # whole periods: the stream continues across blocks
    sent = 0
    while sent < size:
        n = min(len(block), size - sent)
        sock.sendall(block[:n])
        sent += n


def read_pattern(sock: socket.socket, pat: bytes, size: int, rate: float) -> None:
    """Read size bytes at no more than rate bytes/s, each checked."""
    buf = bytearray(PERIOD)
    view = memoryview(buf)
    got = 0
    start = time.monotonic()
    while got < size:
        n = sock.recv_into(view, min(PERIOD, size - got))
        assert n > 0, f"closed after {got} of {size} bytes"
        off = got % PERIOD
        if view[:n] != pat[off:off + n]:
            bad = next(i for i in range(n) if buf[i] != pat[off + i])
            raise AssertionError(f"byte {got + bad} differs")
        got += n
        ahead = got / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


@pytest.mark.timeout(240)
def test_200mb_both_ways_slow_readers(spawn, backend: str, upstreams) -> None:
    workers = 2  # one count: 400 MB per backend is enough; the spread covers crossing pairs
    a, b = pattern(1), pattern(2)  # client -> upstream, upstream -> client
    state: dict[str, int] = {"per_conn": 0}
    ready = threading.Event()
    rate: dict[str, float] = {}

    def upstream(conn: socket.socket) -> None:
        ready.wait(60)  # the sizes are known once every client is connected
        size = state["per_conn"]
        t = threading.Thread(target=send_pattern, args=(conn, b, size), daemon=True)
        t.start()
        read_pattern(conn, a, size, rate["each"])
        t.join(60)
        assert conn.recv(1) == b""  # the client's end, carried through

    up = upstreams(upstream)
    srv = start_proxy(spawn, backend, workers, up.port)
    socks = spread(srv, workers, 2 * workers)
    count = len(socks)
    state["per_conn"] = size = TOTAL // count
    rate["each"] = RATE / count
    base = srv.rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], srv.rss())
            time.sleep(0.02)

    errors: list[BaseException] = []

    def client(s: socket.socket) -> None:
        try:
            t = threading.Thread(target=send_pattern, args=(s, a, size), daemon=True)
            t.start()
            read_pattern(s, b, size, rate["each"])
            t.join(60)
            s.shutdown(socket.SHUT_WR)
        except BaseException as e:
            errors.append(e)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    ready.set()
    threads = [threading.Thread(target=client, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    elapsed = time.monotonic() - started
    done.set()
    sampler.join(5)
    assert not errors, errors
    for s in socks:
        assert recv_until_eof(s) == b""  # the upstream's end, carried through
        s.close()
    growth = peak[0] - base
    print(f"{count} connections, {elapsed:.1f} s, RSS {base / MiB:.0f} MiB + "
          f"{growth / MiB:.1f} MiB peak")
    bound = RSS_FIXED + RSS_PER_CONN * count
    assert growth < bound, f"proxy RSS grew by {growth / MiB:.0f} MiB (bound {bound / MiB:.0f})"
    srv.finish().assert_clean()


# ---- directions are independent -------------------------------------------

@pytest.mark.parametrize("workers", WORKERS)
def test_an_unread_download_does_not_stop_the_upload(spawn, backend: str, upstreams,
                                                     workers: int) -> None:
    """The upstream streams 8 MiB while the client, reading nothing yet,
    uploads 8 MiB first: works directly, so must work through the proxy (its
    client side's unsent download must not stop reading the client)."""
    size = 8 * MiB
    a, b = pattern(3), pattern(4)

    def upstream(conn: socket.socket) -> None:
        t = threading.Thread(target=send_pattern, args=(conn, b, size), daemon=True)
        t.start()
        read_pattern(conn, a, size, float("inf"))
        t.join(60)
        assert conn.recv(1) == b""

    up = upstreams(upstream)
    srv = start_proxy(spawn, backend, workers, up.port)
    with connect(srv.port, timeout=30) as s:
        time.sleep(1.5)  # the download piles up in the proxy meanwhile
        send_pattern(s, a, size)  # times out if the proxy stopped reading
        read_pattern(s, b, size, float("inf"))
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""
    srv.finish().assert_clean()


# ---- half-close ------------------------------------------------------------

@pytest.mark.parametrize("workers", WORKERS)
def test_half_close_client_first(spawn, backend: str, upstreams, workers: int) -> None:
    """The client ends its side; the upstream sees the end, answers, ends."""
    def upstream(conn: socket.socket) -> None:
        data = recv_until_eof(conn)  # the client's end arrives as an end here
        conn.sendall(b"got %d" % len(data))
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1) == b""

    up = upstreams(upstream)
    srv = start_proxy(spawn, backend, workers, up.port)
    socks = spread(srv, workers, workers)
    for i, s in enumerate(socks):
        s.sendall(b"x" * (1000 * i + 1))
        s.shutdown(socket.SHUT_WR)
    for i, s in enumerate(socks):
        assert recv_until_eof(s) == b"got %d" % (1000 * i + 1)
        s.close()
    srv.finish().assert_clean()


@pytest.mark.parametrize("workers", WORKERS)
def test_half_close_upstream_first(spawn, backend: str, upstreams, workers: int) -> None:
    """The upstream ends its side first; the client still sends, then ends."""
    received: list[bytes] = []

    def upstream(conn: socket.socket) -> None:
        conn.sendall(b"banner")
        conn.shutdown(socket.SHUT_WR)
        received.append(recv_until_eof(conn))

    up = upstreams(upstream)
    srv = start_proxy(spawn, backend, workers, up.port)
    socks = spread(srv, workers, workers)
    for i, s in enumerate(socks):
        assert recv_until_eof(s) == b"banner"  # the upstream's end, carried
        s.sendall(b"late %d" % i)               # the other way still open
        s.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 30
    while len(received) < len(socks) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(received) == sorted(b"late %d" % i for i in range(len(socks)))
    for s in socks:
        s.close()
    srv.finish().assert_clean()


@pytest.mark.parametrize("workers", WORKERS)
def test_upstream_refused_closes_the_client(spawn, backend: str, workers: int) -> None:
    sock = socket.create_server((HOST, 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    srv = spawn(*example("proxy", "--workers", str(workers), "--upstream", f"{HOST}:{port}"),
                backend=backend)
    for _ in range(2 * workers):
        with connect(srv.port) as s:
            s.sendall(b"hello?")
            assert recv_until_eof(s) == b""
    deadline = time.monotonic() + 10
    while srv.stderr_text().count("ConnectionRefusedError") < 2 * workers:
        assert time.monotonic() < deadline, srv.stderr_text()
        time.sleep(0.01)
    assert f"upstream {HOST}:{port}" in srv.stderr_text()
    srv.finish().assert_clean()


def test_upstream_argument_is_checked() -> None:
    from pyparallel.examples import proxy
    with pytest.raises(SystemExit):
        proxy.main(["--upstream", "no-port-here"])


class _FakeTransport:
    """What the proxy's flows use of a transport, recorded."""

    def __init__(self, unsent_after_send: int = 0) -> None:
        self.calls: list[str] = []
        self.unsent = 0
        self.unsent_after_send = unsent_after_send
        self.peername = (HOST, 1)
        self.worker = 0

    def send(self, data: object) -> bool:
        self.calls.append("send")
        self.unsent = self.unsent_after_send
        return True

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def close(self) -> None:
        self.calls.append("close")


def test_a_full_upstream_at_connect_keeps_the_client_paused() -> None:
    """What the client sent before the upstream was there fills the upstream
    over the high-water mark: the client stays paused until it drains."""
    from pyparallel.examples import proxy
    client, upstream = _FakeTransport(), _FakeTransport(proxy.HIGH_WATER + 1)
    pair = proxy._Pair(client)  # type: ignore[arg-type]
    pair.up.forward(b"read before the upstream was there")
    proxy.Upstream(pair, "upstream").connection_made(upstream)  # type: ignore[arg-type]
    assert upstream.calls == ["send"]
    assert "resume" not in client.calls
    upstream.unsent = 0
    pair.up.drained()
    assert client.calls == ["resume"]
