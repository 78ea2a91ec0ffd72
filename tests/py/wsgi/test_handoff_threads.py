"""``--handoff-threads N`` caps the spare threads that take over workers whose
views block: the memory of a burst of blocked views stays bounded (a thread
costs the stack and interpreter state it touched), and the views past the cap
wait for a thread instead of failing."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest
from test_flask_handoff import _get
from wsgi_helpers import served

pytest.importorskip("flask", reason="Flask comes from tools/requirements-test.txt")

CAP = 4
SLEEPERS = 40


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"Threads:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]


async def _burst(port: int, n: int) -> list[bytes]:
    return await asyncio.gather(*(_get(port, "/sleep") for _ in range(n)))


@pytest.mark.parametrize("backend", ["uring", "epoll"])
@pytest.mark.timeout(120)
def test_handoff_threads_cap(backend: str) -> None:
    with served(backend, "flask_app:app", "--workers", "2",
                "--handoff-threads", str(CAP)) as proc:
        assert asyncio.run(_burst(proc.port, 1))[0].endswith(b"slept")
        before = _threads(proc.pid)
        peak, done = before, threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _threads(proc.pid))
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            replies = asyncio.run(_burst(proc.port, SLEEPERS))
        finally:
            done.set()
            watcher.join()
    assert all(r.startswith(b"HTTP/1.1 200") and r.endswith(b"slept") for r in replies)
    # The workers' own threads were there before; at most CAP more, whatever
    # the number of sleeping views.
    assert peak - before <= CAP, (before, peak)


def test_handoff_threads_bounds() -> None:
    from pyparallel import _core

    for bad in (-1, 65537):
        with pytest.raises(ValueError, match="handoff_threads"):
            _core.Engine(workers=1, handoff_threads=bad)
