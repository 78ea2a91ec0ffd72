"""2,000 concurrent idle ASGI WebSockets (apps/asgi_ws_apps.py's echo, two
workers) held by a client in a process of its own: every one is accepted and
answers a ping at the end, the app hears every disconnect, and the server's
memory grows by a bounded amount per connection (RSS, the app's task, its
scope and queue included)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgi_helpers import served_asgi

BACKENDS = ["uring", "epoll"]
N = 2_000
# Measured: about 10-12 KiB (3.11) and 11-15 KiB (3.13t) per idle ASGI WebSocket
# (the engine's ~2.5 KiB, then the app's task and coroutine, its scope, the
# receive queue); the bound leaves a clear margin and still catches the
# upgrade request or a message buffer kept per connection.
MAX_BYTES_PER_CONNECTION = 48 << 10
CLIENT = Path(__file__).resolve().parents[1] / "websocket" / "idle_client.py"


def hold(port: int, n: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(CLIENT), str(port), "/echo?idle", str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == f"OPEN {n}", line
    return proc


def release(proc: subprocess.Popen[str], n: int) -> None:
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == f"PONGS {n}"
    assert proc.wait(60) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_idle_asgi_websockets(backend: str) -> None:
    with served_asgi(backend, "asgi_ws_apps:app", "--workers", "2") as srv:
        release(hold(srv.port, 200), 200)  # warm-up: pools, first allocations
        time.sleep(0.5)
        before = srv.rss()
        proc = hold(srv.port, N)
        try:
            time.sleep(0.5)
            per_conn = (srv.rss() - before) / N
            print(f"idle ASGI WebSocket: {per_conn:.0f} bytes of server RSS per connection")
            assert per_conn < MAX_BYTES_PER_CONNECTION, per_conn
            release(proc, N)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        deadline = time.monotonic() + 30
        while sum(line.startswith("DISCONNECT idle") for line in list(srv.lines)) < N + 200:
            assert time.monotonic() < deadline, "the app did not hear every disconnect"
            time.sleep(0.1)
