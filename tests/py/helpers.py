"""Helpers of the Python suites: client sockets, server subprocesses, memory.

A server under test runs as a subprocess (``servers/*.py``, started with the
interpreter running the tests); it announces itself with ``NAME: listening on
HOST:PORT``, may list its ports with ``PORTS {...}`` and prints its engine's
counters at exit with ``STATS {...}``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
TOOLS = HERE.parent.parent / "tools"


def load_tool(name: str) -> ModuleType:
    """tools/NAME.py as the module NAME (one implementation for the command
    line and the tests)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
HOST = "127.0.0.1"
MiB = 1 << 20
BACKENDS = ("uring", "epoll")
LISTENING = re.compile(r"^(\S+): listening on (\S+):(\d+)$")
# What a process must never print: a crash report.
CRASH_MARKERS = ("Fatal Python error", "Segmentation fault", "core dumped", "AddressSanitizer")


# ---- helpers for clients -----------------------------------------------------

def connect(port: int, timeout: float = 10.0, rcvbuf: int | None = None) -> socket.socket:
    """A blocking client socket with a timeout on every operation."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((HOST, port))
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly n bytes, or AssertionError if the peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        assert chunk, f"connection closed after {len(buf)} of {n} bytes"
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock: socket.socket, limit: int = 64 << 20) -> bytes:
    """Everything until the peer closes (at most limit bytes)."""
    buf = bytearray()
    while len(buf) <= limit:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk
    raise AssertionError(f"more than {limit} bytes without end of stream")


def recv_until_line(s: socket.socket) -> bytes:
    """Bytes up to and including the first newline (what one reply line needs)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        assert chunk, f"closed before a full line: {buf!r}"
        buf += chunk
    return buf


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer closes (EOF or reset) within timeout, data discarded."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def all_at_once(call: Any, n: int, timeout: float = 60.0) -> tuple[list[Any], float]:
    """call() on n threads started together: what each returned, and the
    seconds until all were done; the first exception one raised is raised."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(call())
        except BaseException as exc:  # noqa: BLE001 - raised below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    elapsed = time.monotonic() - t0
    if errors:
        raise errors[0]
    assert len(results) == n, f"{n - len(results)} of {n} calls unfinished after {timeout} s"
    return results, elapsed


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def child_env(backend: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with PX_BACKEND set (None: unset, i.e. auto)."""
    env = dict(os.environ)
    env.pop("PX_BACKEND", None)
    env.pop("PX_WORKERS", None)
    env.pop("PX_URING_REFUSE", None)
    env.pop("PX_URING_MASK", None)
    env["PYTHONFAULTHANDLER"] = "1"
    if backend is not None:
        env["PX_BACKEND"] = backend
    env.update(extra or {})
    return env


# ---- server processes --------------------------------------------------------

class Finished:
    """How a server process ended."""

    def __init__(self, rc: int, stdout: list[str], stderr: str, elapsed: float) -> None:
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed  # seconds from the signal to the exit
        stats = [json.loads(l[6:]) for l in stdout if l.startswith("STATS ")]
        self.stats: dict[str, Any] | None = stats[-1] if stats else None

    def describe(self) -> str:
        return (f"exit status {self.rc}\n--- stdout\n" + "\n".join(self.stdout[-40:]) +
                f"\n--- stderr\n{self.stderr[-4000:]}")

    def assert_clean(self, allow_tracebacks: bool = False) -> dict[str, Any]:
        """Exit status 0, counters printed, no open connection, no crash."""
        assert self.rc == 0, self.describe()
        for marker in CRASH_MARKERS:
            assert marker not in self.stderr, self.describe()
        if not allow_tracebacks:
            assert "Traceback" not in self.stderr, self.describe()
        assert self.stats is not None, "no STATS line at exit\n" + self.describe()
        assert self.stats["connections"] == 0, "connections leaked\n" + self.describe()
        assert self.stats["pool_in_use"] == 0, "pooled memory still in use\n" + self.describe()
        return self.stats


class ServerProcess:
    """A server subprocess whose stdout is read line by line in the background."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: bool = True,
                 ready_timeout: float = 20.0, pass_fds: tuple[int, ...] = ()) -> None:
        self.argv = argv
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env, pass_fds=pass_fds)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.finished: Finished | None = None
        self.allow_tracebacks = False
        self.ports: dict[str, int] = {}
        self.port = 0
        if ready:
            self.wait_ready(ready_timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def wait_line(self, pattern: str, timeout: float = 10.0, start: int = 0) -> str:
        """The first stdout line from index start that matches the regex pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s "
                             f"(exited: {self.proc.poll()})\n--- stdout\n" +
                             "\n".join(self.lines[-40:]) + "\n--- stderr\n" +
                             self.stderr_text()[-4000:])

    def matching(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        with self._cond:
            return [l for l in self.lines if rx.search(l)]

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait for the listening line, from which on the ports accept."""
        line = self.wait_line(LISTENING.pattern, timeout)
        m = LISTENING.match(line)
        assert m is not None
        self.port = int(m.group(3))
        ports = self.matching(r"^PORTS ")
        self.ports = json.loads(ports[0][6:]) if ports else {m.group(1): self.port}

    def stats(self) -> dict[str, Any]:
        """Live counters, read through the server's stats port (from a worker)."""
        with connect(self.ports["stats"]) as sock:
            return json.loads(recv_until_eof(sock))

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def send_signal(self, sig: int = signal.SIGTERM) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def finish(self, timeout: float = 15.0, sig: int | None = signal.SIGTERM) -> Finished:
        """Stop the server (graceful: SIGTERM) and collect how it ended."""
        if self.finished is not None:
            return self.finished
        start = time.monotonic()
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"server did not exit within {timeout} s of signal {sig}\n"
                                 + "\n".join(self.lines[-40:]) + "\n"
                                 + self.stderr_text()[-4000:]) from None
        elapsed = time.monotonic() - start
        self._reader.join(5)
        with self._cond:
            lines = list(self.lines)
        self.finished = Finished(rc, lines, self.stderr_text(), elapsed)
        return self.finished

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def close(self) -> None:
        self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()


def example(name: str, *args: str) -> list[str]:
    """Arguments of spawn() that run the package's example NAME."""
    return ["example.py", name, "--port", "0", *args]
