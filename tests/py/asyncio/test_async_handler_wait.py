"""An async HttpServer handler that suspends: its first step runs on the
handler's thread, on a loop that names that thread (asyncio's debug mode
checks it), and the handler's wait for its task hands the worker, with the
loop that runs the task, to a spare thread at once (servers/aio_app.py,
/yield)."""

from __future__ import annotations

import statistics

from test_worker_loop import http_get


def test_suspended_handler_in_asyncio_debug_mode(spawn, backend: str) -> None:
    # call_soon's thread check: the first step runs on the handler's thread,
    # after a spare ran the loop
    srv = spawn("aio_app.py", backend=backend, env={"PYTHONASYNCIODEBUG": "1"})
    for _ in range(20):
        assert http_get(srv.ports["http"], "/yield")[0] == 200


# What a waiting handler cost before it said so: the engine hands waits that
# look like the interpreter's own short lock waits off after 20 ms. That is a
# floor of every stalled resumption, so a median under it is no race.
STALL_MS = 20.0


def test_suspended_handler_hands_its_worker_off_at_once(spawn, backend: str) -> None:
    # one worker: the task resumes only once a spare runs the worker's loop
    srv = spawn("aio_app.py", backend=backend)
    got = []
    for _ in range(50):
        status, body = http_get(srv.ports["http"], "/yield")
        assert status == 200
        got.append(float(body))
    got.sort()
    assert statistics.median(got) < STALL_MS * 0.75, got
