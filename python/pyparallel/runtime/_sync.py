"""Mutual exclusion: :func:`critical_section` and :func:`synchronized`.

PyParallel's ``synchronized`` decorator serialised the calls of a function
with a critical section (``enter()``/``leave()``); its ``critical_section``
type was never finished. Here both are a re-entrant mutex: a thread that
holds it may take it again (recursion), others wait. On a worker the wait
releases the worker (a spare thread serves its connections meanwhile, as for
any callback that blocks).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, overload

__all__ = ["CriticalSection", "critical_section", "synchronized"]

_F = TypeVar("_F", bound=Callable[..., Any])


class CriticalSection:
    """A re-entrant mutex: ``with cs:``, ``cs.enter()``/``cs.leave()``, or
    ``@cs`` on functions whose calls it serialises (several functions may
    share one)."""

    __slots__ = ("_lock", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def enter(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the critical section (waiting up to timeout seconds, -1: for
        ever); False if not taken."""
        return self._lock.acquire(blocking, timeout)

    def try_enter(self) -> bool:
        """Take it if nobody else holds it; False otherwise (no wait)."""
        return self._lock.acquire(False)

    def leave(self) -> None:
        """Release it (RuntimeError if this thread does not hold it)."""
        self._lock.release()

    acquire = enter
    release = leave

    def __enter__(self) -> CriticalSection:
        self._lock.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._lock.release()

    def __call__(self, func: _F) -> _F:
        @functools.wraps(func)
        def serialised(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)
        serialised.critical_section = self  # type: ignore[attr-defined]
        return serialised  # type: ignore[return-value]


@overload
def critical_section() -> CriticalSection: ...
@overload
def critical_section(func: _F, /) -> _F: ...


def critical_section(func: Callable[..., Any] | None = None, /) -> Any:
    """A new :class:`CriticalSection`; applied to a function (as a decorator,
    ``@critical_section``), the function :func:`synchronized`."""
    if func is None:
        return CriticalSection()
    return synchronized(func)


def synchronized(func: _F) -> _F:
    """Decorator: calls of func run one at a time, across all threads (a
    recursive call from the thread inside goes through). The wrapper's
    ``critical_section`` attribute is the :class:`CriticalSection` used."""
    return CriticalSection()(func)
