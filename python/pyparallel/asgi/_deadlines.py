"""Response deadlines of deferred ASGI requests (``--timeout-response``):
the requests of one loop share one timer that looks at them every
``SWEEP`` seconds, rather than each arming and cancelling a timer of its own
(which cost about 8 µs per request that awaits).

``add`` may be called from any thread (the request's handler defers on its
worker's thread, which may not be the loop's at that moment); the timer is
armed through the loop only when none runs. ``drop`` as soon as the request
is answered, so only requests still waiting are held.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["SWEEP", "add", "drop"]

SWEEP = 0.5  # s between two looks: a deadline fires up to this much late


class _Deadlines:
    __slots__ = ("armed", "entries", "lock", "loop")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.entries: dict[int, tuple[float, Callable[[], None]]] = {}
        self.armed = False

    def add(self, key: int, deadline: float, expired: Callable[[], None]) -> None:
        with self.lock:
            self.entries[key] = (deadline, expired)
            arm, self.armed = not self.armed, True
        if arm:
            self.loop.call_soon_threadsafe(self.loop.call_later, SWEEP, self._sweep)

    def drop(self, key: int) -> None:
        with self.lock:
            self.entries.pop(key, None)

    def _sweep(self) -> None:  # on the loop
        now = time.monotonic()
        with self.lock:
            due = [k for k, (deadline, _) in self.entries.items() if deadline <= now]
            fns = [self.entries.pop(k)[1] for k in due]
            # read here: an add after the lock that found it disarmed arms its own
            again = self.armed = bool(self.entries)
        for fn in fns:
            fn()
        if again:
            self.loop.call_later(SWEEP, self._sweep)


_lock = threading.Lock()


def _of(loop: Any) -> _Deadlines:
    d = getattr(loop, "_px_deadlines", None)
    if d is None:
        with _lock:
            d = getattr(loop, "_px_deadlines", None)
            if d is None:
                d = loop._px_deadlines = _Deadlines(loop)
    return d


def add(loop: Any, key: int, deadline: float, expired: Callable[[], None]) -> None:
    """Call expired() on loop once time.monotonic() passes deadline, unless
    drop(loop, key) came first."""
    _of(loop).add(key, deadline, expired)


def drop(loop: Any, key: int) -> None:
    d = getattr(loop, "_px_deadlines", None)
    if d is not None:
        d.drop(key)
