"""Behind HAProxy (Debian's), as docs/deploy.md describes: two instances on
loopback with health checks on the health path and the PROXY protocol v2
(haproxy.cfg.in). Under a steady load through HAProxy, a rolling restart
(SIGHUP each instance in turn) loses no request; a hard kill of one instance
loses at most the requests in flight on it, and HAProxy marks it down within
its health-check interval (plus a margin for a loaded machine) and sends
everything to the other."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import HOST, SERVERS, ServerProcess, child_env
from ops_helpers import SERVE, alive, get, read_pid, reaping, stop_pid, wait_for

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="haproxy is not installed (tools/bootstrap-python "
                                       "installs it)")
CONFIG = Path(__file__).with_name("haproxy.cfg.in")
CONNECTIONS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Site:
    """Two instances and HAProxy in front of them."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.tmp = tmp
        self.instances: list[ServerProcess] = []
        self.pid_files: list[Path] = []
        self.haproxy: subprocess.Popen[bytes] | None = None
        try:
            self._start(backend, tmp)
        except BaseException:
            self.close()  # what did start must not outlive the test
            raise

    def _start(self, backend: str, tmp: Path) -> None:
        for name in ("a", "b"):
            pid_file = tmp / f"{name}.pid"
            argv = [*SERVE, "ops_app:App", "--app-dir", str(SERVERS), "--host", HOST,
                    "--port", "0", "--workers", "1", "--health-path", "/healthz",
                    "--proxy-protocol", "--pid-file", str(pid_file)]
            self.pid_files.append(pid_file)
            proc = ServerProcess(argv, child_env(backend), ready=False)
            self.instances.append(proc)
            proc.wait_ready(30)
            wait_for(lambda p=proc, f=pid_file: read_pid(f) == p.pid, 10, "pid file")
        self.port = free_port()
        self.stats_socket = str(tmp / "haproxy.sock")
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(CONFIG.read_text().format(
            stats_socket=self.stats_socket, frontend_port=self.port,
            port_a=self.instances[0].port, port_b=self.instances[1].port))
        self.haproxy = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: self.status() == {"a": "UP", "b": "UP"}, 60, "both servers UP")

    def status(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it (its stats socket)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(self.stats_socket)
                s.sendall(b"show stat\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return {}
        out = {}
        for line in data.decode().splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "app" and fields[1] in ("a", "b"):
                out[fields[1]] = fields[17].split()[0]
        return out

    def load(self, seconds: float, result: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "pyparallel.loadgen", f"http://{HOST}:{self.port}/pid",
             "--rate", "300", "--duration", str(seconds), "--connections", str(CONNECTIONS),
             "--timeout", "10", "--json", str(result)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def close(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait()
        for pid_file in self.pid_files:
            pid = read_pid(pid_file)
            if pid is not None and alive(pid):
                stop_pid(pid)
        for proc in self.instances:
            proc.close()


def finish(load: subprocess.Popen[bytes], result: Path) -> dict[str, object]:
    load.send_signal(signal.SIGINT)
    _, err = load.communicate(timeout=60)
    assert result.exists(), err.decode()
    out: dict[str, object] = json.loads(result.read_text())
    return out


def test_rolling_restart_loses_no_request(backend: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        site = Site(backend, tmp)
        try:
            with reaping(site.pid_files[0]), reaping(site.pid_files[1]):
                result = tmp / "load.json"
                load = site.load(120, result)
                try:
                    time.sleep(1.0)
                    for pid_file in site.pid_files:
                        old = read_pid(pid_file)
                        assert old is not None
                        os.kill(old, signal.SIGHUP)
                        wait_for(lambda f=pid_file, o=old: read_pid(f) not in (None, o), 60,
                                 "a new pid")
                        wait_for(lambda o=old: not alive(o), 60, "the old process exits")
                        # Back in rotation before the next one goes.
                        wait_for(lambda: site.status() == {"a": "UP", "b": "UP"}, 20, "UP")
                    time.sleep(0.5)
                finally:
                    r = finish(load, result)
                assert r["responses"], r
                assert r["errors"] == {k: 0 for k in r["errors"]}, r  # type: ignore[union-attr]
                assert r["non_2xx_3xx"] == 0 and r["connect_errors"] == 0, r
        finally:
            site.close()


def test_hard_kill_loses_at_most_in_flight(backend: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        site = Site(backend, tmp)
        try:
            result = tmp / "load.json"
            load = site.load(120, result)
            try:
                time.sleep(1.5)
                victim = read_pid(site.pid_files[1])
                survivor = read_pid(site.pid_files[0])
                assert victim is not None and survivor is not None
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                wait_for(lambda: site.status().get("b") == "DOWN", 30, "b marked DOWN")
                down_after = time.monotonic() - killed_at
                time.sleep(1.0)
            finally:
                r = finish(load, result)
            # fall 2 x inter 200 ms: well under a second; generous on a loaded machine.
            assert down_after < 5.0, down_after
            lost = sum(r["errors"].values()) + r["non_2xx_3xx"]  # type: ignore[union-attr]
            assert lost <= CONNECTIONS, r  # at most one request in flight per connection
            assert r["responses"], r
            for _ in range(10):  # everything goes to the survivor now
                status, body, _ = get(site.port)
                assert status == 200 and body == str(survivor)
            print(f"\n{backend}: b DOWN after {down_after:.2f} s; lost {lost} of "
                  f"{r['requests']} requests")
        finally:
            site.close()
