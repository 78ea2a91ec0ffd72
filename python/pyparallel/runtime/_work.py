"""Work on the workers: :func:`submit_work` and :func:`timer`."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import _core, _lifecycle
from ._main import _on_main_thread, _wait_on_main

__all__ = ["Work", "Timer", "submit_work", "timer"]

Timer = _core.Timer


class Work(concurrent.futures.Future):  # type: ignore[type-arg]
    """The handle of :func:`submit_work`: a :class:`concurrent.futures.Future`
    that is done once the function *and* its callback or errback have run.

    ``result()`` / ``exception()`` called on a worker before the work has
    started run it right there (the worker would otherwise wait for itself);
    on the main thread they run main-thread calls while they wait. ``cancel()``
    succeeds until the work starts.
    """

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...],
                 kwds: dict[str, Any], callback: Callable[[Any], Any] | None,
                 errback: Callable[[BaseException], Any] | None) -> None:
        super().__init__()
        self._func = func
        self._args = args
        self._kwds = kwds
        self._callback = callback
        self._errback = errback
        self._claim_lock = threading.Lock()
        self._claimed = False
        self._engine: _core.Engine | None = None
        self.worker: int | None = None  #: the worker it was given to

    def _claim(self) -> bool:
        with self._claim_lock:
            if self._claimed:
                return False
            self._claimed = True
        return self.set_running_or_notify_cancel()

    def cancel(self) -> bool:
        with self._claim_lock:
            if self._claimed:
                return self.cancelled()
            self._claimed = True
        return super().cancel()

    def _execute(self, report: bool) -> None:
        """Run func, then its callback or errback; report: an exception nobody
        handled propagates (to the worker, which hands it to run())."""
        func, args, kwds = self._func, self._args, self._kwds
        self._func = self._args = self._kwds = None  # type: ignore[assignment]
        try:
            result = func(*args, **kwds)
        except BaseException as exc:
            try:
                if self._errback is not None:
                    self._errback(exc)
                elif report:
                    raise
            finally:
                self.set_exception(exc)
        else:
            try:
                if self._callback is not None:
                    self._callback(result)
            finally:
                self.set_result(result)

    def _run(self) -> None:
        """On the worker, from the posted message."""
        if self._claim():
            self._execute(report=True)

    def _wait_here(self, timeout: float | None) -> None:
        if self.done():
            return
        if _core.worker_index() is not None:
            if self._claim():
                self._execute(report=False)  # the caller sees the outcome
            return
        if _on_main_thread() and self._engine is not None and not self._engine.finished:
            deadline = None if timeout is None else time.monotonic() + timeout
            _wait_on_main(self._engine, self.done, deadline)

    def result(self, timeout: float | None = None) -> Any:
        """func's result (re-raising its exception), waiting for it if needed."""
        self._wait_here(timeout)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """func's exception, or None, waiting for it if needed."""
        self._wait_here(timeout)
        return super().exception(timeout)


def submit_work(func: Callable[..., Any], args: tuple[Any, ...] = (),
                kwds: dict[str, Any] | None = None,
                callback: Callable[[Any], Any] | None = None,
                errback: Callable[[BaseException], Any] | None = None) -> Work:
    """Run ``func(*args, **kwds)`` on a worker thread (the least loaded one).

    Then, on the same worker, ``callback(result)``, or ``errback(exception)``
    if func raised. An exception with no errback to take it, and any exception
    raised by the callback or errback, is re-raised by :func:`pyparallel.run`
    in the main thread. Returns a :class:`Work` (a Future) holding func's
    outcome.

    Called from a worker, the work goes to that worker's engine. Otherwise it
    goes to the package's engine, which starts now if it is not running;
    ``run()`` then serves until no work (and no timer) is left, or longer if
    servers are registered.
    """
    _core._stm_refuse("submit_work()")  # a retried transaction would submit it again
    work = Work(func, tuple(args), dict(kwds or {}), callback, errback)
    eng = _lifecycle._engine_for_work()
    work._engine = eng
    work.worker = _core.submit(eng, work._run)
    return work


def timer(delay: float, func: Callable[[], Any], period: float | None = None) -> _core.Timer:
    """Call ``func()`` on a worker after ``delay`` seconds, then every
    ``period`` seconds if a period is given, until ``cancel()``.

    Returns a :class:`Timer` (``cancel()``, ``active``, ``fired``, ``worker``).
    Made on a worker, the timer runs on that worker; otherwise on the least
    loaded worker of the package's engine, which starts now if needed. Calls
    never come early (millisecond resolution); a periodic timer keeps a fixed
    rate and, after a stall, makes one catch-up call. An exception from func
    is re-raised by ``run()`` in the main thread; a periodic timer keeps
    running after one. Timers still armed when the engine shuts down are
    dropped.
    """
    _core._stm_refuse("timer()")
    eng = _lifecycle._engine_for_work()
    return _core.Timer(eng, float(delay), func, period)
