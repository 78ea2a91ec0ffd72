"""An async HttpServer handler that suspends: its first step runs on the
handler's thread, on a loop that names that thread (asyncio's debug mode
checks it; servers/aio_app.py, /yield)."""

from __future__ import annotations

from test_worker_loop import http_get


def test_suspended_handler_in_asyncio_debug_mode(spawn, backend: str) -> None:
    # call_soon's thread check: the first step runs on the handler's thread,
    # after a spare ran the loop
    srv = spawn("aio_app.py", backend=backend, env={"PYTHONASYNCIODEBUG": "1"})
    for _ in range(20):
        assert http_get(srv.ports["http"], "/yield")[0] == 200
