"""Socket activation: a server started with LISTEN_FDS/LISTEN_PID serves the
sockets it is handed (matched by address) and binds nothing; it tells the
service manager READY=1 once serving and STOPPING=1 when it stops
(NOTIFY_SOCKET, a datagram socket the test plays the manager with)."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from helpers import HOST, SERVERS
from ops_helpers import (
    SERVE,
    activated,
    get,
    listening_inodes,
    listening_socket,
    process_sockets,
    socket_inode,
    wait_for,
)

TARGETS = pytest.mark.parametrize("target", ["ops_app:App", "ops_app:wsgi_app",
                                             "ops_app:asgi_app"], ids=["http", "wsgi", "asgi"])


def serve_argv(target: str, port: int, *extra: str) -> list[str]:
    return [*SERVE, target, "--app-dir", str(SERVERS), "--host", HOST, "--port", str(port),
            "--workers", "2", *extra]


@TARGETS
def test_serves_inherited_socket_and_binds_nothing(backend: str, target: str) -> None:
    lsock = listening_socket()
    other = listening_socket()  # handed over too, asked for by nobody: closed by the server
    port = lsock.getsockname()[1]
    before = listening_inodes()
    proc = activated([other, lsock], serve_argv(target, port), backend)
    try:
        proc.wait_ready(30)
        assert proc.port == port
        for _ in range(20):  # both workers' turns
            status, body, _ = get(port)
            assert status == 200 and body.split()[0] == str(proc.pid)
        held = process_sockets(proc.pid)
        mine = {socket_inode(lsock), socket_inode(other)}
        new_listeners = (listening_inodes() - before) & held
        assert new_listeners == set(), "the server bound a listening socket of its own"
        assert socket_inode(lsock) in held
        wait_for(lambda: socket_inode(other) not in process_sockets(proc.pid), 10,
                 "the server closes the socket nobody asked for")
        proc.finish()
        assert proc.finished is not None and proc.finished.rc == 0, proc.finished.describe()
        assert mine <= listening_inodes()  # still the test's, still listening
    finally:
        proc.close()
        lsock.close()
        other.close()


def test_port_zero_takes_the_inherited_socket(backend: str) -> None:
    lsock = listening_socket()
    proc = activated([lsock], serve_argv("ops_app:App", 0), backend)
    try:
        proc.wait_ready(30)
        assert proc.port == lsock.getsockname()[1]
        assert get(proc.port)[0] == 200
    finally:
        proc.close()
        lsock.close()


def test_sd_notify_ready_and_stopping(backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "notify")
        manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        manager.bind(path)
        manager.settimeout(30)
        lsock = listening_socket()
        port = lsock.getsockname()[1]
        proc = activated([lsock], serve_argv("ops_app:App", port), backend,
                         {"NOTIFY_SOCKET": path})
        try:
            ready = manager.recv(4096).decode()
            assert "READY=1" in ready.splitlines()
            assert f"MAINPID={proc.pid}" in ready.splitlines()
            assert get(port)[0] == 200  # ready means serving
            finished = proc.finish()
            assert finished.rc == 0, finished.describe()
            assert "STOPPING=1" in manager.recv(4096).decode().splitlines()
        finally:
            proc.close()
            lsock.close()
            manager.close()
