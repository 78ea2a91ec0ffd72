"""PyParallel's other submit_* calls: :func:`submit_timer` (work after a
delay), :func:`submit_wait` (work once a descriptor is readable) and
:func:`submit_io` (a blocking call kept off the workers).

Each returns a :class:`Work` (a Future) and, as :func:`submit_work`, runs the
callback or errback on a worker; an exception nobody takes is re-raised by
``run()``. ``run()`` serves until they are all done.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import os
import queue
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import _core, _lifecycle
from ._work import Work

__all__ = ["submit_timer", "submit_wait", "submit_io"]


def _seconds(value: float | datetime.timedelta, what: str) -> float:
    s = value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
    if s < 0:
        raise ValueError(f"{what} must not be negative")
    return s


class _LaterWork(Work):
    """Work that something else starts (a timer, a wait, the I/O pool): never
    run early, not even by a result() called on a worker (that waits, its
    worker handed off meanwhile)."""

    def _wait_here(self, timeout: float | None) -> None:
        if _core.worker_index() is None:
            super()._wait_here(timeout)


_pending_lock = threading.Lock()
_pending: set[_LaterWork] = set()  # timed work and blocking calls not yet started


def _hold(eng: _core.Engine) -> None:
    """Count pending work among eng's tasks: run() serves meanwhile."""
    _core.tasks_hold(eng, 1)


def _unhold(eng: _core.Engine | None) -> None:
    """Undo _hold once the work was handed to a worker (which counts it) or
    failed."""
    if eng is None:
        return
    try:
        _core.tasks_hold(eng, -1)
    except _core.EngineError:
        pass  # the engine is gone: nothing counts its tasks any more


class _TimedWork(_LaterWork):
    _timer: _core.Timer | None = None

    def cancel(self) -> bool:
        done = super().cancel()
        if done:
            with _pending_lock:
                _pending.discard(self)
            if self._timer is not None:
                self._timer.cancel()
        return done

    def _run(self) -> None:
        with _pending_lock:
            _pending.discard(self)
        super()._run()


def submit_timer(duetime: float | datetime.timedelta, func: Callable[..., Any],
                 args: tuple[Any, ...] = (), kwds: dict[str, Any] | None = None,
                 callback: Callable[[Any], Any] | None = None,
                 errback: Callable[[BaseException], Any] | None = None) -> Work:
    """Run ``func(*args, **kwds)`` on a worker ``duetime`` seconds (a number or
    a timedelta) from now, then its callback or errback, as
    :func:`submit_work` does. ``cancel()`` on the returned :class:`Work`
    succeeds until it has started. (A function called again and again is
    :func:`pyparallel.timer`.)"""
    _core._stm_refuse("submit_timer()")
    delay = _seconds(duetime, "duetime")
    work = _TimedWork(func, tuple(args), dict(kwds or {}), callback, errback)
    eng = _lifecycle._engine_for_work()
    work._engine = eng
    with _pending_lock:
        _pending.add(work)
    try:
        work._timer = _core.Timer(eng, delay, work._run)
    except BaseException:
        with _pending_lock:
            _pending.discard(work)
        raise
    work.worker = work._timer.worker
    return work


# ---- waits -------------------------------------------------------------------------

class _Wait:
    """One pending wait. Once done its work is dropped (work None): the
    deadline heap may keep the wait until its deadline, never the Work and
    what its closures hold."""

    __slots__ = ("fd", "work", "deadline", "done")

    def __init__(self, fd: int, work: Work | None, deadline: float | None) -> None:
        self.fd = fd
        self.work = work
        self.deadline = deadline
        self.done = False


class _WaitWork(_LaterWork):
    """A pending wait: cancel() also stops waiting for the descriptor."""

    _wait: _Wait | None = None

    def cancel(self) -> bool:
        done = super().cancel()
        if done and self._wait is not None:
            _the_waiter().remove(self._wait)
        return done


class _Waiter:
    """One thread for every pending wait: epoll on their descriptors, a heap of
    their deadlines. A wait that ends hands its Work to a worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._by_fd: dict[int, list[_Wait]] = {}
        self._deadlines: list[tuple[float, int, _Wait]] = []
        self._seq = itertools.count()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, name="pyparallel-waits", daemon=True)
        self._thread.start()

    def add(self, w: _Wait) -> None:
        with self._lock:
            waits = self._by_fd.setdefault(w.fd, [])
            if not waits:
                try:
                    self._sel.register(w.fd, selectors.EVENT_READ)
                except (ValueError, OSError):
                    del self._by_fd[w.fd]
                    raise
            waits.append(w)
            if w.deadline is not None:
                heapq.heappush(self._deadlines, (w.deadline, next(self._seq), w))
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # full: the loop is woken already, and w is registered

    def remove(self, w: _Wait) -> None:
        with self._lock:
            if w.done:
                return
            w.done = True
            work, w.work = w.work, None
            self._forget(w)
        _unhold(work._engine if work is not None else None)

    def engine_finished(self, eng: _core.Engine) -> None:
        """Fail the waits of an engine that has finished (EngineError); their
        descriptors are no longer watched."""
        with self._lock:
            gone = [w for waits in self._by_fd.values() for w in waits
                    if w.work is not None and w.work._engine is eng and not w.done]
            works = [w.work for w in gone]
            for w in gone:
                w.done = True
                w.work = None
                self._forget(w)
        for work in works:
            if work is not None and work._claim():
                work.set_exception(_core.EngineError("the engine has finished"))

    def _forget(self, w: _Wait) -> None:
        """Under the lock: w no longer waits for its descriptor. The heap is
        rebuilt when most of it is done waits (cancelled ones would stay
        until their deadlines)."""
        rest = [o for o in self._by_fd.get(w.fd, []) if o is not w]
        if rest:
            self._by_fd[w.fd] = rest
        else:
            self._drop_fd(w.fd)
        if len(self._deadlines) > 64:
            live = [d for d in self._deadlines if not d[2].done]
            if 2 * len(live) < len(self._deadlines):
                heapq.heapify(live)
                self._deadlines = live

    def _finish(self, w: _Wait, exc: BaseException | None) -> None:
        """Outside the lock: hand the work to a worker (or fail it)."""
        work, w.work = w.work, None
        if work is None:
            return
        try:
            if exc is not None:
                work._func = _raiser(exc)
                work._args, work._kwds = (), {}
            if work._engine is None or work._engine.finished:
                raise _core.EngineError("the engine has finished")
            work.worker = _core.submit(work._engine, work._run)
        except BaseException as failure:
            if work._claim():
                work.set_exception(failure)
        finally:
            _unhold(work._engine)

    def _drop_fd(self, fd: int) -> list[_Wait]:
        waits = self._by_fd.pop(fd, [])
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass
        return waits

    def _loop(self) -> None:
        while True:
            with self._lock:
                timeout = None
                if self._deadlines:
                    timeout = max(0.0, self._deadlines[0][0] - time.monotonic())
            events = self._sel.select(timeout)
            ready: list[tuple[_Wait, BaseException | None]] = []
            with self._lock:
                for key, _ in events:
                    if key.fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                        continue
                    for w in self._drop_fd(key.fd):
                        w.done = True
                        ready.append((w, None))
                now = time.monotonic()
                while self._deadlines and self._deadlines[0][0] <= now:
                    w = heapq.heappop(self._deadlines)[2]
                    if w.done:
                        continue
                    w.done = True
                    self._forget(w)
                    ready.append((w, TimeoutError(f"descriptor {w.fd} not readable in time")))
            for w, exc in ready:
                self._finish(w, exc)


def _raiser(exc: BaseException) -> Callable[[], Any]:
    def fail() -> Any:
        raise exc
    return fail


_waiter: _Waiter | None = None
_waiter_lock = threading.Lock()


def _the_waiter() -> _Waiter:
    global _waiter
    with _waiter_lock:
        if _waiter is None:
            _waiter = _Waiter()
        return _waiter


def _fd_of(obj: Any) -> int:
    if isinstance(obj, int):
        return obj
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError("submit_wait() waits for a file descriptor (an int or an object with "
                        f"fileno()), not {type(obj).__name__}")
    return int(fileno())


def submit_wait(obj: Any, func: Callable[..., Any] | None = None, args: tuple[Any, ...] = (),
                kwds: dict[str, Any] | None = None,
                callback: Callable[[Any], Any] | None = None,
                errback: Callable[[BaseException], Any] | None = None,
                timeout: float | datetime.timedelta | None = None) -> Work:
    """Once ``obj`` (a file descriptor, or an object with ``fileno()``) is
    readable, run ``func(*args, **kwds)`` on a worker, then its callback or
    errback, as :func:`submit_work` does; with no func the result is obj.
    Linux's waitable things are descriptors: an ``os.eventfd`` for an event,
    ``os.pidfd_open`` for a process, a pipe, a socket, a timerfd.

    After ``timeout`` seconds (None: no limit) without it, the outcome is a
    ``TimeoutError`` instead (the errback gets it). Nothing blocks a worker
    while it waits: one thread of the package waits for every pending
    descriptor (epoll)."""
    _core._stm_refuse("submit_wait()")
    fd = _fd_of(obj)
    limit = None if timeout is None else _seconds(timeout, "timeout")
    if func is None:
        func, args, kwds = (lambda: obj), (), None
    work = _WaitWork(func, tuple(args), dict(kwds or {}), callback, errback)
    eng = work._engine = _lifecycle._engine_for_work()
    deadline = None if limit is None else time.monotonic() + limit
    work._wait = _Wait(fd, work, deadline)
    _hold(eng)
    try:
        _the_waiter().add(work._wait)
    except BaseException:
        _unhold(eng)
        raise
    return work


# ---- blocking calls ------------------------------------------------------------------

class _IoPool:
    """Threads for blocking calls, started as needed up to a limit. Daemon
    threads: a call that never returns must not keep the process from
    exiting (a ThreadPoolExecutor's threads are joined at exit)."""

    def __init__(self, limit: int) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._limit = limit
        self._threads = 0
        self._idle = 0  # threads waiting for a call, none promised to them yet
        self._backlog = 0  # calls queued for the next thread that is done

    def submit(self, call: Callable[[], None]) -> None:
        start = False
        with self._lock:
            if self._idle:
                self._idle -= 1  # that one takes it
            elif self._threads < self._limit:
                self._threads += 1
                start = True
            else:
                self._backlog += 1
        self._calls.put(call)
        if start:
            threading.Thread(target=self._serve, daemon=True, name="pyparallel-io").start()

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            call()  # blocking() catches everything
            with self._lock:
                if self._backlog:
                    self._backlog -= 1  # takes a queued call next
                else:
                    self._idle += 1


_io_pool: _IoPool | None = None


def _pool() -> _IoPool:
    global _io_pool
    with _waiter_lock:
        if _io_pool is None:
            _io_pool = _IoPool(max(4, 2 * (os.cpu_count() or 1)))
        return _io_pool


def _value(v: Any) -> Callable[[], Any]:
    def give() -> Any:
        return v
    return give


def submit_io(func: Callable[..., Any], args: tuple[Any, ...] = (),
              kwds: dict[str, Any] | None = None,
              callback: Callable[[Any], Any] | None = None,
              errback: Callable[[BaseException], Any] | None = None) -> Work:
    """Run a blocking call ``func(*args, **kwds)`` (reading a file, a database
    driver, a library without non-blocking calls) on a thread of the
    package's I/O pool, never on a worker; then ``callback(result)`` or
    ``errback(exception)`` on a worker, as :func:`submit_work` does. Returns a
    :class:`Work`; ``cancel()`` succeeds until the call has started."""
    _core._stm_refuse("submit_io()")
    work = _LaterWork(func, tuple(args), dict(kwds or {}), callback, errback)
    eng = work._engine = _lifecycle._engine_for_work()
    call = (func, tuple(args), dict(kwds or {}))

    def blocking() -> None:
        try:
            with _pending_lock:
                _pending.discard(work)
            if not work._claim():
                return  # cancelled, or its engine finished first
            try:
                outcome = _value(call[0](*call[1], **call[2]))
            except BaseException as exc:
                outcome = _raiser(exc)
            work._func, work._args, work._kwds = outcome, (), {}
            try:
                eng = work._engine
                if eng is None or eng.finished:
                    raise _core.EngineError("the engine has finished")
                work.worker = _core.submit(eng, lambda: work._execute(report=True))
            except BaseException as failure:
                work.set_exception(failure)
        finally:
            _unhold(eng)

    _hold(eng)
    with _pending_lock:
        _pending.add(work)
    try:
        _pool().submit(blocking)
    except BaseException:
        with _pending_lock:
            _pending.discard(work)
        _unhold(eng)
        raise
    return work


def _engine_finished(eng: _core.Engine) -> None:
    """What waits off the workers for an engine that has finished fails with
    EngineError: its waits (their descriptors no longer watched), its timed
    work, its blocking calls not yet started. Nothing of it runs later."""
    if _waiter is not None:
        _waiter.engine_finished(eng)
    with _pending_lock:
        gone = [w for w in _pending if w._engine is eng]
        _pending.difference_update(gone)
    for work in gone:
        if work._claim():
            work.set_exception(_core.EngineError("the engine has finished"))
        timer = getattr(work, "_timer", None)
        if timer is not None:
            timer.cancel()


_lifecycle._on_engine_finished(_engine_finished)
