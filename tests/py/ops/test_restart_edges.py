"""Edges of the SIGHUP restart's bookkeeping (pyparallel._restart), driven
directly: a ready pipe past descriptor 1024, and a stop while the new process
is still starting."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pyparallel import _restart


@pytest.fixture
def restart_state() -> Iterator[None]:
    yield
    _restart._child = None
    _restart._handing_over = False


def _sleeper() -> int:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]).pid


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # reaped
    return False


def test_ready_pipe_past_descriptor_1024() -> None:
    # A busy server's pipe gets a descriptor past select()'s limit.
    r, w = os.pipe()
    high = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 1500)
    os.close(r)
    pid = _sleeper()
    try:
        os.write(w, b"READY=1\n")
        assert _restart._await_ready(pid, high, 10.0) is None
    finally:
        os.close(high)
        os.close(w)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_stop_while_new_process_starts_stops_it(restart_state: None) -> None:
    pid = _sleeper()
    _restart._child = pid
    assert _restart.stopping() is False  # this process stops as usual
    assert _restart._child is None
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), "the new process outlived the stop"


def test_stop_during_hand_over_leaves_it_to_the_drain(restart_state: None) -> None:
    _restart._handing_over = True
    assert _restart.stopping() is True
