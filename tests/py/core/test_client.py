"""px.client(): protocols on outgoing connections, driven by the same engine
machinery as servers. With no server registered, run() returns by itself once
every client has closed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from helpers import CRASH_MARKERS, HOST, SERVERS, child_env, example


def run_clients(backend: str, *args: str) -> tuple[list[str], dict]:
    res = subprocess.run([sys.executable, str(SERVERS / "client.py"), *args],
                         env=child_env(backend), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    for marker in CRASH_MARKERS + ("Traceback",):
        assert marker not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    stats = json.loads([l for l in lines if l.startswith("STATS ")][-1][6:])
    assert stats["connections"] == 0 and stats["pool_in_use"] == 0, stats
    return lines, stats


def test_clients_of_a_remote_server_then_run_returns(spawn, backend: str) -> None:
    srv = spawn(*example("echo", "--workers", "1"), backend=backend)
    lines, stats = run_clients(backend, "remote", str(srv.port), "20")
    done = sorted(l for l in lines if l.startswith("CLIENT "))
    assert done == sorted(f"CLIENT ok {i} None" for i in range(20))
    assert "RUN returned" in lines
    assert stats["connects"] == 20 and stats["accepts"] == 0
    server_stats = srv.finish().assert_clean()
    assert server_stats["bytes_in"] == server_stats["bytes_out"] == stats["bytes_out"]


def test_clients_and_server_in_one_engine(backend: str) -> None:
    lines, stats = run_clients(backend, "local", "10")
    done = sorted(l for l in lines if l.startswith("CLIENT "))
    assert done == sorted(f"CLIENT ok {i} None" for i in range(10))
    assert "RUN returned" in lines
    assert stats["connects"] == 10 and stats["accepts"] == 10


def test_refused_client_reraises_from_run_then_returns(backend: str) -> None:
    with socket.socket() as reserved:  # a port that is bound but not listening
        reserved.bind((HOST, 0))
        port = reserved.getsockname()[1]
        lines, stats = run_clients(backend, "refused", str(port))
    # The true cause: ConnectionRefusedError (a ConnectionError).
    assert "RAISED ConnectionRefusedError: [Errno 111] Connection refused" in lines
    assert lines.count("RUN returned") == 1
    assert not [l for l in lines if l.startswith("CLIENT ")]
    assert stats["errors"] == 1
