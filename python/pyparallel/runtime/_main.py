"""Calls handed to the main thread.

The main thread runs them while it waits in :func:`pyparallel.run` or
:func:`pyparallel.run_once` (and while it waits for a map() or a Work), one at
a time, in the order they were posted.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .. import _core, _lifecycle, _mainqueue

__all__ = ["call_from_main_thread", "call_from_main_thread_and_wait"]

_R = TypeVar("_R")

_MAIN_IDENT = threading.main_thread().ident


def _on_main_thread() -> bool:
    return threading.get_ident() == _MAIN_IDENT


def _call_main(func: Callable[..., _R], args: tuple[Any, ...],
               kwargs: dict[str, Any], wait: bool) -> _R | None:
    _core._stm_refuse("call_from_main_thread_and_wait()" if wait else "call_from_main_thread()")
    if _on_main_thread():
        return func(*args, **kwargs)
    eng = _lifecycle._caller_engine()
    if eng is None:
        raise RuntimeError(
            "no engine is running, so the main thread would never run this call: "
            "call it from a callback, or while the main thread is in pyparallel.run()")
    call = _mainqueue._post(eng, func, args, kwargs, wait)
    if not wait:
        return None
    assert call.done is not None
    call.done.acquire()
    if call.error is not None:
        raise call.error
    result: _R = call.result
    return result


def _main_thread_decorator(func: Callable[..., _R], wait: bool) -> Callable[..., _R | None]:
    @functools.wraps(func)
    def on_main_thread(*args: Any, **kwargs: Any) -> _R | None:
        return _call_main(func, args, kwargs, wait)
    return on_main_thread


@overload
def call_from_main_thread(func: Callable[..., _R], /) -> Callable[..., None]: ...
@overload
def call_from_main_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None: ...


def call_from_main_thread(func: Callable[..., Any], /, *args: Any,
                          **kwargs: Any) -> Callable[..., None] | None:
    """Have the main thread call ``func(*args, **kwargs)``; return at once (None).

    The main thread runs such calls one at a time, in the order they were
    posted, while it waits in :func:`pyparallel.run` or
    :func:`pyparallel.run_once` (map() and Work.result() waiting on the main
    thread run them too). An exception from ``func`` is re-raised there, as
    one from a callback would be. Called on the main thread itself, ``func``
    runs at once, inline, and its exception reaches the caller. From another
    thread when no engine exists, RuntimeError (nothing would ever run it).

    With ``func`` alone it is a decorator: ``@call_from_main_thread`` makes a
    function whose calls are handed to the main thread that way. (So a
    function of no arguments is called as ``call_from_main_thread(f)()``.)
    """
    if not args and not kwargs:
        return _main_thread_decorator(func, wait=False)
    _call_main(func, args, kwargs, wait=False)
    return None


@overload
def call_from_main_thread_and_wait(func: Callable[..., _R], /) -> Callable[..., _R]: ...
@overload
def call_from_main_thread_and_wait(func: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R: ...


def call_from_main_thread_and_wait(func: Callable[..., Any], /, *args: Any,
                                   **kwargs: Any) -> Any:
    """Have the main thread call ``func(*args, **kwargs)`` and wait for it: its
    result is returned, its exception re-raised here.

    The calling thread (typically a worker inside a callback) blocks until the
    main thread, waiting in :func:`pyparallel.run` or
    :func:`pyparallel.run_once`, has run the call; calls run one at a time,
    in the order posted. If the engine shuts down before the call ran, the
    caller gets RuntimeError instead of waiting forever. On the main thread
    itself ``func`` runs inline. From another thread when no engine exists,
    RuntimeError.

    With ``func`` alone it is a decorator: ``@call_from_main_thread_and_wait``
    makes a function whose calls run on the main thread (call a function of
    no arguments as ``call_from_main_thread_and_wait(f)()``).
    """
    if not args and not kwargs:
        return _main_thread_decorator(func, wait=True)
    return _call_main(func, args, kwargs, wait=True)


def _wait_on_main(eng: _core.Engine, done: Callable[[], bool], deadline: float | None) -> None:
    """On the main thread: until done() or the deadline, run the main-thread
    calls of eng (whose workers may be waiting for them) and re-raise what its
    workers raised, as run_once() would."""
    while not done():
        step = 0.05
        if deadline is not None:
            step = min(step, deadline - time.monotonic())
            if step <= 0:
                return
        eng.wait(step)

