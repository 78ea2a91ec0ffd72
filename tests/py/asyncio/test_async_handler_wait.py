"""An async HttpServer handler that suspends: the handler's thread waits for
its task, and its worker (with the loop that runs the task) goes to a spare
thread at once, not after the engine's long delay for waits that look like
the runtime's own lock waits (servers/aio_app.py, /yield)."""

from __future__ import annotations

import statistics

from test_worker_loop import http_get

# Lock-like waits are handed off after 20 ms; at once, the resumption takes
# handoff_ms (2) plus scheduling. The median keeps a loaded machine's
# outliers out.
BOUND_MS = 12.0


def test_suspended_handler_hands_the_worker_off_at_once(spawn, backend: str) -> None:
    srv = spawn("aio_app.py", backend=backend)
    got = []
    for _ in range(50):
        status, body = http_get(srv.ports["http"], "/yield")
        assert status == 200
        got.append(float(body))
    assert statistics.median(got) < BOUND_MS, sorted(got)


def test_suspended_handler_in_asyncio_debug_mode(spawn, backend: str) -> None:
    # call_soon's thread check: the first step runs on the handler's thread,
    # after a spare ran the loop
    srv = spawn("aio_app.py", backend=backend, env={"PYTHONASYNCIODEBUG": "1"})
    for _ in range(20):
        assert http_get(srv.ports["http"], "/yield")[0] == 200
