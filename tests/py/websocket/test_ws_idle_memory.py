"""10,000 concurrent idle WebSockets on one server (servers/ws_app.py, two
workers), held by a client in a process of its own: every one is accepted
with permessage-deflate (as a browser's would be) and has sent one
compressed message and received its compressed echo, stays alive (answers a
ping at the end), and the server's memory grows by a bounded amount per
connection (RSS measured, Python objects included): no zlib state stays
behind on an idle connection."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from helpers import ServerProcess

N = 10_000
# Measured: about 2.5 KiB per idle WebSocket (engine connection, WebSocket
# state, its Python object and callbacks); the bound leaves a clear margin
# and still catches a receive buffer (16 KiB), a message buffer or an
# inflater (39 KiB) kept per connection.
MAX_BYTES_PER_CONNECTION = 8 << 10


def test_ten_thousand_idle_websockets(spawn, backend):
    srv: ServerProcess = spawn("ws_app.py", backend=backend)
    client = Path(__file__).with_name("idle_client.py")
    # warm up: the pools and the interpreter's first allocations are not
    # what a connection costs
    warm = subprocess.Popen([sys.executable, str(client), str(srv.port), "/echo", "200", "deflate"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert warm.stdout is not None and warm.stdin is not None
    assert warm.stdout.readline().strip() == "OPEN 200"
    warm.stdin.write("\n")
    warm.stdin.flush()
    assert warm.stdout.readline().strip() == "PONGS 200"
    assert warm.wait(60) == 0
    time.sleep(0.5)
    before = srv.rss()
    proc = subprocess.Popen([sys.executable, str(client), str(srv.port), "/echo", str(N), "deflate"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline().strip()
        assert line == f"OPEN {N}", line
        deadline = time.monotonic() + 30
        while srv.stats()["total"]["connections"] < N:
            assert time.monotonic() < deadline, srv.stats()["total"]["connections"]
            time.sleep(0.1)
        after = srv.rss()
        per_conn = (after - before) / N
        print(f"idle WebSocket: {per_conn:.0f} bytes of server RSS per connection "
              f"({before >> 20} MiB -> {after >> 20} MiB)")
        assert per_conn < MAX_BYTES_PER_CONNECTION, per_conn
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == f"PONGS {N}"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while srv.stats()["total"]["connections"] > 1:  # the stats connection itself
        assert time.monotonic() < deadline, srv.stats()["total"]["connections"]
        time.sleep(0.1)
