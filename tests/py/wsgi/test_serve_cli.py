"""The `pyparallel serve` command: targets, interfaces, clear errors, the
module entry point and console script, the access log, --reload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from wsgi_helpers import APPS, served

from helpers import ServerProcess, child_env
from http_helpers import Conn, request, wait_for

ROOT = Path(__file__).resolve().parents[3]


def run_cli(*args: str, cwd: Path = APPS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyparallel", "serve", *args, "--port", "0"],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env=child_env(None))


def body(port: int, path: str) -> bytes:
    with Conn(port) as c:
        c.send(request("GET", path))
        return c.read_reply().body


def test_missing_module_is_a_clear_error() -> None:
    r = run_cli("no_such_module:app")
    assert r.returncode == 2
    assert "cannot import 'no_such_module': no module named 'no_such_module'" in r.stderr


def test_module_that_fails_to_import_shows_why() -> None:
    r = run_cli("broken_app:app")
    assert r.returncode == 2
    assert "importing 'broken_app' failed" in r.stderr
    assert "RuntimeError: broken-app-import-failure" in r.stderr


def test_missing_attribute_is_a_clear_error() -> None:
    r = run_cli("cli_apps:nope")
    assert r.returncode == 2 and "'cli_apps' has no attribute 'nope'" in r.stderr
    r = run_cli("cli_apps:not_callable", "--interface", "wsgi")
    assert r.returncode == 2 and "is not callable" in r.stderr


@pytest.mark.parametrize("backend", ["uring", "epoll"])
def test_targets_and_interfaces(backend: str) -> None:
    with served(backend, "cli_apps:app") as proc:
        assert body(proc.port, "/") == b"plain wsgi"
        assert proc.matching(r"GET / HTTP") == []  # no access log by default
    with served(backend, "cli_apps:create_app", "--factory") as proc:
        assert body(proc.port, "/") == b"made by the factory"
    with served(backend, "cli_apps:Site") as proc:  # a class: --interface http
        assert body(proc.port, "/hello") == b"an HttpServer"
    with served(backend, "cli_apps:Site", "--interface", "http", "--max-body", "10") as proc:
        with Conn(proc.port) as c:
            c.send(request("POST", "/hello", body=b"x" * 100))
            assert c.read_reply().status == 413


def test_access_log_to_stdout() -> None:
    with served(None, "cli_apps:app", "--access-log") as proc:  # type: ignore[arg-type]
        body(proc.port, "/stdout-log-probe")
        proc.wait_line(r'^127\.0\.0\.1 - - \[.*\] "GET /stdout-log-probe HTTP/1\.1" 200 10$')


def test_module_entry_point_and_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pyparallel"] == "pyparallel.__main__:main"
    proc = ServerProcess([sys.executable, "-m", "pyparallel", "serve", "cli_apps:app",
                          "--port", "0", "--app-dir", str(APPS)], child_env(None))
    try:
        assert body(proc.port, "/") == b"plain wsgi"
        assert proc.finish().rc == 0
    finally:
        proc.close()


def test_reload_restarts_on_change(tmp_path: Path) -> None:
    source = tmp_path / "reloading.py"
    source.write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'version one']\n")
    proc = ServerProcess([sys.executable, "-m", "pyparallel", "serve", "reloading:app",
                          "--port", "0", "--app-dir", str(tmp_path), "--reload"],
                         child_env(None))
    try:
        assert body(proc.port, "/") == b"version one"
        time.sleep(1.1)  # a new mtime, whatever the file system's granularity
        source.write_text(source.read_text().replace("version one", "version two"))
        proc.wait_line(r"listening on", timeout=30, start=len(proc.lines))
        port = proc.port
        line = proc.matching(r"listening on")[-1]
        port = int(line.rsplit(":", 1)[1])
        assert wait_for(lambda: body(port, "/") == b"version two", 20)
        assert proc.finish().rc == 0
    finally:
        proc.close()


def test_reload_restarts_on_sighup(tmp_path: Path) -> None:
    """Under --reload, SIGHUP to the reloader restarts the server (the default
    action would kill the reloader and orphan its server)."""
    (tmp_path / "hup.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [str(os.getpid()).encode()]\n")
    proc = ServerProcess([sys.executable, "-m", "pyparallel", "serve", "hup:app",
                          "--port", "0", "--app-dir", str(tmp_path), "--reload"],
                         child_env(None))
    try:
        first = body(proc.port, "/")
        proc.send_signal(signal.SIGHUP)
        proc.wait_line(r"listening on", timeout=30, start=len(proc.lines))
        line = proc.matching(r"listening on")[-1]
        port = int(line.rsplit(":", 1)[1])
        assert proc.proc.poll() is None, "the reloader died of SIGHUP"
        second = body(port, "/")
        assert second.isdigit() and second != first
        assert proc.finish().rc == 0
    finally:
        proc.close()


def test_reload_abbreviation_is_refused(tmp_path: Path) -> None:
    # "--rel" once meant --reload to argparse, but the child's argv (without
    # "--reload") kept it: each child a reloader of its own, without end
    proc = subprocess.Popen([sys.executable, "-m", "pyparallel", "serve", "pep_app:app",
                             "--port", "0", "--rel"], cwd=APPS, env=child_env(None),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole chain, whatever it became
        proc.communicate()
        raise AssertionError("--rel was taken for --reload") from None
    assert proc.returncode == 2 and "--rel" in err


def test_missing_dependency_named_like_a_prefix_shows_why() -> None:
    # "absent" is a prefix of "absent_dep_app", but not the module asked for
    r = run_cli("absent_dep_app:app")
    assert r.returncode == 2
    assert "importing 'absent_dep_app' failed" in r.stderr
    assert "No module named 'absent'" in r.stderr
