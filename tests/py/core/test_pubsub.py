"""The pub/sub example (python -m pyparallel.examples.pubsub): thousands of
subscribers on every worker each get every message of their topics and none
of the others; unsubscribe; the commands' replies; a subscriber that does not
read is dropped while the others keep receiving."""

from __future__ import annotations

import re
import socket
import time

import pytest

from fanout_helpers import LineReader, Lines, spread
from helpers import closed_by_peer, connect, example, recv_until_line

TOPICS = [b"t0", b"t1", b"t2", b"t3"]
INFO = re.compile(rb"^info id (\d+) worker (\d+) subscriptions (\d+)\n$")


def worker_of(s: socket.socket) -> int:
    s.sendall(b"INFO\n")
    m = INFO.match(recv_until_line(s))
    assert m is not None
    return int(m.group(2))


def topics_of(i: int) -> list[bytes]:
    """Subscriber i's topics: one, and a second for every fifth."""
    first = TOPICS[i % 4]
    return [first, TOPICS[(i + 1) % 4]] if i % 5 == 0 else [first]


def publish_round(pub: LineReader, tag: bytes, per_topic: int,
                  subscribers: dict[bytes, int]) -> None:
    """per_topic messages to each topic; each reply counts the topic's subscribers."""
    pub.sock.sendall(b"".join(b"PUBLISH %s %s %d of %s\n" % (t, tag, n, t)
                              for n in range(per_topic) for t in TOPICS))
    for _ in range(per_topic):
        for t in TOPICS:
            assert pub.line() == b"published %s %d\n" % (t, subscribers[t])


@pytest.mark.parametrize("workers", [2, 4])
def test_thousands_of_subscribers_across_workers(spawn, backend: str, workers: int) -> None:
    srv = spawn(*example("pubsub", "--workers", str(workers)), backend=backend)
    subs = spread(srv.port, 2000, workers, worker_of)
    mine = {s: topics_of(i) for i, s in enumerate(subs)}
    clients = Lines(subs)
    for s in subs:
        s.sendall(b"SUBSCRIBE %s\n" % b" ".join(mine[s]))
    clients.until_count(lambda s: len(mine[s]))
    for s in subs:
        assert clients.lines[s] == [b"subscribe %s %d" % (t, n + 1)
                                    for n, t in enumerate(mine[s])]
        clients.lines[s].clear()
    count = {t: sum(t in ts for ts in mine.values()) for t in TOPICS}
    pub = LineReader(connect(srv.port))
    per_topic = 5
    publish_round(pub, b"a", per_topic, count)

    def expect(s: socket.socket, tag: bytes, topics: list[bytes]) -> list[bytes]:
        return sorted(b"message %s %s %d of %s" % (t, tag, n, t)
                      for t in topics for n in range(per_topic))

    def check(tag: bytes, topics_now: dict[socket.socket, list[bytes]]) -> None:
        # Read to a PING's answer: nothing else may have come before it.
        for s in subs:
            s.sendall(b"PING %s\n" % tag)
        clients.until_count(lambda s: 1, match=lambda line: line.startswith(b"pong "))
        for s in subs:
            got = clients.lines[s]
            assert got[-1] == b"pong %s" % tag
            assert sorted(got[:-1]) == expect(s, tag, topics_now[s])
            # per topic, in the order published
            for t in topics_now[s]:
                assert [l for l in got if l.startswith(b"message %s " % t)] == [
                    b"message %s %s %d of %s" % (t, tag, n, t) for n in range(per_topic)]
            got.clear()

    check(b"a", mine)
    # Every third subscriber leaves its first topic.
    left = {s: mine[s][1:] if i % 3 == 0 else mine[s] for i, s in enumerate(subs)}
    for i, s in enumerate(subs):
        if i % 3 == 0:
            s.sendall(b"UNSUBSCRIBE %s\n" % mine[s][0])
    clients.until_count(lambda s: 1 if s in left and left[s] is not mine[s] else 0,
                        match=lambda line: line.startswith(b"unsubscribe "))
    for i, s in enumerate(subs):
        if i % 3 == 0:
            assert clients.lines[s] == [b"unsubscribe %s %d" % (mine[s][0], len(left[s]))]
            clients.lines[s].clear()
    count = {t: sum(t in ts for ts in left.values()) for t in TOPICS}
    publish_round(pub, b"b", per_topic, count)
    check(b"b", left)
    clients.close()
    pub.sock.close()
    assert not srv.matching("dropped client")


def test_commands(spawn, backend: str) -> None:
    srv = spawn(*example("pubsub", "--workers", "2", "--max-line", "200"), backend=backend)
    a = LineReader(connect(srv.port))
    a.sock.sendall(b"ping\nPING hello there\nsubscribe x y\nINFO\nNOPE\nPUBLISH\n"
                   b"PUBLISH x hi  there\nunsubscribe\nUNSUBSCRIBE\nSUBSCRIBE\n")
    assert a.line() == b"pong\n"
    assert a.line() == b"pong hello there\n"
    assert a.line() == b"subscribe x 1\n"
    assert a.line() == b"subscribe y 2\n"
    assert re.match(rb"^info id \d+ worker \d+ subscriptions 2\n$", a.line())
    assert a.line() == b"error unknown command 'NOPE'\n"
    assert a.line() == b"error PUBLISH needs a topic\n"
    assert a.line() == b"message x hi  there\n"  # a subscriber gets its own message
    assert a.line() == b"published x 1\n"
    assert a.line() == b"unsubscribe x 1\n"
    assert a.line() == b"unsubscribe y 0\n"
    assert a.line() == b"unsubscribe - 0\n"
    assert a.line() == b"error SUBSCRIBE needs a topic\n"
    a.sock.sendall(b"PUBLISH x " + b"z" * 200 + b"\n")
    assert a.line() == b"error line longer than 200 bytes\n"
    assert closed_by_peer(a.sock)
    b = LineReader(connect(srv.port))
    b.sock.sendall(b"QUIT\n")
    assert b.line() == b"bye\n"
    assert closed_by_peer(b.sock)
    for r in (a, b):
        r.sock.close()


@pytest.mark.parametrize("publisher_worker", ["same", "other"])
def test_slow_subscriber_is_dropped_others_keep_receiving(spawn, backend: str,
                                                          publisher_worker: str) -> None:
    """Published to from its own worker (the send is taken, the backlog then
    checked) or from the other (the send is refused over the limit)."""
    limit = 256 << 10
    srv = spawn(*example("pubsub", "--workers", "2", "--max-backlog", str(limit)),
                backend=backend)
    slow = connect(srv.port, rcvbuf=4096)
    slow.sendall(b"INFO\nSUBSCRIBE news\n")
    greeting = LineReader(slow)
    m = INFO.match(greeting.line())
    assert m is not None and greeting.line() == b"subscribe news 1\n"
    slow_id, slow_worker = int(m.group(1)), int(m.group(2))
    fast = [connect(srv.port) for _ in range(4)]
    for s in fast:
        s.sendall(b"SUBSCRIBE news\n")
        assert recv_until_line(s) == b"subscribe news 1\n"
    readers = Lines(fast)
    spare = []
    while True:  # a publisher on the worker the case asks for (the kernel picks)
        pub = LineReader(connect(srv.port))
        if (worker_of(pub.sock) == slow_worker) == (publisher_worker == "same"):
            break
        spare.append(pub.sock)
        assert len(spare) < 100
    for s in spare:
        s.close()
    text = b"n" * 1000
    batch = 16
    sent = 0
    deadline = time.monotonic() + 60
    while not srv.matching(f"^pubsub: dropped client {slow_id}:"):
        assert time.monotonic() < deadline, "the slow subscriber was never dropped"
        pub.sock.sendall(b"".join(b"PUBLISH news %d %s\n" % (sent + i, text)
                                  for i in range(batch)))
        for _ in range(batch):
            assert pub.line().startswith(b"published news ")
        sent += batch
        readers.until_count(lambda s, want=sent: want)
    assert closed_by_peer(slow, timeout=10)
    pub.sock.sendall(b"PUBLISH news last\n")
    assert pub.line() == b"published news 4\n"  # the slow one is gone
    readers.until_count(lambda s: sent + 1)
    for s in fast:
        assert readers.lines[s] == [b"message news %d %s" % (i, text) for i in range(sent)] + [
            b"message news last"]
    assert srv.matching("^pubsub: dropped client") == [
        f"pubsub: dropped client {slow_id}: output backlog over {limit} bytes"]
    readers.close()
    pub.sock.close()
    slow.close()
