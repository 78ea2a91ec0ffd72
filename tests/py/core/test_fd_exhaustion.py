"""Out of file descriptors, a server pauses accepting instead of spinning
(servers/fd_limit.py: an echo server whose RLIMIT_NOFILE is lowered): its CPU
stays low, it logs one line per interval, counts the pauses (accept_pauses),
keeps answering the connections it has and accepts again once descriptors
free up."""

from __future__ import annotations

import os
import select
import socket
import time

from helpers import HOST

FD_LIMIT = 128  # the server's descriptors: engine, interpreter and ~90 connections
CLIENTS = 200  # well past the limit: the rest wait in the listen backlog
LOG_LINE = "cannot accept connections"


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a whole process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echoed(socks: list[socket.socket], timeout: float,
           want: int | None = None) -> set[socket.socket]:
    """The sockets whose 'ping' came back within timeout (each read once),
    returning early once want of them have."""
    waiting, done = set(socks), set()
    deadline = time.monotonic() + timeout
    want = len(socks) if want is None else want
    while len(done) < want and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], 0.1)
        for s in ready:
            assert s.recv(16) == b"ping", "an echo came back wrong"
            waiting.discard(s)
            done.add(s)
    return done


def test_out_of_descriptors_pauses_accepting(spawn, backend: str) -> None:
    srv = spawn("fd_limit.py", str(FD_LIMIT), backend=backend)
    port = srv.ports["echo"]
    socks: list[socket.socket] = []
    try:
        for _ in range(CLIENTS):  # the kernel completes them all (backlog 4096)
            s = socket.create_connection((HOST, port), timeout=10)
            s.sendall(b"ping")
            socks.append(s)
        answered: set[socket.socket] = set()
        # Poll until the server has said it ran out and has taken all it
        # can: nothing new for a while.
        deadline = time.monotonic() + 20
        while True:
            more = echoed([s for s in socks if s not in answered], 0.5)
            answered |= more
            if not more and LOG_LINE in srv.stderr_text():
                break
            assert time.monotonic() < deadline, "the server never reported the exhaustion"
        waiting = [s for s in socks if s not in answered]
        assert len(waiting) > 20, f"the server did not run out of descriptors ({len(answered)})"

        # Exhausted, with clients queued: the server must sleep, not spin (it
        # used about 2.3 cores busy-looping on accept before). 30 % of one
        # core over two seconds leaves a wide margin on a loaded machine.
        t0, c0 = time.monotonic(), cpu_seconds(srv.pid)
        time.sleep(2.0)
        cpu = (cpu_seconds(srv.pid) - c0) / (time.monotonic() - t0)
        assert cpu < 0.3, f"the server used {cpu:.0%} of a core while out of descriptors"

        # The connections it holds are still served.
        kept = list(answered)[:10]
        for s in kept:
            s.sendall(b"ping")
        assert len(echoed(kept, 10.0)) == len(kept), "held connections went unanswered"

        # One log line for the whole episode (at most one per 10 s interval).
        lines = [line for line in srv.stderr_text().splitlines() if LOG_LINE in line]
        assert len(lines) == 1, lines

        # Free descriptors: the queued clients are accepted and answered.
        freed = list(answered)[10:50]
        for s in freed:
            socks.remove(s)
            s.close()
        late = echoed(waiting, 15.0, want=min(len(waiting), 30))
        assert len(late) >= min(len(waiting), 30), \
            f"only {len(late)} of {len(waiting)} queued clients were accepted after the release"
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10
    while True:  # the stats port needs a descriptor: once the closes are seen
        try:
            total = srv.stats()["total"]
            break
        except OSError:
            assert time.monotonic() < deadline, "the stats port never answered"
            time.sleep(0.1)
    assert total["accept_pauses"] >= 1, total
