"""SIGHUP restarts every server the project starts from the command line, not
only ``pyparallel serve``: an example (echo), the directory server, and the
demo with its four listeners, each matched to its own inherited sockets.
Under systemd the old process names the new one (MAINPID=) once it is ready."""

from __future__ import annotations

import re
import socket
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import HOST, ServerProcess, child_env, connect, recv_exact
from ops_helpers import get, read_pid, reaping, restart, stop_pid, wait_for


def echo_works(port: int) -> None:
    with connect(port) as s:
        s.sendall(b"ping\n")
        assert recv_exact(s, 5) == b"ping\n"


CLIS = {
    "echo": ([sys.executable, "-m", "pyparallel.examples.echo", "--host", HOST, "--port", "0",
              "--workers", "2"], r"^echo: listening on "),
    "http.server": ([sys.executable, "-m", "pyparallel.http.server", ".", "--host", HOST,
                     "--port", "0", "--workers", "2"], r"^serving "),
    "demo": ([sys.executable, "-m", "pyparallel.demo", "--host", HOST, "--port", "0",
              "--workers", "2", "--wiki-pages", "20"], r"^  wikipedia "),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("cli", list(CLIS))
def test_sighup_restarts(backend: str, cli: str) -> None:
    argv, ready = CLIS[cli]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        pid_file = tmp / "pid"
        (tmp / "hello.txt").write_text("hello\n")
        argv = [str(tmp) if a == "." else a for a in argv]  # the directory served
        proc = ServerProcess([*argv, "--pid-file", str(pid_file)], child_env(backend),
                             ready=False)
        try:
            line = proc.wait_line(ready, 60)
            wait_for(lambda: read_pid(pid_file) == proc.pid, 20, "pid file")
            with reaping(pid_file):
                ports = [int(p) for p in re.findall(r":(\d+)", line)]
                named: dict[str, int] = {}  # the demo's: "  echo       HOST:PORT"
                for text in proc.lines:
                    m = re.match(r"^\s+(\w+)\s+(?:http://)?[\d.]+:(\d+)", text)
                    if m:
                        named.setdefault(m.group(1), int(m.group(2)))
                if cli == "demo":
                    ports = [named["dashboard"]]
                assert ports, proc.lines
                for _ in range(2):
                    new = restart(pid_file)
                if cli == "echo":
                    echo_works(ports[0])
                else:
                    status, body, _ = get(ports[0], "/hello.txt" if cli == "http.server"
                                          else "/plaintext")
                    assert status == 200, body
                if cli == "demo":  # every listener survived, each on its own port
                    echo_works(named["echo"])
                    with socket.create_connection((HOST, named["chargen"]), timeout=10) as s:
                        assert s.recv(10)  # chargen talks first
                    assert get(named["wikipedia"], "/")[0] == 200
                stop_pid(new)
                assert proc.proc.wait(10) == 0
        finally:
            proc.close()


def test_mainpid_on_restart(backend: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        pid_file = tmp / "pid"
        manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        manager.bind(str(tmp / "notify"))
        manager.settimeout(60)
        argv, ready = CLIS["echo"]
        proc = ServerProcess([*argv, "--pid-file", str(pid_file)],
                             child_env(backend, {"NOTIFY_SOCKET": str(tmp / "notify")}),
                             ready=False)
        try:
            proc.wait_line(ready, 60)
            assert f"MAINPID={proc.pid}" in manager.recv(4096).decode().split()
            with reaping(pid_file):
                new = restart(pid_file)
                # The new process told the old one, not the manager; the old
                # one names its successor.
                assert manager.recv(4096).decode().split() == [f"MAINPID={new}"]
                stop_pid(new)
                assert manager.recv(4096).decode().split() == ["STOPPING=1"]
        finally:
            proc.close()
            manager.close()
