"""A request whose app awaits: the app's first step, run on the handler's
thread, is on a loop that names that thread (asyncio's debug mode checks it)."""

from __future__ import annotations

import pytest
from asgi_helpers import read_reply, served_asgi

from helpers import BACKENDS
from http_helpers import Conn, request


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
def test_asyncio_debug_mode(backend: str) -> None:
    # call_soon's thread check: the first step runs on the handler's thread,
    # after a spare ran the loop
    with served_asgi(backend, "asgi_wait:app", "--workers", "1",
                     env={"PYTHONASYNCIODEBUG": "1"}) as proc:
        assert all(owner for _, owner in answers(proc.port, 20))
