"""A port that another process serves: a second server on it fails with an
EADDRINUSE error naming the address, instead of starting and letting the
kernel split the traffic (SO_REUSEPORT); ``reuse_port=True`` shares it on
purpose. The other process is a plain socket (with or without SO_REUSEPORT)
or another pyparallel server."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import Spawn
from helpers import HOST, connect, recv_until_line

HOLDER = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sys.argv[1] == "reuseport":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(s.getsockname()[1], flush=True)
    sys.stdin.read()
""")


@pytest.fixture(params=["reuseport", "plain"])
def held_port(request: pytest.FixtureRequest):
    """A port that another process listens on (with SO_REUSEPORT or not)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, request.param],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(10)


def refused(spawn: Spawn, backend: str, port: int) -> str:
    """stderr of a server started on port, which must fail at once."""
    proc = spawn("port_user.py", str(port), backend=backend, ready=False)
    rc = proc.proc.wait(30)
    err = proc.stderr_text()
    assert rc != 0, f"a second server started on a port another process serves\n{err}"
    assert not proc.matching("listening on"), proc.lines
    return err


def echoes(port: int) -> bool:
    with connect(port) as sock:
        sock.sendall(b"ping\n")
        return recv_until_line(sock) == b"ping\n"


def test_port_of_another_socket(spawn: Spawn, backend: str, held_port: int) -> None:
    err = refused(spawn, backend, held_port)
    assert f"{HOST}:{held_port} is already in use" in err, err
    assert "reuse_port=True" in err, err


def test_port_of_another_server(spawn: Spawn, backend: str) -> None:
    first = spawn("port_user.py", "0", backend=backend)
    assert echoes(first.port)
    err = refused(spawn, backend, first.port)
    assert f"{HOST}:{first.port} is already in use" in err, err
    assert echoes(first.port)  # the first is not disturbed


def test_reuse_port_shares(spawn: Spawn, backend: str) -> None:
    """Asked for, the port is shared: the second server starts and serves
    (the first one's listener allows it once it listens)."""
    first = spawn("port_user.py", "0", backend=backend)
    second = spawn("port_user.py", str(first.port), "--reuse-port", backend=backend)
    assert second.port == first.port
    for _ in range(8):
        assert echoes(first.port)
    # a plain socket still cannot take the port
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with pytest.raises(OSError):
        s.bind((HOST, first.port))
    s.close()
