"""The PROXY header's deadline (``--proxy-timeout``, ``proxy_timeout`` in
listen_http's limits): a connection whose header is not complete by then is
closed without an answer; 5 s when not set."""

from __future__ import annotations

import subprocess
import time

from helpers import HOST, SERVERS, ServerProcess, child_env, connect, recv_until_eof
from ops_helpers import SERVE

REQUEST = b"GET /addr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def server(backend: str, timeout: str) -> ServerProcess:
    argv = [*SERVE, "ops_app:App", "--app-dir", str(SERVERS), "--host", HOST, "--port", "0",
            "--workers", "1", "--proxy-protocol", "--proxy-timeout", timeout]
    return ServerProcess(argv, child_env(backend), ready=True, ready_timeout=30)


def test_short_deadline_closes_sooner(backend: str) -> None:
    proc = server(backend, "0.3")
    try:
        with connect(proc.port) as s:
            s.settimeout(30)
            s.sendall(b"PROXY TCP4 192.0.2.1")
            start = time.monotonic()
            assert recv_until_eof(s) == b""
            assert time.monotonic() - start < 3  # not the default 5 s
    finally:
        proc.close()


def test_long_deadline_outlasts_the_default(backend: str) -> None:
    proc = server(backend, "60")
    try:
        with connect(proc.port) as s:
            s.sendall(b"PROXY TCP4 192.0.2.1")
            s.settimeout(6.5)  # past the default 5 s deadline: still open
            try:
                data = s.recv(1)
            except TimeoutError:
                data = None
            assert data is None, "closed before the configured deadline"
            s.settimeout(30)
            s.sendall(b" 198.51.100.7 56324 443\r\n" + REQUEST)
            out = recv_until_eof(s)
        assert out.startswith(b"HTTP/1.1 200"), out
        assert out.endswith(f"{proc.pid} 192.0.2.1 56324".encode()), out
    finally:
        proc.close()


def test_negative_deadline_is_refused() -> None:
    argv = [*SERVE, "ops_app:App", "--app-dir", str(SERVERS), "--host", HOST, "--port", "0",
            "--workers", "1", "--proxy-protocol", "--proxy-timeout", "-1"]
    out = subprocess.run(argv, env=child_env(None), capture_output=True, timeout=60)
    assert out.returncode != 0
    assert b"proxy_timeout must be between 0 and 86400 seconds" in out.stderr, out.stderr
