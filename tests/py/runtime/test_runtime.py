"""The runtime API on the engine (both backends, both interpreters): work with
callbacks and errbacks, timers, map, and calls handed to the main thread —
1,000 concurrent HTTP requests each waiting for a call on the main thread,
which runs them one at a time. Scenarios that need px.run() run in a process
of their own (servers/runtime_checks.py, servers/runtime_http.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import pyparallel as px
from helpers import SERVERS, child_env

CONCURRENT = 1000


def scenario(case: str, backend: str, *args: str, timeout: float = 60) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str]:
    """Run one case of runtime_checks.py; its RESULT lines, STATS and stdout."""
    res = subprocess.run([sys.executable, str(SERVERS / "runtime_checks.py"), case, *args],
                         env=child_env(backend), capture_output=True, text=True, timeout=timeout,
                         cwd=str(SERVERS))
    assert res.returncode == 0, f"{case}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    results = [json.loads(l[7:]) for l in res.stdout.splitlines() if l.startswith("RESULT ")]
    stats = [json.loads(l[6:]) for l in res.stdout.splitlines() if l.startswith("STATS ")]
    assert results, f"{case}: no RESULT line\n{res.stdout}\n{res.stderr}"
    if stats:
        assert stats[-1]["backend"] == {"uring": "io_uring", "epoll": "epoll"}[backend]
    return results, (stats[-1] if stats else None), res.stdout


# ---- work --------------------------------------------------------------------

def test_work_callbacks_and_errbacks_run_on_the_same_worker(backend: str) -> None:
    [r], stats, _ = scenario("work_callbacks", backend)
    records = r["records"]
    assert [rec["x"] for rec in records] == list(range(40))
    for rec in records:
        x = rec["x"]
        if x % 5 == 4:
            assert rec["kind"] == "err" and rec["error"] == f"Boom: item {x}"
            assert rec["cb_worker"] in (0, 1)
        else:
            assert rec["kind"] == "ok" and rec["value"] == 2 * x
            assert rec["cb_worker"] == rec["func_worker"] and rec["func_worker"] in (0, 1)
    assert r["outcomes"] == [f"Boom: item {x}" if x % 5 == 4 else 2 * x for x in range(40)]
    assert r["raised"] == []  # every exception had an errback
    assert r["done"] is True
    assert r["workers"] == [0, 1]  # spread over both workers
    # Each work item is one application callback, counted and timed as such.
    assert r["callbacks"] == r["timed"] == 40
    assert stats is not None and stats["callbacks"] == 40


def test_work_exceptions_nobody_handles_are_raised_by_run(backend: str) -> None:
    [r], _, _ = scenario("work_unhandled", backend)
    assert r["raised"] == ["Boom: callback got 7", "Boom: no errback"]
    assert r["w1"] == "Boom('no errback')"
    assert r["w2"] == 7  # the function's result, though its callback raised


def test_run_lasts_until_work_started_by_work_is_done(backend: str) -> None:
    [r], _, _ = scenario("work_nested", backend)
    assert r["done"] == list(range(31))
    assert r["raised"] == []


def test_waiting_for_work_on_its_own_worker_runs_it_there(backend: str) -> None:
    [r], _, _ = scenario("work_result_inline", backend, "--workers", "1")
    assert r["out"] == [[0, "inner"], 0]
    assert r["raised"] == []


def test_cancelled_work_never_runs(backend: str) -> None:
    [r], _, _ = scenario("work_cancel", backend, "--workers", "1")
    assert r == {"cancelled": True, "is_cancelled": True, "ran": [], "raised": []}


# ---- timers ------------------------------------------------------------------

def test_timer_fires_once_on_a_worker_never_early(backend: str) -> None:
    [r], _, _ = scenario("timer_once", backend)
    [(elapsed, worker, off_main)] = r["fired"]
    assert 0.15 <= elapsed < 5.0
    assert worker in (0, 1) and off_main is True
    assert r["count"] == 1 and r["active"] is False and r["raised"] == []


def test_periodic_timers_repeat_until_cancelled(backend: str) -> None:
    [r], _, _ = scenario("timer_periodic", backend)
    ticks = r["ticks"]
    assert len(ticks) == 10 and r["t_fired"] == 10 and r["t_active"] is False
    assert ticks[0] >= 0.02
    for a, b in zip(ticks, ticks[1:]):
        assert b > a
    assert ticks[-1] >= 0.2  # ten periods of 20 ms, none early
    # The other timer ran until the main thread cancelled it, and not after.
    assert r["t2_cancelled"] is True
    assert r["other"] >= 5 and r["other"] == r["other_at_cancel"]
    assert r["raised"] == []


def test_cancelled_timer_never_fires_and_does_not_hold_run(backend: str) -> None:
    [r], _, _ = scenario("timer_cancel", backend)
    assert r["fired"] == [] and r["active"] is False and r["cancelled"] is True
    assert r["elapsed"] < 1.5  # run() did not wait for the 2 s timer
    assert r["raised"] == []


def test_timer_exceptions_reach_run_and_the_timer_goes_on(backend: str) -> None:
    [r], _, _ = scenario("timer_exception", backend)
    assert r["raised"] == ["tick 1", "tick 2", "tick 3"]
    assert r["fired"] == r["count"] >= 3


# ---- main-thread calls -------------------------------------------------------

def test_main_thread_calls_run_in_order_return_and_raise(backend: str) -> None:
    [r], _, _ = scenario("main_order", backend)
    assert r["order"] is True and r["on_main"] is True
    assert r["out"] == [200, "caught from main", ["decorated", True]]
    assert r["raised"] == []


def test_fire_and_forget_exception_is_raised_by_run(backend: str) -> None:
    [r], _, _ = scenario("main_fire_raises", backend)
    assert r["raised"] == ["Boom: main call failed"]


def test_waiting_worker_released_when_main_thread_exits(backend: str) -> None:
    start = time.monotonic()
    [r], _, out = scenario("main_exit_waiting", backend, timeout=30)
    assert r["started"] is True
    assert "WAITER RuntimeError: the engine shut down before the main thread ran this call" in out
    assert "WAITER returned" not in out
    assert time.monotonic() - start < 20


def test_main_thread_calls_without_engine() -> None:
    [r], stats, _ = scenario("main_no_engine", "epoll")
    runtime_error, inline_ident, inline_len = r["out"]
    assert runtime_error.startswith("RuntimeError: no engine is running")
    assert inline_ident is True and inline_len == 4
    assert stats is None  # no engine was ever made


async def _get(port: int, path: str) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:200]
    return json.loads(body)


async def _concurrently(port: int, paths: list[str]) -> list[dict[str, Any]]:
    return await asyncio.wait_for(asyncio.gather(*(_get(port, p) for p in paths)), 60)


@pytest.mark.timeout(150)
def test_thousand_concurrent_requests_wait_for_the_main_thread(spawn, backend: str) -> None:
    srv = spawn("runtime_http.py", backend=backend)
    replies = asyncio.run(_concurrently(srv.port, [f"/main/{i}" for i in range(CONCURRENT)]))
    assert [r["n"] for r in replies] == list(range(CONCURRENT))  # each got its own result
    assert all(r["main"] is True for r in replies)
    assert sorted(r["seq"] for r in replies) == list(range(1, CONCURRENT + 1))
    state = asyncio.run(_concurrently(srv.port, ["/state"]))[0]
    assert state["calls"] == CONCURRENT
    assert state["off_main"] == 0
    assert state["max_running"] == 1  # one at a time
    error = asyncio.run(_concurrently(srv.port, ["/main_error"]))[0]
    assert error == {"type": "ValueError", "message": "raised on the main thread", "worker": True}
    srv.finish().assert_clean()


def test_fire_and_forget_calls_all_run_on_the_main_thread(spawn, backend: str) -> None:
    srv = spawn("runtime_http.py", backend=backend)
    asyncio.run(_concurrently(srv.port, [f"/fire/{i}" for i in range(200)]))
    deadline = time.monotonic() + 10
    while True:
        state = asyncio.run(_concurrently(srv.port, ["/state"]))[0]
        if len(state["fired"]) == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted(state["fired"]) == list(range(200))
    assert state["off_main"] == 0 and state["max_running"] == 1
    srv.finish().assert_clean()


# ---- map ---------------------------------------------------------------------

def test_map_from_workers_and_from_main_while_serving(backend: str) -> None:
    [r], _, _ = scenario("map_modes", backend)
    assert r["worker"] is True and r["nested"] is True and r["error"] == "ZeroDivisionError"
    assert r["main_order"] is True
    assert r["main_workers"] and set(r["main_workers"]) <= {0, 1}
    assert r["main_on_main"] is False  # the main thread waits, the workers compute
    assert r["raised"] == []


def test_map_inside_http_handlers(spawn, backend: str) -> None:
    srv = spawn("runtime_http.py", backend=backend)
    replies = asyncio.run(_concurrently(srv.port, [f"/map/{n}" for n in (1, 10, 1000, 5000)] * 5))
    assert all(r["ok"] for r in replies)
    assert [r["sum"] for r in replies[:4]] == [sum(x * x for x in range(n))
                                              for n in (1, 10, 1000, 5000)]
    srv.finish().assert_clean()


def _threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def _threads_left(before: set[str], timeout: float = 2.0) -> set[str]:
    """Threads that exist now and did not before, once none is left or after
    timeout: a joined thread stays listed in /proc/self/task until the kernel
    reaps it, a moment after pthread_join returned (and a thread of an earlier
    test may end meanwhile, which is no concern here)."""
    deadline = time.monotonic() + timeout
    left = _threads() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.005)
        left = _threads() - before
    return left


@pytest.fixture
def px_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """map() without an engine makes a temporary one on this backend."""
    monkeypatch.setenv("PX_BACKEND", backend)
    assert px._lifecycle._running_engine() is None
    return backend


def test_map_without_engine_orders_results_and_leaves_no_thread(px_backend: str) -> None:
    before = _threads()
    assert px.map(abs, [-3, 2, -1]) == [3, 2, 1]
    assert px.map(str, []) == []
    for chunksize in (None, 1, 3, 64, 10_000, 1_000_000):
        assert px.map(lambda x: x * 3, range(1000), chunksize=chunksize) == \
            [x * 3 for x in range(1000)]
    for workers in (1, 2, 3):
        assert px.map(lambda x: -x, range(100), workers=workers) == [-x for x in range(100)]
    assert px.map(lambda s: s.upper(), (c for c in "generator")) == list("GENERATOR")
    assert _threads_left(before) == set()


def test_map_big_iterable(px_backend: str) -> None:
    data = list(range(1_000_000))
    res = px.map(lambda x: x + 1, data)
    assert len(res) == 1_000_000 and res[0] == 1 and res[-1] == 1_000_000
    assert res == [x + 1 for x in data]


def test_map_reraises_the_first_failing_item(px_backend: str) -> None:
    calls = []
    lock = threading.Lock()

    def f(x: int) -> int:
        with lock:
            calls.append(x)
        if x in (537, 538, 900):
            raise KeyError(x)
        return x

    for chunksize in (1, 10, 100):
        calls.clear()
        with pytest.raises(KeyError) as info:
            px.map(f, range(1000), chunksize=chunksize)
        assert info.value.args == (537,)
    with pytest.raises(ValueError):
        px.map(f, range(3), chunksize=0)
    with pytest.raises(ValueError):
        px.map(f, range(3), workers=0)
    before = _threads()
    with pytest.raises(ZeroDivisionError):
        px.map(lambda x: 1 // x, range(-5, 5))
    assert _threads_left(before) == set()


def test_map_runs_chunks_in_parallel_on_the_workers(px_backend: str) -> None:
    """Two calls are inside func at once: seen on both interpreters, since
    func waits (detached) for the other one."""
    barrier = threading.Barrier(2, timeout=10)
    idents = set()

    def meet(x: int) -> int:
        idents.add(threading.get_ident())
        barrier.wait()
        return x

    assert px.map(meet, range(2), chunksize=1, workers=2) == [0, 1]
    assert len(idents) == 2 and threading.get_ident() not in idents


def test_map_interrupted_on_the_main_thread_stops_early(px_backend: str) -> None:
    """A signal handler raising in the waiting main thread ends map(): chunks
    not started are dropped, the temporary engine is joined."""
    import signal

    class Stop(Exception):
        pass

    def on_alarm(signum, frame):
        raise Stop()

    ran = []
    before = _threads()
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        start = time.monotonic()
        with pytest.raises(Stop):
            px.map(lambda x: (time.sleep(0.05), ran.append(x)), range(200), chunksize=1, workers=2)
        elapsed = time.monotonic() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert elapsed < 2.0  # 200 x 50 ms on two workers would take 5 s
    assert 0 < len(ran) < 100
    assert _threads_left(before) == set()


def test_map_functions_may_wait_for_the_main_thread(px_backend: str) -> None:
    """Called on the main thread, map() runs the main-thread calls of its
    functions while it waits; called off it, such a call fails at once
    instead of waiting forever."""
    main = threading.get_ident()

    def on_main(x: int) -> tuple[int, bool]:
        return px.call_from_main_thread_and_wait(lambda y: (y, threading.get_ident() == main), x)

    assert px.map(on_main, range(50), chunksize=3) == [(x, True) for x in range(50)]

    outcome = []

    def off_main() -> None:
        try:
            px.map(on_main, range(4))
        except RuntimeError as exc:
            outcome.append(str(exc))

    th = threading.Thread(target=off_main)
    th.start()
    th.join(30)
    assert not th.is_alive()
    assert outcome and "off the main thread" in outcome[0]


def test_runtime_calls_are_refused_inside_transactions() -> None:
    """A transaction may run several times: work, timers, map and main-thread
    calls made inside one would be repeated, so they are refused (before any
    engine is made)."""
    calls = {
        "submit_work()": lambda: px.submit_work(print),
        "timer()": lambda: px.timer(1, print),
        "map()": lambda: px.map(abs, [1]),
        "call_from_main_thread()": lambda: px.call_from_main_thread(print, "x"),
        "call_from_main_thread_and_wait()": lambda: px.call_from_main_thread_and_wait(abs, 1),
    }
    for what, call in calls.items():
        def body(call=call):
            call()
        with pytest.raises(px.IOInTransactionError, match=re.escape(what)):
            px.atomic(body)
    assert px._lifecycle._engine is None
