"""Transports used from any thread (servers/xthread_app.py, two workers): a
broadcast reaches the clients of every worker in each sender's order; a
proxy's two connections on different workers relay both ways; sends from the
main thread, a work callback, a timer and a plain thread arrive; calls after
a close fail or do nothing as documented; a client that does not read makes a
cross-thread send return False, and True again once it reads."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from helpers import connect, recv_until_line

CLIENTS = 10
LINES = 50  # per client


def hello(sock: socket.socket) -> list[int]:
    line = recv_until_line(sock)
    assert line.startswith(b"HELLO "), line
    return [int(x) for x in line.split()[1:]]


def spread_clients(port: int, count: int, workers: int = 2) -> list[socket.socket]:
    """count clients on `port`, at least one on each worker (the kernel picks
    the worker: clients are added until every worker has one)."""
    socks: list[socket.socket] = []
    seen: set[int] = set()
    for _ in range(200):
        if len(socks) >= count and len(seen) == workers:
            break
        s = connect(port)
        seen.add(hello(s)[0])
        socks.append(s)
    assert len(seen) == workers, seen
    return socks


@pytest.mark.parametrize(("workers", "clients", "lines"), [(2, CLIENTS, LINES), (4, 50, 20)])
def test_broadcast_reaches_every_worker_in_order(spawn, backend: str, workers: int, clients: int,
                                                  lines: int) -> None:
    srv = spawn("xthread_app.py", "--workers", str(workers), backend=backend)
    socks = spread_clients(srv.ports["chat"], clients, workers)
    got: dict[int, list[bytes]] = {}
    expected = len(socks) * lines

    def client(i: int, s: socket.socket) -> None:
        s.sendall(b"".join(b"%d %d\n" % (i, n) for n in range(lines)))
        buf = b""
        while buf.count(b"\n") < expected:
            data = s.recv(65536)
            assert data, "server closed"
            buf += data
        got[i] = buf.splitlines()

    threads = [threading.Thread(target=client, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in socks:
        s.close()
    assert len(got) == len(socks)
    for received in got.values():
        assert len(received) == expected
        for sender in range(len(socks)):
            mine = [line for line in received if line.split()[0] == b"%d" % sender]
            assert mine == [b"%d %d" % (sender, n) for n in range(lines)]
    assert not srv.matching("^LOST")


def test_proxy_pair_on_two_workers(spawn, backend: str) -> None:
    srv = spawn("xthread_app.py", backend=backend)
    port = srv.ports["pair"]
    a = connect(port)
    a_worker, a_id = hello(a)
    spare = []
    while True:  # the other side on the other worker
        b = connect(port)
        if hello(b)[0] != a_worker:
            break
        spare.append(b)
    b.sendall(b"PEER %d\n" % a_id)
    assert recv_until_line(b) == b"PAIRED\n"
    size = 4 << 20
    payload = {a: os.urandom(size), b: os.urandom(size)}
    digests: dict[socket.socket, str] = {}

    def pump(src: socket.socket, dst: socket.socket) -> None:
        threading.Thread(target=src.sendall, args=(payload[src],), daemon=True).start()
        h = hashlib.sha256()
        n = 0
        while n < size:
            data = dst.recv(1 << 16)
            assert data, "closed early"
            h.update(data)
            n += len(data)
        digests[src] = h.hexdigest()

    threads = [threading.Thread(target=pump, args=(a, b)), threading.Thread(target=pump, args=(b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in (a, b):
        assert digests[s] == hashlib.sha256(payload[s]).hexdigest()
    a.close()  # the proxy closes the other side from a's worker
    b.settimeout(10)
    assert b.recv(1) == b""
    b.close()
    for s in spare:
        s.close()
    assert not srv.matching("RELAY-REFUSED")


def test_sends_from_every_kind_of_thread(spawn, backend: str) -> None:
    srv = spawn("xthread_app.py", backend=backend)
    with connect(srv.ports["hub"]) as s:
        s.sendall(b"main\nwork\ntimer\nthread\nowner\npeer\n")
        # A plain thread reads the peer's address while the connection is open.
        assert srv.wait_line("^PEER ") == f"PEER {s.getsockname()!r}"
        state, unsent = srv.wait_line("^SOCKSTATS ").split()[1:]
        assert state == "ESTABLISHED" and unsent.isdigit()  # read on the owning worker
        buf = b""
        while buf.count(b"\n") < 5:
            data = s.recv(4096)
            assert data, f"closed early: {buf!r}"
            buf += data
    assert sorted(buf.splitlines()) == [b"from main", b"from owner", b"from thread",
                                        b"from timer", b"from work"]
    assert srv.wait_line("^OWNER ").split()[1:] == ["send=True", "wait=-1:ValueError"]


def test_owner_after_what_others_posted(spawn, backend: str) -> None:
    """A plain thread posts lines while the owner's callback waits for it;
    what the callback then sends (and returns) comes after them."""
    srv = spawn("xthread_app.py", backend=backend)
    with connect(srv.ports["hub"]) as s:
        s.sendall(b"overtake\n")
        buf = b""
        while buf.count(b"\n") < 302:
            data = s.recv(65536)
            assert data, f"closed early: {buf[-200:]!r}"
            buf += data
    expected = [b"p %d" % i for i in range(300)] + [b"owner-send", b"owner-return"]
    assert buf.splitlines() == expected


def test_pause_and_resume_from_elsewhere(spawn, backend: str) -> None:
    """A plain thread pauses a connection; another connection's callback
    resumes it: input waits in between, then is served."""
    srv = spawn("xthread_app.py", backend=backend)
    with connect(srv.ports["hub"]) as s, connect(srv.ports["hub"]) as other:
        s.sendall(b"pause\n")
        line = recv_until_line(s)
        assert line.startswith(b"paused "), line
        s.sendall(b"thread\n")
        s.settimeout(0.5)
        try:
            early = s.recv(100)
        except TimeoutError:
            early = b""
        assert early == b""  # paused: the command waits
        other.sendall(b"resume %d\n" % int(line.split()[1]))
        assert recv_until_line(other) == b"resumed\n"
        s.settimeout(10)
        assert recv_until_line(s) == b"from thread\n"


def test_calls_after_close(spawn, backend: str) -> None:
    srv = spawn("xthread_app.py", backend=backend)
    with connect(srv.ports["hub"]) as s:
        s.sendall(b"after\n")
        s.settimeout(10)
        assert s.recv(1) == b""
    expected = ["close=None", "closed=True", "send=ConnectionError", "pause=ConnectionError"]
    assert srv.wait_line("^AFTER ").split()[1:] == expected
    assert srv.wait_line("^AFTER-GONE ").split()[1:] == expected + [
        "abort=None", "stats=ConnectionError"]


def test_backpressure_seen_by_another_thread(spawn, backend: str) -> None:
    srv = spawn("xthread_app.py", backend=backend)
    s = connect(srv.ports["hub"], rcvbuf=4096)
    s.sendall(b"flood\n")
    refused = srv.wait_line("^REFUSED ", timeout=30).split()
    assert refused[1] != "never"
    # Refused once over the mark (1 MiB): what it took is the kernel's buffers
    # and the mark, not more. (The level printed after the refusal may already
    # be lower: the kernel may still be taking bytes.)
    taken = int(refused[1])
    assert taken < 64 << 20
    n = 0
    tail = b""
    s.settimeout(30)
    while not tail.endswith(b"END\n"):
        data = s.recv(1 << 16)
        assert data, "closed early"
        n += len(data)
        tail = (tail + data)[-4:]
    assert n == taken + 4
    assert srv.wait_line("^RESUMED ").split()[1] == "True"
    s.close()
