"""PyParallel's remaining runtime names: submit_timer, submit_wait, submit_io
and thread on the engine (both backends, in a process of their own:
servers/names_runtime.py), and in this process try_read_lock/try_write_lock,
critical_section, synchronized, cpu_count, gmtime and debugbreak."""

from __future__ import annotations

import email.utils
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import pyparallel as px
from helpers import SERVERS, child_env


def scenario(case: str, backend: str) -> dict[str, Any]:
    """The RESULT of one case of names_runtime.py (which must exit 0, clean)."""
    res = subprocess.run([sys.executable, str(SERVERS / "names_runtime.py"), case],
                         env=child_env(backend), capture_output=True, text=True, timeout=60,
                         cwd=str(SERVERS))
    assert res.returncode == 0, f"{case}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    results = [json.loads(l[7:]) for l in res.stdout.splitlines() if l.startswith("RESULT ")]
    stats = [json.loads(l[6:]) for l in res.stdout.splitlines() if l.startswith("STATS ")]
    assert len(results) == 1, res.stdout + res.stderr
    if stats:
        assert stats[-1]["backend"] == {"uring": "io_uring", "epoll": "epoll"}[backend]
    result: dict[str, Any] = results[0]
    return result


# ---- on the engine -------------------------------------------------------------------

def test_submit_timer_runs_on_a_worker_never_early(backend: str) -> None:
    r = scenario("timers", backend)
    by_tag = {s["tag"]: s for s in r["seen"] if "tag" in s}
    assert set(by_tag) == {"late", "td"}, r  # the cancelled one never ran
    assert by_tag["late"]["at"] >= 0.3 and by_tag["td"]["at"] >= 0.1, r
    assert all(s["worker"] is not None for s in by_tag.values()), r
    assert {"cb": "late"} in r["seen"], r
    assert (r["ok"], r["td"], r["cancelled"], r["is_cancelled"]) == ("late", "td", True, True)
    # The two timers left (the cancelled one until its worker has dropped it).
    assert r["raised"] == [] and r["pending"] in (2, 3), r


def test_submit_wait_runs_once_the_descriptor_is_readable(backend: str) -> None:
    r = scenario("waits", backend)
    seen = [json.loads(s) for s in r["seen"]]
    assert {"pipe": "hi"} in seen and {"timeout": "TimeoutError"} in seen, r
    [event] = [s for s in seen if "event" in s]
    assert event["event"] == 7 and event["worker"] is not None, r
    assert not any("dropped" in s for s in seen), r  # cancelled: never ran
    assert (r["event"], r["pipe"], r["late"], r["cancelled"]) == (7, True, "TimeoutError", True)
    assert r["pending"] == 4, r  # active_count() counted the four waits
    assert r["raised"] == [], r


def test_submit_io_runs_the_call_off_the_workers(backend: str) -> None:
    r = scenario("blocking_io", backend)
    seen = [json.loads(s) for s in r["seen"]]
    calls = [s for s in seen if "tag" in s]
    assert sorted(s["tag"] for s in calls) == ["0", "1", "2", "3"], r
    assert all(not s["on_worker"] and not s["main"] and s["cb_worker"] for s in calls), r
    assert {"errback": "bad read"} in seen and r["failed"] == "bad read", r
    assert r["results"] == ["0", "1", "2", "3"] and r["raised"] == [], r
    assert r["pending"] >= 4, r  # active_count() counted the calls not yet done


def test_thread_repeats_keeps_data_and_stops(backend: str) -> None:
    r = scenario("threads", backend)
    assert r["count_ok"] and r["still"] and r["stopped"] and r["data_ok"], r
    assert r["handled"] == ["True None RuntimeError: second call"], r
    assert (r["started_before"], r["started"], r["running"]) == (False, True, False), r
    assert r["own_thread"] and r["once"] == 5 and r["once_count"] == 1, r


def test_thread_exception_without_handler_is_raised_by_run(backend: str) -> None:
    r = scenario("thread_unhandled", backend)
    assert r["raised"] == ["KeyError: 'from the thread'"], r


def test_pending_work_fails_when_its_engine_finishes(backend: str) -> None:
    r = scenario("engine_finished", backend)
    assert r["first"] == [] and r["second"] == [], r
    assert r["failed"] == {"wait": "EngineError", "timed": "EngineError"}, r
    assert r["later"] == 5 and r["took"] < 10 and r["ran"] == [], r


def test_a_stuck_blocking_call_does_not_keep_the_process(backend: str) -> None:
    t0 = time.monotonic()
    r = scenario("io_at_exit", backend)
    assert r == {"raised": [], "stuck_done": False}, r
    assert time.monotonic() - t0 < 30  # the call sleeps for an hour


# ---- in this process ------------------------------------------------------------------

def test_thread_stopped_at_once_still_makes_its_first_call() -> None:
    # stop() right after start() used to win the race now and then (before
    # the new thread's first look at it), and the only call was never made.
    for i in range(300):
        calls: list[int] = []
        t = px.thread(calls.append, (i,)).start()
        assert t.stop(10), i
        assert calls == [i] and t.count == 1 and t.data is None, (i, calls)



def test_a_wait_is_added_when_the_wake_up_pipe_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    # The wake-up byte only says "look again": a full pipe has said it
    # already. It used to raise after the wait was registered, which
    # submit_wait then uncounted a second time.
    from pyparallel.runtime import _submit
    waiter = _submit._Waiter()
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if fd == waiter._wake_w:
            raise BlockingIOError(11, "full")
        return real_write(fd, data)

    r, w = os.pipe()
    try:
        work = _submit._WaitWork(lambda: None, (), {}, None, None)
        wait = _submit._Wait(r, work, None)
        monkeypatch.setattr(os, "write", full)
        waiter.add(wait)
        monkeypatch.undo()
        assert waiter._by_fd[r] == [wait]
        waiter.remove(wait)
        assert r not in waiter._by_fd
    finally:
        os.close(r)
        os.close(w)


def test_a_cancelled_wait_keeps_nothing_until_its_deadline() -> None:
    import gc
    import weakref

    from pyparallel.runtime import _submit

    class Held:
        pass

    waiter = _submit._Waiter()
    r, w = os.pipe()
    try:
        held = Held()
        ref = weakref.ref(held)
        work = _submit._WaitWork(lambda h: None, (held,), {}, None, None)
        wait = _submit._Wait(r, work, time.monotonic() + 3600)
        waiter.add(wait)
        waiter.remove(wait)  # as cancel() does
        del held, work
        gc.collect()
        assert ref() is None  # the heap keeps the wait till its deadline, not its work
    finally:
        os.close(r)
        os.close(w)


def test_try_locks_take_without_waiting() -> None:
    shared = px.protect({"n": 0})
    assert px.try_read_lock(shared)
    assert px.try_read_lock(shared)  # readers share it (and it is re-entrant)
    other: list[bool] = []
    t = threading.Thread(target=lambda: other.append(px.try_write_lock(shared)))
    t.start()
    t.join()
    assert other == [False]  # a writer would wait for the readers
    px.read_unlock(shared)
    px.read_unlock(shared)
    assert px.try_write_lock(shared)
    t = threading.Thread(target=lambda: other.append(px.try_read_lock(shared)))
    t.start()
    t.join()
    assert other == [False, False]
    px.write_unlock(shared)
    with pytest.raises(RuntimeError):
        px.write_unlock(shared)
    with pytest.raises(ValueError):
        px.try_read_lock({})  # not protected
    d = px.dict()  # the protected containers' own lock
    assert px.try_write_lock(d)
    px.write_unlock(d)


def test_synchronized_serialises_calls() -> None:
    inside = 0
    most = 0

    @px.synchronized
    def critical(depth: int) -> int:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        time.sleep(0.001)
        if depth:
            critical(depth - 1)  # re-entrant for the thread inside
        inside -= 1
        return depth

    threads = [threading.Thread(target=lambda: [critical(1) for _ in range(20)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 2  # the call and its own recursive call, never two threads
    assert isinstance(critical.critical_section, px.CriticalSection)  # type: ignore[attr-defined]
    assert px.critical_section(critical).__wrapped__ is critical  # type: ignore[attr-defined]


def test_critical_section_excludes_other_threads() -> None:
    cs = px.critical_section()
    cs.enter()
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(cs.try_enter()))
    t.start()
    t.join()
    assert got == [False]
    assert cs.try_enter()  # re-entrant
    cs.leave()
    cs.leave()
    with cs:
        pass
    t = threading.Thread(target=lambda: (got.append(cs.enter(timeout=5)), cs.leave()))
    t.start()
    t.join()
    assert got == [False, True]
    with pytest.raises(RuntimeError):
        cs.leave()


def test_cpu_count_is_the_usable_cpus() -> None:
    assert px.cpu_count() == len(os.sched_getaffinity(0))


def test_gmtime_is_the_http_date_of_now() -> None:
    text = px.gmtime()
    assert text.endswith(" GMT") and len(text) == 29, text
    when = email.utils.parsedate_to_datetime(text).timestamp()
    assert abs(when - time.time()) < 5
    for _ in range(5):  # made once per second: the same string within one
        second = int(time.time())
        a, b = px.gmtime(), px.gmtime()
        if int(time.time()) == second:
            assert a is b
            break


def test_debugbreak_without_a_debugger_does_nothing() -> None:
    assert px.debugbreak() is False


def test_debugbreak_signals_the_thread_when_sigtrap_is_handled() -> None:
    code = ("import signal, pyparallel as px\n"
            "hit = []\n"
            "signal.signal(signal.SIGTRAP, lambda s, f: hit.append(s))\n"
            "print(px.debugbreak(), hit == [signal.SIGTRAP])\n")
    res = subprocess.run([sys.executable, "-c", code], env=child_env(None), capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True"], res.stdout
