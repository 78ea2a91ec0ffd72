"""An app that awaits does not hold up the other requests of its worker: the
handler that waits for it hands the worker (and its loop) to a spare thread
at once, not after the engine's delay for waits that look like the
interpreter's own short lock waits (20 ms). An app cancelled at
--timeout-response ends cleanly, and so does the server after it.

Latency is bounded generously: the 20 ms the engine would otherwise wait is a
floor of every stalled request, so a median under it is no race."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from asgi_helpers import read_reply, served_asgi

from helpers import BACKENDS
from http_helpers import Conn, request

STALL_MS = 20.0  # what a waiting handler cost its worker's other requests


def timed_gets(port: int, path: str, n: int) -> list[float]:
    """n sequential requests on one connection: each one's latency, ms."""
    out = []
    with Conn(port) as c:
        for _ in range(n):
            t0 = time.monotonic()
            c.send(request("GET", path))
            r = read_reply(c)
            out.append((time.monotonic() - t0) * 1000)
            assert r.status == 200 and r.body == b"brief", r.body
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_await_does_not_delay_the_workers_other_requests(backend: str) -> None:
    with served_asgi(backend, "asgi_wait:app", "--workers", "1") as proc:
        timed_gets(proc.port, "/brief", 5)  # spare threads started, code warm
        held: list[tuple[int, float]] = []

        def hold() -> None:
            t0 = time.monotonic()
            with Conn(proc.port, timeout=30) as c:
                c.send(request("GET", "/hold"))
                r = read_reply(c)
                held.append((r.status, time.monotonic() - t0))

        holder = threading.Thread(target=hold)
        holder.start()
        proc.wait_line("HOLDING", 20)
        got = timed_gets(proc.port, "/brief", 50)  # each awaits too
        holder.join(30)
        assert held and held[0][0] == 200 and held[0][1] >= 0.9, held
        got.sort()
        # every one came while /hold awaited its second, none waited for it
        assert got[int(len(got) * 0.99) - 1] < 500, got
        # and each of their own awaits went on at once
        assert statistics.median(got) < STALL_MS * 0.75, got


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_app_cancelled_at_the_response_timeout_ends_cleanly(backend: str) -> None:
    with served_asgi(backend, "asgi_wait:app", "--workers", "1",
                     "--timeout-response", "1") as proc:
        with Conn(proc.port, timeout=30) as c:
            c.send(request("GET", "/never"))
            proc.wait_line("NEVER", 20)
            assert read_reply(c).status == 500
        assert timed_gets(proc.port, "/brief", 3)  # the server goes on; then stops
    assert proc.finished is not None
    assert proc.matching("NEVER CANCELLED")
    err = proc.finished.stderr
    assert "GET /never sent no response in 1 s: 500" in err
    assert "Task was destroyed but it is pending" not in err, err
    assert "was never retrieved" not in err, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_stopped_while_an_app_awaits(backend: str) -> None:
    """The server is stopped while an app awaits: the stop waits for the
    request (as uvicorn's) until --timeout-response cancels the app, then the
    server exits cleanly, nothing left pending."""
    with served_asgi(backend, "asgi_wait:app", "--workers", "1",
                     "--timeout-response", "2") as proc:
        with Conn(proc.port, timeout=30) as c:
            c.send(request("GET", "/never"))
            proc.wait_line("NEVER", 20)
            assert timed_gets(proc.port, "/brief", 3)
            proc.finish(timeout=20)
    assert proc.finished is not None
    assert proc.matching("NEVER CANCELLED")
    assert "Task was destroyed but it is pending" not in proc.finished.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_task_left_by_an_app_is_cancelled_at_the_stop(backend: str) -> None:
    """A task an app started and left awaiting is cancelled when the server
    stops, as asyncio.run does, and runs its cleanup; none is destroyed
    pending."""
    with served_asgi(backend, "asgi_wait:app", "--workers", "1") as proc:
        with Conn(proc.port) as c:
            c.send(request("GET", "/background"))
            assert read_reply(c).body == b"started"
        proc.finish(timeout=20)
    assert proc.finished is not None
    assert proc.matching("BACKGROUND CANCELLED")
    assert "Task was destroyed but it is pending" not in proc.finished.stderr
