"""The health endpoint (``--health-path``): answered by the server itself,
200 "ok" while serving and 503 "draining" (with Connection: close) once the
process hands over to a new one on SIGHUP, so that a balancer stops sending
it new requests before its connections close; other paths go to the app."""

from __future__ import annotations

import http.client
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from helpers import HOST, SERVERS, ServerProcess, child_env
from ops_helpers import SERVE, get, read_pid, reaping, stop_pid, wait_for


@pytest.mark.parametrize("target", ["ops_app:App", "ops_app:wsgi_app", "ops_app:asgi_app"],
                         ids=["http", "wsgi", "asgi"])
def test_health_ok_then_draining(backend: str, target: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        pid_file = Path(t) / "server.pid"
        argv = [*SERVE, target, "--app-dir", str(SERVERS), "--host", HOST, "--port", "0",
                "--workers", "1", "--health-path", "/healthz", "--pid-file", str(pid_file)]
        proc = ServerProcess(argv, child_env(backend, {"PX_DRAIN_GRACE": "10"}), ready=False)
        try:
            proc.wait_ready(30)
            wait_for(lambda: read_pid(pid_file) == proc.pid, 10, "pid file")
            with reaping(pid_file):
                status, body, headers = get(proc.port, "/healthz")
                assert (status, body) == (200, "ok\n")
                assert headers["cache-control"] == "no-store"
                assert get(proc.port, "/healthzz")[1] != "ok\n"  # only the exact path
                conn = http.client.HTTPConnection(HOST, proc.port, timeout=10)
                conn.request("HEAD", "/healthz")
                r = conn.getresponse()
                assert r.status == 200 and r.read() == b""
                os.kill(proc.pid, signal.SIGHUP)
                # The kept-alive connection is the old process's: once it
                # drains, its health says so, and the connection ends.
                deadline = time.monotonic() + 30
                while True:
                    conn.request("GET", "/healthz")
                    r = conn.getresponse()
                    body = r.read().decode()
                    if r.status != 200:
                        break
                    assert time.monotonic() < deadline, "never draining"
                    time.sleep(0.05)
                assert (r.status, body) == (503, "draining\n")
                assert r.getheader("Connection") == "close"
                conn.close()
                wait_for(lambda: read_pid(pid_file) not in (None, proc.pid), 30, "new pid")
                status, body, _ = get(proc.port, "/healthz")  # the new process's
                assert (status, body) == (200, "ok\n")
                assert proc.proc.wait(30) == 0
                new = read_pid(pid_file)
                assert new is not None
                # PX_DRAIN_GRACE is the new one's stop grace too: a second
                # signal ends it at once.
                os.kill(new, signal.SIGINT)
                stop_pid(new)
        finally:
            proc.close()
