"""Helpers of the production suites (tests/py/ops): servers started with
inherited sockets, their listening sockets, pid files, HTTP GETs."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from helpers import HOST, SERVERS, ServerProcess, child_env

SERVE = [sys.executable, str(SERVERS / "ops_serve.py")]


def listening_socket(port: int = 0, host: str = HOST) -> socket.socket:
    """A listening socket as a service manager makes one (no SO_REUSEPORT)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    return s


def activated(socks: list[socket.socket], argv: list[str], backend: str | None,
              env: dict[str, str] | None = None) -> ServerProcess:
    """argv started with socks as descriptors 3, 4, ... (LISTEN_FDS)."""
    fds = [s.fileno() for s in socks]
    launcher = [sys.executable, str(SERVERS / "listen_fds_exec.py"), *map(str, fds), "--"]
    return ServerProcess(launcher + argv, child_env(backend, env), ready=False,
                         pass_fds=tuple(fds))


def socket_inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def listening_inodes() -> set[int]:
    """Inodes of every listening TCP socket of the machine (/proc/net/tcp{,6})."""
    out: set[int] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    out.add(int(fields[9]))
    return out


def process_sockets(pid: int) -> set[int]:
    """Inodes of the sockets the process holds (/proc/PID/fd)."""
    out: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            target = os.readlink(f"{fd_dir}/{name}")
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    return out


def get(port: int, path: str = "/pid", timeout: float = 10.0) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def wait_for(cond: object, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s: {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[-1][0] != "Z"
    return True


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM a process that is not our child (a restart's); SIGKILL if it
    outstays the timeout (and fail)."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"process {pid} did not exit within {timeout} s of SIGTERM")
        time.sleep(0.05)


def restart(pid_file: Path, timeout: float = 60.0) -> int:
    """SIGHUP the process the pid file names; the new one's pid once the old
    one has exited."""
    old = read_pid(pid_file)
    assert old is not None
    os.kill(old, signal.SIGHUP)
    wait_for(lambda: read_pid(pid_file) not in (None, old), timeout, "a new pid in the pid file")
    wait_for(lambda: not alive(old), timeout, f"the old process {old} exits")
    new = read_pid(pid_file)
    assert new is not None and new != old and alive(new)
    return new


@contextlib.contextmanager
def reaping(pid_file: Path) -> Iterator[None]:
    """At the end, stop whatever process the pid file names."""
    try:
        yield
    finally:
        pid = read_pid(pid_file)
        if pid is not None:
            with contextlib.suppress(AssertionError):
                stop_pid(pid)
