"""A stop's drain grace (``--drain-grace``, ``px.run(drain_grace=)``,
PX_DRAIN_GRACE): on SIGTERM the process serves on, still accepting, while
its health endpoint answers 503 "draining" and every answer says
``Connection: close``, so that a load balancer takes it out before
connections are refused; then it stops. A second signal stops it at once;
with no grace configured SIGTERM stops at once, as before."""

from __future__ import annotations

import http.client
import os
import signal
import sys
import time

import pytest

from helpers import HOST, SERVERS, ServerProcess, child_env
from ops_helpers import SERVE, get

TARGETS = pytest.mark.parametrize("target", ["ops_app:App", "ops_app:wsgi_app",
                                             "ops_app:asgi_app"], ids=["http", "wsgi", "asgi"])


def serve(backend: str, target: str, *extra: str,
          env: dict[str, str] | None = None) -> ServerProcess:
    argv = [*SERVE, target, "--app-dir", str(SERVERS), "--host", HOST, "--port", "0",
            "--workers", "1", "--health-path", "/healthz", *extra]
    return ServerProcess(argv, child_env(backend, env), ready=True, ready_timeout=30)


def health(conn: http.client.HTTPConnection) -> tuple[int, str, str | None]:
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    return r.status, r.read().decode(), r.getheader("Connection")


@TARGETS
def test_sigterm_drains_then_stops(backend: str, target: str) -> None:
    proc = serve(backend, target, "--drain-grace", "60")
    try:
        kept = http.client.HTTPConnection(HOST, proc.port, timeout=10)
        assert health(kept) == (200, "ok\n", None)
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (answer := health(kept))[0] == 200:
            assert time.monotonic() < deadline, "never draining"
            time.sleep(0.05)
        assert answer == (503, "draining\n", "close")
        kept.close()
        # Still accepting and serving: new connections are answered, each
        # answer closing its connection.
        for _ in range(3):
            status, body, headers = get(proc.port, "/healthz")
            assert (status, body, headers["connection"]) == (503, "draining\n", "close")
            status, body, headers = get(proc.port, "/pid")
            assert status == 200 and body.startswith(str(proc.pid)), body
            assert headers["connection"] == "close"
        assert proc.proc.poll() is None, "stopped within the grace"
        assert "draining for 60 s" in proc.stderr_text()
        os.kill(proc.pid, signal.SIGINT)  # a second signal: stop now
        assert proc.proc.wait(30) == 0
    finally:
        proc.close()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_grace_ends_by_itself(backend: str, how: str) -> None:
    extra, env = (["--drain-grace", "1"], None) if how == "option" else \
        ([], {"PX_DRAIN_GRACE": "1"})
    proc = serve(backend, "ops_app:App", *extra, env=env)
    try:
        assert get(proc.port, "/healthz")[:2] == (200, "ok\n")  # serving: run() has the signals
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.proc.wait(30) == 0
        assert "draining for 1 s" in proc.stderr_text()
    finally:
        proc.close()


def test_no_grace_stops_at_once(backend: str) -> None:
    proc = serve(backend, "ops_app:App")
    try:
        assert get(proc.port, "/healthz")[:2] == (200, "ok\n")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.proc.wait(30) == 0
        assert "draining" not in proc.stderr_text()
    finally:
        proc.close()


def test_run_keyword(backend: str) -> None:
    proc = ServerProcess([sys.executable, str(SERVERS / "grace_run.py"), "60"],
                         child_env(backend), ready=True, ready_timeout=30)
    try:
        assert get(proc.port, "/healthz")[:2] == (200, "ok\n")
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (answer := get(proc.port, "/healthz"))[0] == 200:
            assert time.monotonic() < deadline, "never draining"
            time.sleep(0.05)
        assert answer[:2] == (503, "draining\n")
        assert proc.proc.poll() is None
        os.kill(proc.pid, signal.SIGINT)
        assert proc.proc.wait(30) == 0
    finally:
        proc.close()
