"""A callback that raises kills nothing: with an exception_handler the handler
gets it; without one run() re-raises it in the main thread, and serving goes on
(servers/raiser.py, one worker)."""

from __future__ import annotations

import scenarios


def test_exception_handler_receives_and_serving_goes_on(spawn, backend: str) -> None:
    srv = spawn("raiser.py", "--handler", backend=backend)
    scenarios.exceptions_with_handler(srv)
    stats = srv.finish().assert_clean()
    assert stats["errors"] == 4


def test_exception_handler_that_raises_reaches_run(spawn, backend: str) -> None:
    srv = spawn("raiser.py", "--handler", backend=backend)
    scenarios.handler_that_raises(srv)
    srv.finish().assert_clean()


def test_without_handler_run_reraises_and_worker_serves_on(spawn, backend: str) -> None:
    srv = spawn("raiser.py", "--no-handler", backend=backend)
    scenarios.exceptions_without_handler(srv)
    stats = srv.finish().assert_clean()
    assert stats["errors"] == 3
