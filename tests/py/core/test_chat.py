"""The chat example (python -m pyparallel.examples.chat): every line reaches
every client on every worker in its sender's order; join and leave notices;
a line over the limit is refused and closed; a client that does not read is
dropped while the others keep receiving."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from fanout_helpers import LineReader, Lines, spread
from helpers import closed_by_peer, connect, example, recv_until_line

WELCOME = re.compile(rb"^\* welcome (\d+) worker (\d+)\n$")


def welcome(s: socket.socket) -> tuple[int, int]:
    """(id, worker) from the greeting; nothing else is sent before it."""
    m = WELCOME.match(recv_until_line(s))
    assert m is not None
    return int(m.group(1)), int(m.group(2))


def worker_of(s: socket.socket) -> int:
    return welcome(s)[1]


@pytest.mark.parametrize("workers", [2, 4])
def test_every_line_reaches_every_client_in_order(spawn, backend: str, workers: int) -> None:
    srv = spawn(*example("chat", "--workers", str(workers), "--no-notices"), backend=backend)
    socks = spread(srv.port, 50, workers, worker_of)
    lines = 20
    clients = Lines(socks)
    for i, s in enumerate(socks):
        s.setblocking(True)
        s.sendall(b"".join(b"%d %d\n" % (i, n) for n in range(lines)))
        s.setblocking(False)
    expected = len(socks) * lines
    clients.until_count(lambda s: expected, timeout=60)
    for s in socks:
        received = clients.lines[s]
        assert len(received) == expected
        by_sender: dict[bytes, list[bytes]] = {}
        for line in received:
            sender, n = line.split()
            by_sender.setdefault(sender, []).append(n)
        assert by_sender == {b"%d" % i: [b"%d" % n for n in range(lines)]
                             for i in range(len(socks))}
    clients.close()
    assert not srv.matching("dropped client")


def test_notices_and_long_lines(spawn, backend: str) -> None:
    srv = spawn(*example("chat", "--workers", "2", "--max-line", "100"), backend=backend)
    ids = []
    readers = []
    for _ in range(2):  # one after the other: b joins once a is in the room
        r = LineReader(connect(srv.port))
        readers.append(r)
        m = WELCOME.match(r.line())
        assert m is not None
        ids.append(int(m.group(1)))
        assert r.line() == b"* %d joined\n" % ids[-1]
    a, b = readers
    a_id, b_id = ids
    assert a.line() == b"* %d joined\n" % b_id
    b.sock.sendall(b"x" * 100 + b"\r\n")  # at the limit: relayed (without the CR)
    assert a.line() == b"x" * 100 + b"\n"
    assert b.line() == b"x" * 100 + b"\n"
    b.sock.sendall(b"y" * 101 + b"\n")
    assert b.line() == b"* error: line longer than 100 bytes\n"
    assert closed_by_peer(b.sock)
    assert a.line() == b"* %d left\n" % b_id
    # A line that never ends is cut off at the limit too.
    c = LineReader(connect(srv.port))
    assert WELCOME.match(c.line())
    c.sock.sendall(b"z" * 500)
    while (line := c.line()).endswith(b"joined\n"):
        pass
    assert line == b"* error: line longer than 100 bytes\n"
    assert closed_by_peer(c.sock)
    for r in (a, b, c):
        r.sock.close()


@pytest.mark.parametrize("sender_worker", ["same", "other"])
def test_slow_reader_is_dropped_others_keep_receiving(spawn, backend: str,
                                                      sender_worker: str) -> None:
    """Sent to from its own worker (the send is taken, the backlog then
    checked) or from the other (the send is refused over the limit)."""
    limit = 256 << 10
    srv = spawn(*example("chat", "--workers", "2", "--no-notices", "--max-backlog", str(limit)),
                backend=backend)
    slow = connect(srv.port, rcvbuf=4096)
    slow_id, slow_worker = welcome(slow)
    fast = [connect(srv.port) for _ in range(2)]
    for s in fast:
        welcome(s)
    spare = []
    while True:  # a sender on the worker the case asks for (the kernel picks)
        sender = connect(srv.port)
        if (welcome(sender)[1] == slow_worker) == (sender_worker == "same"):
            break
        spare.append(sender)
        assert len(spare) < 100
    for s in spare:
        s.close()
    fast.insert(0, sender)
    readers = Lines(fast[1:])
    line = b"m" * 1000
    batch = 16  # lines per round: the readers' backlog stays far below the limit
    sent = 0
    deadline = time.monotonic() + 60
    sender.settimeout(30)
    # Send in rounds until the server drops the slow reader; the readers take
    # each round before the next, so only the slow one falls behind.
    while not srv.matching(f"^chat: dropped client {slow_id}:"):
        assert time.monotonic() < deadline, "the slow reader was never dropped"
        sender.sendall(b"".join(b"%d %s\n" % (sent + i, line) for i in range(batch)))
        sent += batch
        readers.until_count(lambda s, want=sent: want)
    assert closed_by_peer(slow, timeout=10)  # its backlog was dropped: no wait for it
    # The others go on.
    sender.sendall(b"".join(b"%d %s\n" % (sent + i, line) for i in range(batch)))
    sent += batch
    readers.until_count(lambda s: sent)
    for s in fast[1:]:
        assert readers.lines[s] == [b"%d %s" % (i, line) for i in range(sent)]
    assert srv.matching("^chat: dropped client") == [
        f"chat: dropped client {slow_id}: output backlog over {limit} bytes"]
    readers.close()
    sender.close()
    slow.close()


def test_clients_leaving_while_others_talk(spawn, backend: str) -> None:
    """Clients that come and go while lines are broadcast: no error, and the
    ones that stay get every line."""
    srv = spawn(*example("chat", "--workers", "2"), backend=backend)
    stay = connect(srv.port)
    talker = connect(srv.port)
    for s in (stay, talker):  # in the room once greeted (notices may follow: not needed)
        assert WELCOME.match(LineReader(s).line())
    stop = threading.Event()
    came_and_went = [0]

    def churn() -> None:
        # One client at a time, each gone once greeted: clients that did not
        # wait for the server would pile up faster than a room of N takes
        # them (each join and leave goes to all N) and the test would measure
        # that overload instead.
        while not stop.is_set():
            with connect(srv.port) as s:
                LineReader(s).line()
                s.sendall(b"hi\n")
            came_and_went[0] += 1

    t = threading.Thread(target=churn)
    t.start()
    clients = Lines([stay])
    try:
        # Ten lines at a time, a few clients coming and going between two.
        for batch in range(50):
            talker.sendall(b"".join(b"line %d\n" % n for n in range(batch * 10, batch * 10 + 10)))
            want = came_and_went[0] + 4
            deadline = time.monotonic() + 30
            while came_and_went[0] < want:
                assert t.is_alive() and time.monotonic() < deadline, "the clients stopped coming"
                time.sleep(0.001)
        clients.until_count(lambda s: 500, match=lambda l: l.startswith(b"line "))
    finally:
        stop.set()
        t.join(30)
    assert came_and_went[0] >= 200
    got = [l for l in clients.lines[stay] if l.startswith(b"line ")]
    assert got == [b"line %d" % n for n in range(500)]
    clients.close()
    talker.close()
    assert not srv.matching("dropped client")


class _ClosedTransport:
    """A member whose connection is closing: its sends raise, as a real
    transport's do, and are counted."""

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.closed = True
        self.unsent = 0
        self.sends = 0

    def send(self, data: bytes) -> bool:
        self.sends += 1
        raise ConnectionError("transport is closed")

    def abort(self) -> None:
        pass


def test_everyone_leaving_at_once_costs_each_closed_member_one_send() -> None:
    """At shutdown every member is closed before their connection_lost calls
    run, and each of those broadcasts a leave notice. A closed member must be
    forgotten at its first failed send, not met again by every later notice:
    that was a quadratic number of raised exceptions (a server with a few
    thousand clients took longer than the shutdown allows to exit)."""
    from pyparallel.examples import chat

    members = [_ClosedTransport(i) for i in range(300)]
    saved = chat.ROOM.members
    try:
        for t in members:
            chat.ROOM.add(t)  # type: ignore[arg-type]
        protocol = chat.Chat()
        for t in members:
            protocol.connection_lost(t, None)  # type: ignore[arg-type]
        assert len(chat.ROOM) == 0
        assert sum(t.sends for t in members) <= 2 * len(members)
    finally:
        chat.ROOM.members = saved
