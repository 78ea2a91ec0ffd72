"""PyParallel's submit_timer, submit_wait, submit_io, thread and active_count,
which need px.run() and so a process of their own.

    python names_runtime.py CASE

Each case prints ``RESULT {json}`` (what the test checks), then ``STATS
{json}`` for the engine that served it. The process must exit 0.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from _common import say, totals

import pyparallel as px

MAIN = threading.get_ident()


def result(**fields: Any) -> None:
    say("RESULT " + json.dumps(fields))


def run_collecting() -> list[str]:
    raised = []
    for _ in range(10):
        try:
            px.run(workers=2)
            break
        except Exception as exc:
            raised.append(f"{type(exc).__name__}: {exc}")
    return raised


def timers() -> None:
    """submit_timer: never early, callback on a worker, cancel before it runs;
    run() waits for it."""
    seen = px.list()
    t0 = time.monotonic()

    def func(tag: str) -> str:
        seen.append({"tag": tag, "at": time.monotonic() - t0, "worker": px._core.worker_index()})
        return tag

    ok = px.submit_timer(0.3, func, ("late",), callback=lambda r: seen.append({"cb": r}))
    cancelled = px.submit_timer(0.3, func, ("cancelled",))
    was_cancelled = cancelled.cancel()
    import datetime
    td = px.submit_timer(datetime.timedelta(milliseconds=100), func, ("td",))
    pending = px.active_count()  # the two timers left keep run() serving
    raised = run_collecting()
    result(seen=list(seen), ok=ok.result(0), td=td.result(0), cancelled=was_cancelled,
           is_cancelled=cancelled.cancelled(), raised=raised, pending=pending)


def waits() -> None:
    """submit_wait: runs once the descriptor is readable (an eventfd set from a
    timer, a pipe written by a thread), a TimeoutError after the timeout, a
    cancelled wait never runs; active_count() counts pending ones."""
    seen = px.list()
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    r, w = os.pipe()
    never_r, never_w = os.pipe()
    ev = px.submit_wait(efd, lambda: os.eventfd_read(efd),
                        callback=lambda v: seen.append({"event": v,
                                                        "worker": px._core.worker_index()}))
    pipe = px.submit_wait(r, callback=lambda fd: seen.append({"pipe": os.read(fd, 10).decode()}))
    late = px.submit_wait(never_r, timeout=0.2,
                          errback=lambda exc: seen.append({"timeout": type(exc).__name__}))
    dropped = px.submit_wait(never_r, lambda: seen.append({"dropped": "ran"}))
    pending = px.active_count()
    was_cancelled = dropped.cancel()
    px.timer(0.2, lambda: os.eventfd_write(efd, 7))
    threading.Timer(0.1, lambda: os.write(w, b"hi")).start()
    raised = run_collecting()
    result(seen=sorted(json.dumps(x, sort_keys=True) for x in seen), event=ev.result(0),
           pipe=pipe.result(0) == r, late=type(late.exception(0)).__name__,
           cancelled=was_cancelled, pending=pending, raised=raised)
    for fd in (efd, r, w, never_r, never_w):
        os.close(fd)


def blocking_io() -> None:
    """submit_io: the call runs off the workers (a thread of the pool) while
    the callback runs on a worker; an exception reaches the errback."""
    seen = px.list()

    def blocking(tag: str) -> dict[str, Any]:
        time.sleep(0.1)
        return {"tag": tag, "on_worker": px._core.worker_index() is not None,
                "main": threading.get_ident() == MAIN}

    def boom() -> None:
        raise ValueError("bad read")

    works = [px.submit_io(blocking, (str(i),),
                          callback=lambda r: seen.append({**r, "cb_worker":
                                                          px._core.worker_index() is not None}))
             for i in range(4)]
    failed = px.submit_io(boom, errback=lambda e: seen.append({"errback": str(e)}))
    pending = px.active_count()  # the four sleeping calls at least
    raised = run_collecting()
    result(seen=sorted(json.dumps(x, sort_keys=True) for x in seen),
           results=[w.result(0)["tag"] for w in works], failed=str(failed.exception(0)),
           raised=raised, pending=pending)


def threads() -> None:
    """thread: a function on a thread of its own, again every interval; data is
    its last result; an exception goes to exception_handler; stop() ends it."""
    calls: list[int] = []
    handled: list[str] = []

    def tick() -> int:
        calls.append(threading.get_ident())
        if len(calls) == 2:
            raise RuntimeError("second call")
        return len(calls)

    t = px.thread(tick, interval=0.05,
                  exception_handler=lambda th, syscall, info: handled.append(
                      f"{th is t} {syscall} {info[0].__name__}: {info[1]}"))
    started_before = t.started
    t.start()
    deadline = time.monotonic() + 20
    while t.count < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    stopped = t.stop(10)
    count = t.count
    time.sleep(0.2)
    once = px.thread(lambda a, b=0: a + b, (2,), {"b": 3}).start()
    once.stop(10)
    result(count_ok=count >= 4, still=t.count == count, stopped=stopped, data_ok=t.data >= 3,
           handled=handled, started_before=started_before, started=t.started,
           own_thread=len(set(calls)) == 1 and calls[0] != MAIN, once=once.data,
           once_count=once.count, running=t.running)


def thread_unhandled() -> None:
    """Without exception_handler, run() re-raises a thread's exception."""
    srv = px.server("127.0.0.1", 0)  # serving, so that run() lasts until shutdown

    class Nothing:
        pass

    px.register(srv, Nothing)

    def fail() -> None:
        raise KeyError("from the thread")

    serving = threading.Event()
    px.submit_work(serving.set)  # runs once the engine does

    def later() -> None:
        serving.wait(20)
        px.thread(fail).start().stop(20)  # its exception is posted to run() by now
        px.shutdown()

    threading.Thread(target=later).start()
    raised = run_collecting()
    result(raised=raised)


def engine_finished() -> None:
    """Waits and timed work still pending when their engine shuts down fail
    with EngineError (the descriptor is no longer watched), and the next
    run() is not held by them."""
    srv = px.server("127.0.0.1", 0)

    class Nothing:
        pass

    px.register(srv, Nothing)
    r, w = os.pipe()
    ran: list[str] = []
    wait = px.submit_wait(r, lambda: ran.append("wait"))
    timed = px.submit_timer(60, lambda: ran.append("timer"))
    threading.Timer(0.3, px.shutdown).start()
    first = run_collecting()
    failed = {"wait": type(wait.exception(10)).__name__,
              "timed": type(timed.exception(10)).__name__}
    os.write(w, b"x")  # too late: nothing of the old engine may run now
    later = px.submit_work(lambda: 5)
    t0 = time.monotonic()
    second = run_collecting()
    took = time.monotonic() - t0
    time.sleep(0.2)
    result(first=first, second=second, failed=failed, later=later.result(0), took=took, ran=ran)
    os.close(r)
    os.close(w)


def io_at_exit() -> None:
    """A blocking call that never returns neither holds a run() that was shut
    down nor keeps the process from exiting."""
    srv = px.server("127.0.0.1", 0)

    class Nothing:
        pass

    px.register(srv, Nothing)
    stuck = px.submit_io(time.sleep, (3600,))
    threading.Timer(0.3, px.shutdown).start()
    raised = run_collecting()
    result(raised=raised, stuck_done=stuck.done())


CASES = {f.__name__: f for f in (timers, waits, blocking_io, threads, thread_unhandled,
                                 engine_finished, io_at_exit)}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
    eng = px._lifecycle._reported_engine()
    if eng is not None:
        say("STATS " + json.dumps(totals(eng)))
