"""Messages from the engine's callbacks to a coroutine on the worker's loop:
one connection's WebSocket messages to the task that awaits them (an ASGI
app's ``receive()``, an async WebSocket route's ``ws.receive()``).

The engine calls back on the thread serving the connection's worker, which
may not hold the loop (hand-off: another thread may run it). A message is put
on the loop right there when this thread can claim the loop, and the waiting
task's next step runs at once (no thread switch); otherwise it is posted, and
later ones are posted behind it, so that the task sees them in order. The
inbox is bounded: while ``limit`` messages wait unread, the engine's callback
waits too (its worker handed to a spare thread meanwhile), so a slow
consumer slows its client down instead of filling the memory. A limit of 0
never waits (for an engine without hand-off, whose worker would then stop
the very loop that reads).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ._drive import handing_over, run_here

__all__ = ["Inbox"]


class Inbox:
    """A bounded, ordered queue from the engine's callbacks to the loop."""

    __slots__ = ("flow", "limit", "loop", "over", "posted", "queue", "unread")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
        self.flow = threading.Condition()
        self.unread = 0  # messages put and not yet taken (counted)
        self.posted = 0  # puts posted to the loop, not run yet
        self.over = False  # nobody reads any more: callbacks never wait

    def put(self, item: Any, task: Callable[[], asyncio.Task[Any] | None]) -> None:
        """From the engine's callback: item for the loop; task() names the
        task that awaits it (its step runs here when the loop is ours)."""
        with self.flow:
            self.unread += 1
            here = self.posted == 0  # else after those posted, in order

        def deliver() -> asyncio.Task[Any] | None:
            self.queue.put_nowait((True, item))
            return task()

        if not (here and run_here(self.loop, deliver)):
            with self.flow:
                self.posted += 1
            self.loop.call_soon_threadsafe(self._deliver_posted, item)
        with self.flow:
            if 0 < self.limit <= self.unread and not self.over:
                handing_over(self.loop)  # the reader is behind: its worker goes on
                while self.unread >= self.limit and not self.over:
                    self.flow.wait()

    def _deliver_posted(self, item: Any) -> None:  # on the loop
        with self.flow:
            self.posted -= 1
        self.queue.put_nowait((True, item))

    def put_last(self, item: Any) -> None:
        """On the loop: a final item (the close), not counted against the limit."""
        self.queue.put_nowait((False, item))

    async def get(self) -> Any:
        """On the loop: the next item, waiting for it."""
        counted, item = await self.queue.get()
        if counted:
            with self.flow:
                self.unread -= 1
                self.flow.notify()
        return item

    def empty(self) -> bool:
        return self.queue.empty()

    def stop(self) -> None:
        """Nobody reads any more (the reader is over, or the connection):
        callbacks waiting for room go on."""
        with self.flow:
            self.over = True
            self.flow.notify_all()
