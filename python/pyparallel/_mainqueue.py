"""Calls handed to an engine's main thread, and who waits for them.

A worker that calls ``call_from_main_thread_and_wait`` blocks until the main
thread has run its call. If the engine finishes first, nobody ever will: the
waiting callers must fail instead of hanging. This module keeps, per engine,
the calls someone waits for; the lifecycle closes an engine's queue when the
engine finishes (and every queue at interpreter exit), the runtime posts to it.
It depends on neither of them, so both can use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from . import _core

__all__: list[str] = []


class _Queue:
    """One engine's main-thread calls that someone waits for."""

    __slots__ = ("lock", "closed", "waiting", "unpumped")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False
        self.waiting: set[_MainCall] = set()
        # Nobody runs this engine's main-thread calls (a temporary engine of a
        # map() called off the main thread): posting fails at once.
        self.unpumped = False


# id(engine) -> (engine, queue): the engine is kept so that a recycled id is
# never mistaken for it.
_queues: dict[int, tuple[_core.Engine, _Queue]] = {}
_queues_lock = threading.Lock()


def _queue_of(eng: _core.Engine) -> _Queue:
    with _queues_lock:
        entry = _queues.get(id(eng))
        if entry is None or entry[0] is not eng:
            entry = (eng, _Queue())
            _queues[id(eng)] = entry
        return entry[1]


class _MainCall:
    """One call for the main thread; Engine.wait() calls it there."""

    __slots__ = ("func", "args", "kwargs", "queue", "done", "result", "error")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], queue: _Queue, wait: bool) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.queue = queue
        self.done: threading.Lock | None = None
        if wait:
            self.done = threading.Lock()
            self.done.acquire()  # released once the call has run (or failed)
        self.result: Any = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        if self.done is None:  # fire and forget: what it raises, run() re-raises
            self.func(*self.args, **self.kwargs)
            return
        with self.queue.lock:
            if self not in self.queue.waiting:
                return  # failed already: the engine was closing
            self.queue.waiting.discard(self)
        try:
            self.result = self.func(*self.args, **self.kwargs)
        except BaseException as exc:  # the caller gets it, whatever it is
            self.error = exc
        finally:
            self.done.release()

    def fail(self, error: BaseException) -> None:
        self.error = error
        assert self.done is not None
        self.done.release()


def _post(eng: _core.Engine, func: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any], wait: bool) -> _MainCall:
    """Hand func(*args, **kwargs) to eng's main thread; with wait, the call's
    ``done`` lock is released once it has run or failed. RuntimeError if
    nobody would run it."""
    queue = _queue_of(eng)
    if queue.unpumped:
        raise RuntimeError(
            "map() was called off the main thread, so the main thread runs no calls for "
            "its workers: its function cannot hand calls to the main thread")
    call = _MainCall(func, args, kwargs, queue, wait)
    with queue.lock:
        if queue.closed:
            raise RuntimeError("the engine has shut down: the main thread runs no more calls")
        if wait:
            queue.waiting.add(call)
        try:
            _core.post_main(eng, call)
        except BaseException:
            queue.waiting.discard(call)
            raise
    return call


def _mark_unpumped(eng: _core.Engine) -> None:
    """Nobody will run eng's main-thread calls: refuse them when posted."""
    _queue_of(eng).unpumped = True


def _close(eng: _core.Engine, forget: bool) -> None:
    """Refuse further calls for eng's main thread and fail those still waiting
    (their callers get RuntimeError). forget: the engine is joined, drop the
    entry (posting to it fails in the binding from now on)."""
    with _queues_lock:
        entry = _queues.get(id(eng))
        if entry is None or entry[0] is not eng:
            return
        if forget:
            del _queues[id(eng)]
    queue = entry[1]
    with queue.lock:
        queue.closed = True
        waiting, queue.waiting = queue.waiting, set()
    for call in waiting:
        call.fail(RuntimeError("the engine shut down before the main thread ran this call"))


def _close_all() -> None:
    """At interpreter exit, before the workers are joined: they must not be
    waiting for a main thread that has left."""
    with _queues_lock:
        engines = [eng for eng, _ in _queues.values()]
    for eng in engines:
        _close(eng, forget=False)


def _engine_finished(eng: _core.Engine) -> None:
    """After an engine's workers were joined: run the main-thread calls they
    posted in their last moments, fail the callers still waiting (threads
    that are not workers), re-raise the first exception of those calls."""
    error: BaseException | None = None
    for _ in range(1000):  # each wait() stops at an exception; a bound, never a hang
        try:
            eng.wait(0)
            break
        except BaseException as exc:
            error = error or exc
    _close(eng, forget=True)
    if error is not None:
        raise error
