"""Scenarios of the runtime API (work, timers, map, main-thread calls) that need
px.run() and so a process of their own.

    python runtime_checks.py CASE [--workers N]

Each case prints ``RESULT {json}`` lines (what the test checks) and, for the
engine that served it, ``STATS {json}`` at the end. The process must exit 0.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from _common import int_arg, say, totals

import pyparallel as px

MAIN = threading.get_ident()
WORKERS = int_arg("--workers", 2)


def result(**fields: Any) -> None:
    say("RESULT " + json.dumps(fields))


class Boom(Exception):
    pass


def run_collecting(limit: int = 10) -> list[str]:
    """px.run() until it returns, collecting what it re-raised on the way."""
    raised = []
    for _ in range(limit):
        try:
            px.run(workers=WORKERS)
            break
        except Exception as exc:
            raised.append(f"{type(exc).__name__}: {exc}")
    return raised


# ---- work --------------------------------------------------------------------

def work_callbacks() -> None:
    """Callbacks and errbacks run on the worker that ran the function."""
    records = px.list()

    def func(x: int) -> tuple[int | None, int]:
        if x % 5 == 4:
            raise Boom(f"item {x}")
        return px._core.worker_index(), x * 2

    def make(x: int) -> px.Work:
        def callback(res: tuple[int | None, int]) -> None:
            records.append({"x": x, "kind": "ok", "func_worker": res[0],
                            "cb_worker": px._core.worker_index(), "value": res[1]})

        def errback(exc: BaseException) -> None:
            records.append({"x": x, "kind": "err", "cb_worker": px._core.worker_index(),
                            "error": f"{type(exc).__name__}: {exc}"})
        return px.submit_work(func, (x,), callback=callback, errback=errback)

    works = [make(x) for x in range(40)]
    raised = run_collecting()
    outcomes = []
    for w in works:
        exc = w.exception(0)
        outcomes.append(f"{type(exc).__name__}: {exc}" if exc else w.result(0)[1])
    total = px.stats()["total"]
    result(records=sorted(records, key=lambda r: r["x"]), outcomes=outcomes, raised=raised,
           workers=sorted({w.worker for w in works}), done=all(w.done() for w in works),
           callbacks=total["callbacks"], timed=total["latency"]["callback"]["count"])


def work_unhandled() -> None:
    """An exception without errback, and one from a callback, reach run()."""
    def fails() -> None:
        raise Boom("no errback")

    def bad_callback(value: int) -> None:
        raise Boom(f"callback got {value}")

    w1 = px.submit_work(fails)
    w2 = px.submit_work(lambda: 7, callback=bad_callback)
    raised = run_collecting()
    result(raised=sorted(raised), w1=repr(w1.exception(0)), w2=w2.result(0))


def work_nested() -> None:
    """Work started by work keeps run() going until all of it is done."""
    done = px.list()

    def step(n: int) -> None:
        time.sleep(0.01)
        done.append(n)
        if n < 30:
            px.submit_work(step, (n + 1,))

    px.submit_work(step, (0,))
    start = time.monotonic()
    raised = run_collecting()
    result(done=list(done), raised=raised, elapsed=time.monotonic() - start)


def work_result_inline() -> None:
    """On a one-worker engine, a callback waiting for work it submitted runs it
    itself instead of waiting for itself forever."""
    out = px.list()

    def outer() -> None:
        inner = px.submit_work(lambda: (px._core.worker_index(), "inner"))
        out.append(inner.result(10))
        out.append(inner.worker)

    px.submit_work(outer)
    raised = run_collecting()
    result(out=list(out), raised=raised)


def work_cancel() -> None:
    """A Work cancelled before it starts never runs; its callback neither."""
    ran = px.list()
    gate = threading.Event()

    def blocker() -> None:
        gate.wait(10)

    px.submit_work(blocker)  # one worker: the next one queues behind it
    w = px.submit_work(lambda: ran.append("func"), callback=lambda r: ran.append("cb"))
    cancelled = w.cancel()
    gate.set()
    raised = run_collecting()
    result(cancelled=cancelled, is_cancelled=w.cancelled(), ran=list(ran), raised=raised)


# ---- timers ------------------------------------------------------------------

def timer_once() -> None:
    fired = px.list()
    start = time.monotonic()
    t = px.timer(0.15, lambda: fired.append((time.monotonic() - start, px._core.worker_index(),
                                             threading.get_ident() != MAIN)))
    raised = run_collecting()
    result(fired=list(fired), raised=raised, active=t.active, count=t.fired,
           elapsed=time.monotonic() - start)


def timer_periodic() -> None:
    """Every period until it cancels itself from inside; another one is
    cancelled from the main thread."""
    ticks = px.list()
    other = px.list()
    start = time.monotonic()
    holder: dict[str, Any] = {}

    def tick() -> None:
        ticks.append(time.monotonic() - start)
        if len(ticks) == 10:
            holder["t"].cancel()

    holder["t"] = px.timer(0.02, tick, period=0.02)
    t2 = px.timer(0.01, lambda: other.append(1), period=0.01)

    def stop_other() -> None:
        t2.cancel()
        holder["other_at_cancel"] = len(other)

    px.timer(0.3, lambda: px.call_from_main_thread(stop_other)())
    raised = run_collecting()
    result(ticks=list(ticks), raised=raised, t_active=holder["t"].active,
           t_fired=holder["t"].fired, t2_cancelled=t2.cancelled, other=len(other),
           other_at_cancel=holder.get("other_at_cancel"), elapsed=time.monotonic() - start)


def timer_cancel() -> None:
    """Cancelled before it fires: never fires, and run() does not wait for it."""
    fired = px.list()
    t = px.timer(2.0, lambda: fired.append(1))
    t.cancel()
    t.cancel()  # harmless
    start = time.monotonic()
    raised = run_collecting()
    result(fired=list(fired), raised=raised, active=t.active, cancelled=t.cancelled,
           elapsed=time.monotonic() - start)


def timer_exception() -> None:
    """A periodic timer that raises: each exception reaches run(), and the
    timer keeps its schedule until cancelled."""
    count = px.list()

    def tick() -> None:
        count.append(1)
        raise Boom(f"tick {len(count)}")

    t = px.timer(0.01, tick, period=0.05)
    raised = []
    while True:
        try:
            px.run(workers=WORKERS)
            break
        except Boom as exc:
            raised.append(str(exc))
            if len(raised) == 3:
                t.cancel()
    result(raised=raised, fired=t.fired, count=len(count))


# ---- main-thread calls -------------------------------------------------------

def main_order() -> None:
    """Fire-and-forget calls from one worker run on the main thread in order;
    waiting calls return results and re-raise exceptions in the worker."""
    seen: list[tuple[int, bool]] = []
    out = px.list()

    def record(i: int) -> None:
        seen.append((i, threading.get_ident() == MAIN))

    def fail(msg: str) -> None:
        raise Boom(msg)

    @px.call_from_main_thread_and_wait
    def where(tag: str) -> tuple[str, bool]:
        return tag, threading.get_ident() == MAIN

    def worker_side() -> None:
        for i in range(200):
            px.call_from_main_thread(record, i)
        out.append(px.call_from_main_thread_and_wait(len, seen))
        try:
            px.call_from_main_thread_and_wait(fail, "from main")
        except Boom as exc:
            out.append(f"caught {exc}")
        out.append(where("decorated"))

    px.submit_work(worker_side)
    raised = run_collecting()
    result(order=[i for i, _ in seen] == list(range(200)), on_main=all(m for _, m in seen),
           out=list(out), raised=raised)


def main_fire_raises() -> None:
    """A fire-and-forget call that raises: run() re-raises it."""
    def fail() -> None:
        raise Boom("main call failed")

    px.submit_work(lambda: px.call_from_main_thread(fail)())
    raised = run_collecting()
    result(raised=raised)


def main_exit_waiting() -> None:
    """The main thread leaves while a worker waits for it: at exit the worker
    gets RuntimeError, and the process ends instead of hanging."""
    started = threading.Event()

    def worker_side() -> None:
        started.set()
        try:
            px.call_from_main_thread_and_wait(print, "never")
            say("WAITER returned")
        except RuntimeError as exc:
            say(f"WAITER RuntimeError: {exc}")

    px.submit_work(worker_side)
    started.wait(10)
    time.sleep(0.2)  # the worker is now waiting; the main thread never runs it
    result(started=started.is_set())
    # The script ends here, without run(): the exit hooks must release the worker.


def main_no_engine() -> None:
    """From a plain thread with no engine: RuntimeError; on the main thread:
    inline."""
    out = []

    def thread() -> None:
        try:
            px.call_from_main_thread_and_wait(len, "abc")
        except RuntimeError as exc:
            out.append(f"RuntimeError: {exc}")

    th = threading.Thread(target=thread)
    th.start()
    th.join()
    out.append(px.call_from_main_thread_and_wait(threading.get_ident)() == MAIN)
    out.append(px.call_from_main_thread_and_wait(len, "abcd"))
    result(out=out)


# ---- map -------------------------------------------------------------------

def map_modes() -> None:
    """map() from a worker (1 and N workers, nested), and from the main thread
    while the engine runs."""
    out: dict[str, Any] = {}

    def square(x: int) -> int:
        return x * x

    def in_worker() -> None:
        res = px.map(square, range(5000), chunksize=7)
        out["worker"] = res == [x * x for x in range(5000)]

        def nested(x: int) -> int:
            return sum(px.map(square, range(x)))
        out["nested"] = px.map(nested, range(40)) == [sum(y * y for y in range(x))
                                                      for x in range(40)]
        try:
            px.map(lambda x: 10 // (x - 333), range(1000), chunksize=10)
        except ZeroDivisionError:
            out["error"] = "ZeroDivisionError"

    px.submit_work(in_worker)
    px.run_once(0)  # the engine runs from here on
    where = px.map(lambda x: (x, px._core.worker_index()), range(20000), chunksize=100)
    out["main_order"] = [x for x, _ in where] == list(range(20000))
    out["main_workers"] = sorted({w for _, w in where if w is not None})
    out["main_on_main"] = any(w is None for _, w in where)
    raised = run_collecting()
    out["raised"] = raised
    result(**out)


CASES = {f.__name__: f for f in (
    work_callbacks, work_unhandled, work_nested, work_result_inline, work_cancel,
    timer_once, timer_periodic, timer_cancel, timer_exception,
    main_order, main_fire_raises, main_exit_waiting, main_no_engine, map_modes)}


if __name__ == "__main__":
    if sys.argv[1] != "main_no_engine":
        px.engine(WORKERS)  # before the case submits anything, which starts it
    CASES[sys.argv[1]]()
    eng = px._lifecycle._last_engine
    if eng is not None:
        say("STATS " + json.dumps(totals(eng)))
