"""Idle timeouts and rate limits (servers/timers.py, one worker).

Timers armed from completions must count from the moment of the event, not
from the worker's last wake-up. The worker sleeps up to a second when it has no
timer; the last two tests wake it at a known moment with a round trip on a
plain echo connection, keep it asleep 0.9 s, and then start the timer under
test. The others wake it just before, so that they measure the timeout itself."""

from __future__ import annotations

import time

import pytest

from helpers import closed_by_peer, connect, recv_exact, recv_until_eof


def wake_worker_then_sleep(plain) -> None:
    plain.sendall(b"wake")
    assert recv_exact(plain, 4) == b"wake"
    time.sleep(0.9)  # the single worker sleeps: nothing of it is armed


@pytest.mark.parametrize("name", ["idle", "idle_delta"])
def test_idle_timeout_closes_idle_connection(spawn, backend: str, name: str) -> None:
    srv = spawn("timers.py", backend=backend)
    with connect(srv.ports["plain"]) as plain, connect(srv.ports[name]) as s:
        port = s.getsockname()[1]
        # Traffic keeps the connection open well past the timeout (0.5 s).
        for i in range(8):
            if i:
                time.sleep(0.2)
            s.sendall(b"ping")
            assert recv_exact(s, 4) == b"ping"
        start = time.monotonic()
        assert recv_until_eof(s) == b""
        idle = time.monotonic() - start
        plain.sendall(b"x")  # the other connection was not touched
        assert recv_exact(plain, 1) == b"x"
    assert 0.45 <= idle <= 1.0, f"idle connection closed after {idle:.3f} s, timeout is 0.5 s"
    line = srv.wait_line(rf"^LOST {port} ")
    assert line == f"LOST {port} ConnectionError(110, 'Connection timed out')"
    stats = srv.finish().assert_clean()
    assert stats["timeouts"] == 1


def test_idle_timeout_counts_from_accept(spawn, backend: str) -> None:
    srv = spawn("timers.py", backend=backend)
    with connect(srv.ports["plain"]) as plain:
        wake_worker_then_sleep(plain)
        with connect(srv.ports["idle"]) as s:
            # 0.2 s after connecting, well within the 0.5 s idle timeout.
            assert not closed_by_peer(s, timeout=0.2), "closed 0.2 s after connect"
            s.sendall(b"ping")
            assert recv_exact(s, 4) == b"ping"


def test_rate_limit_counts_from_receive(spawn, backend: str) -> None:
    srv = spawn("timers.py", backend=backend)
    with connect(srv.ports["plain"]) as plain, connect(srv.ports["rate"]) as s:
        s.sendall(b"r0")
        assert recv_exact(s, 2) == b"r0"
        time.sleep(0.6)  # the first pause (0.5 s) is over
        wake_worker_then_sleep(plain)
        s.sendall(b"r1")
        assert recv_exact(s, 2) == b"r1"
        start = time.monotonic()
        s.sendall(b"r2")
        assert recv_exact(s, 2) == b"r2"
        gap = time.monotonic() - start
    assert gap >= 0.45, f"reading resumed {gap:.3f} s after a receive, rate_limit is 0.5 s"
