"""Waiting for clients to go away: the ``receive()`` of an app that has its
whole request body (a long poll, Starlette's listener beside a streamed
response) returns ``http.disconnect`` once its client is gone or its
response is over.

The engine tells a closed response by a flag, not an event; so the waiters
of one loop share one timer that looks at all of them every ``POLL``
seconds, rather than each waking on its own timer: 10,000 streamed responses
cost 10 loop wake-ups a second, not 100,000.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["POLL", "until"]

POLL = 0.1  # s between two looks


class _Watch:
    """The waiters of one loop, and the timer that looks at them."""

    __slots__ = ("loop", "timer", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[asyncio.Future[None], Callable[[], bool]] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, over: Callable[[], bool]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.loop.create_future()
        self.waiting[fut] = over
        if self.timer is None:
            self.timer = self.loop.call_later(POLL, self._look)
        return fut

    def _look(self) -> None:
        self.timer = None
        for fut, over in list(self.waiting.items()):
            if fut.done():  # its waiter was cancelled
                del self.waiting[fut]
            elif over():
                del self.waiting[fut]
                fut.set_result(None)
        if self.waiting:
            self.timer = self.loop.call_later(POLL, self._look)


def _watch_of(loop: Any) -> _Watch:
    watch = getattr(loop, "_px_disconnects", None)
    if watch is None:
        watch = loop._px_disconnects = _Watch(loop)
    return watch


async def until(over: Callable[[], bool]) -> None:
    """Return once over() is true (looked at every POLL seconds, on the
    running loop's shared timer)."""
    if not over():
        await _watch_of(asyncio.get_running_loop()).add(over)
