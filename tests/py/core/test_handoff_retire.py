"""Spare threads started for a burst of blocking callbacks end once they have
been idle for pool_idle_ms (the engine's "memory unused this long goes back
to the system"), down to a small reserve: each holds the stack and
interpreter state it touched, which a server that saw one burst would
otherwise keep for ever."""

from __future__ import annotations

import re
import socket
import threading
import time

from helpers import ServerProcess

BURST = 24
RESERVE = 4  # RESERVE_IDLE in src/core/threads.c


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]


def _sleep_call(port: int, results: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"sleep 0.3\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(64)
            if not chunk:
                break
            buf += chunk
        results.append(buf)


def test_idle_spares_retire(spawn, backend: str) -> None:
    srv: ServerProcess = spawn("handoff_app.py", "--workers", "1", "--pool-idle-ms", "300",
                               backend=backend)
    port = srv.ports["lines"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"ping\n")
        assert s.recv(64) == b"ping\n"  # the engine runs: its workers are there
    before = _threads(srv.pid)
    results: list[bytes] = []
    clients = [threading.Thread(target=_sleep_call, args=(port, results)) for _ in range(BURST)]
    peak = before
    for c in clients:
        c.start()
    while any(c.is_alive() for c in clients):
        peak = max(peak, _threads(srv.pid))
        time.sleep(0.01)
    assert results == [b"slept\n"] * BURST
    assert peak >= before + BURST // 2, (before, peak)  # the burst was spread over spares
    deadline = time.monotonic() + 20
    while _threads(srv.pid) > before + RESERVE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _threads(srv.pid) <= before + RESERVE, (before, peak, _threads(srv.pid))
    # and the remaining threads still serve a later burst
    results.clear()
    clients = [threading.Thread(target=_sleep_call, args=(port, results)) for _ in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(30)
    assert results == [b"slept\n"] * 8
    srv.finish().assert_clean()
