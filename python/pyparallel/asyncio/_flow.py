"""Waiting on a loop, without a thread, for a connection's output to drain.

A WebSocket or a streamed response over the engine's high-water mark refuses
a non-blocking send. Blocking in ``run_in_executor`` until it drains would
hold one of the loop's few executor threads for as long as the client reads
slowly, so that a handful of slow clients would stall every other executor
job of the loop (``getaddrinfo`` among them). Instead the loop looks again
after 1 ms, doubling up to 50 ms: a slow client costs a timer, not a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["until_writable"]

_FIRST, _LONGEST = 0.001, 0.05


async def until_writable(ready: Callable[[], bool]) -> None:
    """Return once ``ready()`` (a non-blocking look: writable, or closed so
    that the next send says so) is true."""
    delay = _FIRST
    while not ready():
        await asyncio.sleep(delay)
        delay = min(delay * 2, _LONGEST)
