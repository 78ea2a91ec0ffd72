"""A throwaway Redis server (Debian's redis-server) for tests and benchmarks.

Everything lives in one directory: the log (DIR/redis.log) and the working
directory the server would write snapshots to. It writes none: no RDB save
points, no append-only file, so stopping it leaves nothing worth keeping and
the directory is removed. It listens on one loopback port, never anywhere
else, and runs in the foreground as a child of the caller (as root too:
redis-server needs no account of its own), so nothing outlives a stop(); it
is also sent SIGTERM when the thread that started it dies (a test run killed
by a timeout leaves no server behind), so start it from a thread that lives
as long as it should.

    server = RedisServer()          # a new directory under the temporary directory
    server.start()                  # returns the URL, redis://127.0.0.1:PORT/0
    ...
    server.stop()                   # SIGTERM, then SIGKILL; removes the directory
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# A port taken between free_port() and the server's bind: try another.
_BIND_ATTEMPTS = 5


class RedisError(RuntimeError):
    pass


def find_server() -> str:
    """The redis-server program: PX_REDIS_SERVER, else the one on PATH."""
    path = os.environ.get("PX_REDIS_SERVER") or shutil.which("redis-server")
    if not path:
        raise RedisError("no redis-server found: install Debian's `redis-server` package "
                         "(make bootstrap does) or set PX_REDIS_SERVER")
    return path


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent (thread) dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One throwaway server; start() once, stop() at the end (idempotent)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.program = find_server()
        self.dir = Path(directory or tempfile.mkdtemp(prefix="px-redis-")).absolute()
        self.log = self.dir / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self, port: int) -> list[str]:
        return [self.program, "--port", str(port), "--bind", "127.0.0.1",
                "--protected-mode", "yes", "--daemonize", "no", "--supervised", "no",
                "--dir", str(self.dir), "--logfile", str(self.log),
                # Nothing on disk: no snapshots, no append-only file.
                "--save", "", "--appendonly", "no",
                "--unixsocket", "", "--databases", "16"]

    def start(self, timeout: float = 30.0) -> str:
        """Start the server and wait until it answers PING; its URL."""
        if self.proc is not None:
            return self.url
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(_BIND_ATTEMPTS):
            port = free_port()
            proc = subprocess.Popen(self.argv(port), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    cwd=self.dir, preexec_fn=_die_with_parent)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if ping(port):
                    self.proc, self.port = proc, port
                    return self.url
                time.sleep(0.02)
            if proc.poll() is None:
                _kill(proc)
                raise RedisError(f"redis-server did not answer within {timeout:.0f} s; "
                                 f"log:\n{self._log_tail()}")
            proc.wait()
            if "Address already in use" not in self._log_tail():
                raise RedisError(f"redis-server exited with status {proc.returncode}; "
                                 f"log:\n{self._log_tail()}")
        raise RedisError(f"redis-server found no free port in {_BIND_ATTEMPTS} attempts")

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 10 s) and remove its directory."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None:
                _kill(proc)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return "(no log)"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
