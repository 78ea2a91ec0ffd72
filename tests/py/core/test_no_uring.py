"""Where io_uring is refused (seccomp, as container runtimes do), the engine
falls back to epoll on its own; asked for io_uring explicitly, it fails with a
clear error. The refusal comes from tools/no-uring.c (the ``no_uring`` fixture
builds it and checks that io_uring_setup fails with EPERM under it). A kernel
whose io_uring lacks a feature the engine needs is played with PX_URING_MASK."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

import scenarios
from helpers import CRASH_MARKERS, child_env, example

EPERM = [1, "Operation not permitted"]


def test_echo_example_falls_back_to_epoll(spawn, no_uring: list[str]) -> None:
    srv = spawn(*example("echo", "--workers", "2"), backend=None, launcher=no_uring)
    scenarios.echo_many(srv.port, clients=50, size=256 * 1024)
    stats = srv.finish().assert_clean()
    assert stats["backend"] == "epoll"
    assert stats["uring_error"] == EPERM
    assert stats["bytes_out"] == 50 * 256 * 1024


def test_exceptions_with_handler_fall_back(spawn, no_uring: list[str]) -> None:
    srv = spawn("raiser.py", "--handler", backend=None, launcher=no_uring)
    scenarios.exceptions_with_handler(srv)
    scenarios.handler_that_raises(srv)
    stats = srv.finish().assert_clean()
    assert (stats["backend"], stats["uring_error"]) == ("epoll", EPERM)


def test_exceptions_without_handler_fall_back(spawn, no_uring: list[str]) -> None:
    srv = spawn("raiser.py", "--no-handler", backend=None, launcher=no_uring)
    scenarios.exceptions_without_handler(srv)
    stats = srv.finish().assert_clean()
    assert (stats["backend"], stats["uring_error"]) == ("epoll", EPERM)


def test_forced_uring_when_refused_fails_cleanly(no_uring: list[str]) -> None:
    """PX_BACKEND=uring where io_uring is refused: an error that names the cause,
    not a crash."""
    res = subprocess.run(no_uring + [sys.executable, "-m", "pyparallel.examples.echo",
                                     "--port", "0", "--workers", "1"],
                         env=child_env("uring"), capture_output=True, text=True, timeout=30)
    assert res.returncode > 0, f"killed by signal {-res.returncode}:\n{res.stderr[-2000:]}"
    for marker in CRASH_MARKERS:
        assert marker not in res.stderr, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert "io_uring" in last and "Operation not permitted" in last, res.stderr[-2000:]
    assert "epoll" in last, f"the error does not say how to go on: {last}"
    assert "listening" not in res.stdout, "the service announced itself before failing"
    assert "Traceback" not in res.stderr, res.stderr[-2000:]


def test_missing_uring_feature_falls_back(spawn) -> None:
    """io_uring without multishot receive: epoll serves, and one line says why."""
    srv = spawn(*example("echo", "--workers", "1"), backend=None,
                env={"PX_URING_MASK": "recv_multishot"})
    scenarios.echo_many(srv.port, clients=5, size=64 * 1024)
    fin = srv.finish()
    stats = fin.assert_clean()
    assert stats["backend"] == "epoll"
    if stats["uring_error"][0] != errno.EOPNOTSUPP:
        pytest.skip(f"io_uring itself is unavailable here: {stats['uring_error']}")
    assert stats["uring_error"] == [errno.EOPNOTSUPP, "Operation not supported"]
    lines = [line for line in fin.stderr.splitlines() if "io_uring" in line]
    assert lines == ["pyparallel: io_uring lacks multishot receive (Linux 6.0): serving with epoll"], \
        fin.stderr[-2000:]
