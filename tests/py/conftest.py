"""Fixtures of the Python suites.

Every server under test runs as a subprocess on both I/O backends: the
``backend`` fixture sets ``PX_BACKEND`` for it. ``spawn`` starts a server,
waits for its listening line and, at teardown, stops it with SIGTERM and fails
the test if the process did not exit cleanly or its engine still counted open
connections or pooled memory in use (uvloop-style leak hygiene). A test that
failed has its servers killed instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import BACKENDS, SERVERS, TOOLS, ServerProcess, child_env
from pgcluster import pg_cluster, pg_dsn, pg_template  # noqa: F401  (fixtures: PostgreSQL clusters)
from redisserver import redis_url  # noqa: F401  (fixture: a throwaway Redis)
from upstream import upstream  # noqa: F401  (fixture: a loopback HTTP server)

# Default per-test limit: no test may hang the suite.
DEFAULT_TIMEOUT = 90


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The I/O backend the server under test is asked for (PX_BACKEND)."""
    return str(request.param)


Spawn = Callable[..., ServerProcess]


def _spawn_factory(procs: list[ServerProcess]) -> Spawn:
    def spawn(script: str, *args: str, backend: str | None, env: dict[str, str] | None = None,
              launcher: list[str] | None = None, ready: bool = True,
              ready_timeout: float = 20.0) -> ServerProcess:
        argv = list(launcher or []) + [sys.executable, str(SERVERS / script), *args]
        proc = ServerProcess(argv, child_env(backend, env), ready=False)
        procs.append(proc)
        if ready:
            proc.wait_ready(ready_timeout)
        return proc
    return spawn


def _teardown(procs: list[ServerProcess], passed: bool) -> None:
    try:
        if passed:
            for proc in procs:
                if proc.finished is None and proc.proc.poll() is None:
                    proc.finish().assert_clean(proc.allow_tracebacks)
    finally:
        for proc in procs:
            proc.close()


@pytest.fixture
def spawn(request: pytest.FixtureRequest) -> Iterator[Spawn]:
    """spawn(script, *args, backend=...) -> a ready ServerProcess.

    Servers the test left running are stopped at teardown and must exit
    cleanly with no open connection."""
    procs: list[ServerProcess] = []
    yield _spawn_factory(procs)
    rep = getattr(request.node, "rep_call", None)
    _teardown(procs, rep is not None and rep.passed)


@pytest.fixture(scope="session")
def no_uring(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The launcher that refuses io_uring (tools/no-uring.c), compiled."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH to build tools/no-uring.c")
    out = tmp_path_factory.mktemp("no-uring") / "no-uring"
    res = subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                          str(TOOLS / "no-uring.c")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"tools/no-uring.c does not compile:\n{res.stderr}"
    # The filter must hold: io_uring_setup refused with EPERM under the launcher.
    check = subprocess.run([str(out), sys.executable, "-c",
                            "import ctypes, ctypes.util, os\n"
                            "libc = ctypes.CDLL(None, use_errno=True)\n"
                            "params = ctypes.create_string_buffer(120)\n"
                            "rc = libc.syscall(425, 8, params)\n"
                            "print(rc, ctypes.get_errno())\n"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["-1", str(1)], f"io_uring_setup not refused: {check.stdout}"
    return [str(out)]


def pytest_report_header() -> str:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return f"pyparallel suites: {sys.version.split()[0]}, GIL {'enabled' if gil else 'disabled'}"


