"""A request whose app awaits: the handler's wait for the app hands its worker
to a spare thread at once (handoff_ms), not after the engine's long delay for
waits that look like the runtime's own lock waits; and the app's first step,
run on the handler's thread, is on a loop that names that thread (asyncio's
debug mode checks it)."""

from __future__ import annotations

import statistics

import pytest
from asgi_helpers import read_reply, served_asgi

from helpers import BACKENDS
from http_helpers import Conn, request

# The engine hands waits on a lock off after 20 ms; a hand-off at once takes
# the 2 ms of handoff_ms plus scheduling. The median of many keeps a loaded
# machine's outliers out.
BOUND_MS = 12.0


def answers(port: int, n: int) -> list[tuple[float, bool]]:
    """n sequential requests: (ms the app's await took, the loop named this thread)."""
    out = []
    with Conn(port) as c:
        for _ in range(n):
            c.send(request("GET", "/"))
            r = read_reply(c)
            assert r.status == 200, r.body
            gap, owner = r.body.split()
            out.append((float(gap), owner == b"1"))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_await_hands_the_worker_off_at_once(backend: str) -> None:
    with served_asgi(backend, "asgi_wait:app", "--workers", "1", "--handoff-ms", "2") as proc:
        got = [gap for gap, _ in answers(proc.port, 50)]
        assert statistics.median(got) < BOUND_MS, sorted(got)


@pytest.mark.parametrize("backend", BACKENDS)
def test_asyncio_debug_mode(backend: str) -> None:
    # call_soon's thread check: the first step runs on the handler's thread,
    # after a spare ran the loop
    with served_asgi(backend, "asgi_wait:app", "--workers", "1",
                     env={"PYTHONASYNCIODEBUG": "1"}) as proc:
        assert all(owner for _, owner in answers(proc.port, 20))
