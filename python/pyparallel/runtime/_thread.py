"""PyParallel's ``thread``: a function on a thread of its own, once or every
``interval``, its last result kept in ``data``.

The original ran it on a Windows thread with optional multimedia scheduling
("thread_characteristics", MMCSS); Linux has no such class, so that argument
is accepted and ignored. Use it for what must not share a worker: a loop
that polls a device, a clock that refreshes a value every second.
"""

from __future__ import annotations

import datetime
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import _core, _lifecycle

__all__ = ["thread"]


class thread:  # noqa: N801 - PyParallel's name
    """``thread(func, args=(), kwds=None, interval=0, exception_handler=None)``.

    ``start()`` runs ``func(*args, **kwds)`` on a new thread; with an
    ``interval`` (seconds, or a timedelta) it runs again that long after each
    call began (a fixed rate; a call that overruns is followed at once) until
    ``stop()``. ``data`` is the last result, ``count`` the calls made. The
    first call is made once started, even when ``stop()`` came first.

    An exception goes to ``exception_handler(thread, None, exc_info)`` when
    given (the calls go on), else it is re-raised by ``run()`` in the main
    thread when an engine runs (else printed) and the calls go on too.
    """

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...] = (),
                 kwds: dict[str, Any] | None = None,
                 interval: float | datetime.timedelta = 0,
                 exception_handler: Callable[[thread, str | None, Any], Any] | None = None,
                 thread_characteristics: str | None = None) -> None:
        if not callable(func):
            raise TypeError("func must be callable")
        s = interval.total_seconds() if isinstance(interval, datetime.timedelta) else interval
        if s < 0:
            raise ValueError("interval must not be negative")
        self.func = func
        self.args = tuple(args)
        self.kwds = dict(kwds or {})
        self.interval = float(s)
        self.exception_handler = exception_handler
        self.thread_characteristics = thread_characteristics  # Windows MMCSS: ignored
        self.data: Any = None
        self.count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def start(self) -> thread:
        """Start the thread (once; later calls do nothing). Returns self."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, daemon=True,
                                                name=f"pyparallel-thread-{id(self):x}")
                self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """No more calls after the running (or, just after start(), the
        first) one; wait up to timeout seconds (None: for ever) for the thread
        to end. True once it has ended."""
        self._stop.set()
        t = self._thread
        if t is None:
            return True
        if t is not threading.current_thread():
            t.join(timeout)
        return not t.is_alive()

    def _main(self) -> None:
        # The first call is made whenever stop() came: start() promised it.
        next_at = time.monotonic()
        while True:
            next_at += self.interval
            try:
                self.data = self.func(*self.args, **self.kwds)
            except Exception as exc:
                self._report(exc)
            self.count += 1
            if not self.interval:
                return
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()
                delay = 0
            if self._stop.wait(delay):
                return

    def _report(self, exc: BaseException) -> None:
        if self.exception_handler is not None:
            try:
                self.exception_handler(self, None, (type(exc), exc, exc.__traceback__))
                return
            except Exception as handler_exc:
                exc = handler_exc
        eng = _lifecycle._caller_engine()
        if eng is not None and eng.started and not eng.finished:
            _core.post_main(eng, _raise_later(exc))
        else:
            sys.excepthook(type(exc), exc, exc.__traceback__)


def _raise_later(exc: BaseException) -> Callable[[], None]:
    def again() -> None:
        raise exc
    return again
