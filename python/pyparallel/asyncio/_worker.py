"""The asyncio loop of an engine worker.

Each worker has one :class:`WorkerLoop`, made on first use by
:func:`worker_loop`. The worker pumps it: callbacks made ready (``call_soon``,
a task's next step, a future's done callbacks) run right after the batch of
I/O completions that made them ready; ``call_later``/``call_at`` deadlines sit
on the worker's precise timer heap, which cuts the worker's sleep short for
them; ``call_soon_threadsafe`` posts a wake-up on the worker's queue. Nothing
of the loop is ever touched by another worker, so coroutines never migrate.

The loop is run by its worker, never by ``run_forever``/``run_until_complete``;
it counts as running for the whole life of the engine.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import threading
from asyncio import events
from asyncio.log import logger
from collections.abc import Callable
from contextvars import Context
from typing import Any, TypeVar

from .. import _core
from ._datagram import DatagramNet
from ._fdwatch import FdWatch
from ._net import EngineNet
from ._unix import UnixNet

_T = TypeVar("_T")

# Compact the timer heap when this many handles are cancelled and they are
# more than half of it (cancelled handles otherwise leave as they come due).
_COMPACT_MIN = 100
# Passes of the ready queue that run the cancellation of the tasks left at the
# engine's end (each pass runs what the one before made ready).
_DRAIN_PASSES = 100


class WorkerLoop(FdWatch, EngineNet, UnixNet, DatagramNet, asyncio.BaseEventLoop):  # type: ignore[misc]
    """The asyncio event loop of one engine worker (see the module docstring)."""

    # Engine callbacks call asyncio protocols at once (the loop always runs).
    _px_direct = True
    # create_server: each worker's connections go to that worker's loop.
    _px_per_worker = True

    _ready: collections.deque[asyncio.Handle]
    _scheduled: list[Any]  # TimerHandle, with the private fields typeshed omits
    _timer_cancelled_count: int
    _thread_id: int | None
    _clock_resolution: float
    _debug: bool
    _current_handle: asyncio.Handle | None
    _closed: bool
    _stopping: bool

    def __init__(self, waker: Any) -> None:
        super().__init__()
        self._px_waker = waker
        self._px_arm: Callable[[float], None] = waker.arm
        self._px_wake: Callable[[], None] = waker.wake
        self._px_soon = False  # armed for "right after this batch", or pumping
        self._px_eng = _core.current_engine()
        # With hand-off another thread may run this loop's code while this
        # worker's thread serves its connections: the engine's callbacks
        # claim the loop first (_transport._Conn._enter).
        self._px_shared = self._px_eng is not None and self._px_eng.handoff_ms > 0
        # Running for the engine's whole life: is_running() is True and
        # asyncio calls that want a running loop accept this one.
        self._thread_id = threading.get_ident()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} worker={self._px_waker.worker} "
                f"closed={self._closed} debug={self._debug}>")

    @property
    def worker(self) -> int:
        """Index of the worker that runs this loop."""
        return int(self._px_waker.worker)

    def _px_engine(self) -> Any:
        return self._px_eng

    def _px_connect_worker(self) -> object:
        return "caller"

    # ---- scheduling ------------------------------------------------------------

    def _call_soon(self, callback: Callable[..., object], args: Any,
                   context: Context | None) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        if handle._source_traceback:  # type: ignore[attr-defined]
            del handle._source_traceback[-1]  # type: ignore[attr-defined]
        self._ready.append(handle)
        if not self._px_soon:
            self._px_arm(0.0)
            self._px_soon = True
        return handle

    def call_at(self, when: float, callback: Callable[..., object], *args: Any,  # type: ignore[override]
                context: Context | None = None) -> asyncio.TimerHandle:
        timer = super().call_at(when, callback, *args, context=context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        if not self._px_soon and self._scheduled[0] is timer:
            self._px_arm(when)
        return timer

    def call_soon_threadsafe(  # type: ignore[override]
            self, callback: Callable[..., object], *args: Any,
            context: Context | None = None) -> asyncio.Handle:
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")  # type: ignore[attr-defined]
        handle = asyncio.Handle(callback, args, self, context)
        if handle._source_traceback:  # type: ignore[attr-defined]
            del handle._source_traceback[-1]  # type: ignore[attr-defined]
        self._ready.append(handle)
        self._px_wake()
        return handle

    def _write_to_self(self) -> None:
        self._px_wake()

    # ---- the pump (called by the worker) ---------------------------------------

    def _px_pump(self) -> None:
        self._px_soon = True  # what runs now needs no arming: we look again below
        prev = events._get_running_loop()
        events._set_running_loop(self)
        self._thread_id = threading.get_ident()
        try:
            self._px_run_due()
        finally:
            events._set_running_loop(prev)
            self._px_rearm()

    def _px_run_due(self) -> None:
        sched = self._scheduled
        ready = self._ready
        if (self._timer_cancelled_count > _COMPACT_MIN
                and 2 * self._timer_cancelled_count > len(sched)):
            keep = []
            for h in sched:
                if h._cancelled:
                    h._scheduled = False
                else:
                    keep.append(h)
            heapq.heapify(keep)
            self._scheduled = sched = keep
            self._timer_cancelled_count = 0
        if sched:
            end = self.time() + self._clock_resolution
            while sched:
                h = sched[0]
                if h._cancelled:
                    self._timer_cancelled_count -= 1
                elif h._when >= end:
                    break
                else:
                    ready.append(h)
                heapq.heappop(sched)
                h._scheduled = False
        # What these callbacks make ready runs at the next pump, after the
        # worker's next batch of I/O (as asyncio runs it after the next poll).
        for _ in range(len(ready)):
            handle = ready.popleft()
            if handle._cancelled:
                continue
            if self._debug:
                self._px_run_debug(handle)
            else:
                handle._run()

    def _px_run_debug(self, handle: asyncio.Handle) -> None:
        try:
            self._current_handle = handle
            t0 = self.time()
            handle._run()
            dt = self.time() - t0
            if dt >= self.slow_callback_duration:
                logger.warning("Executing %r took %.3f seconds", handle, dt)
        finally:
            self._current_handle = None

    def _px_rearm(self) -> None:
        if self._closed:
            return
        if self._ready:
            self._px_arm(0.0)  # keeps _px_soon: armed for right after the batch
            return
        self._px_soon = False
        if self._scheduled:
            self._px_arm(self._scheduled[0]._when)

    def _px_worker_done(self) -> None:
        """The engine is joined (main thread): nothing will pump this loop again."""
        self._thread_id = None
        self._px_watch_close()
        if not self._closed:
            self._px_cancel_tasks()
            self.close()

    def _px_cancel_tasks(self) -> None:
        """As asyncio.run ends: the tasks still pending are cancelled and their
        cancellation run, what was queued for them included (a cancel posted
        by a handler that timed out as the worker ended). With the engine gone,
        one whose cleanup waits on I/O or a timer stays unfinished."""
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        if not tasks and not self._ready:
            return
        self._px_soon = True  # run here: the worker's timer heap is gone
        for task in tasks:
            task.cancel()
        prev = events._get_running_loop()
        events._set_running_loop(self)
        try:
            for _ in range(_DRAIN_PASSES):
                self._px_run_due()
                # A task the queue made meanwhile (a handler's, posted) is
                # cancelled too: nothing else would end it.
                known = set(map(id, tasks))
                new = [t for t in asyncio.all_tasks(self) if not t.done() and id(t) not in known]
                for task in new:
                    task.cancel()
                tasks += new
                if not self._ready:
                    break
        finally:
            events._set_running_loop(prev)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self.call_exception_handler({
                    "message": "unhandled exception in a task cancelled at the engine's end",
                    "exception": task.exception(),
                    "task": task,
                })

    # ---- what a worker's loop does not do --------------------------------------

    def run_forever(self) -> None:
        raise RuntimeError("a worker's loop is run by its worker: schedule work on it "
                           "(create_task, call_soon) instead")

    def run_until_complete(self, future: Any) -> Any:
        raise RuntimeError("a worker's loop is run by its worker: await the future "
                           "in a coroutine on it instead")

    def stop(self) -> None:
        """Nothing to stop: the worker runs the loop as long as the engine runs."""

    def close(self) -> None:
        if self._thread_id is not None:
            raise RuntimeError("a worker's loop closes with its engine")
        super().close()

    def _process_events(self, event_list: Any) -> None:
        """The engine's completions call their callbacks themselves."""


def worker_loop() -> WorkerLoop:
    """The asyncio loop of the engine worker calling this (made on first use).

    RuntimeError off the workers (the main thread, a plain thread)."""
    waker = _core.aio_worker_waker(WorkerLoop)
    if waker is None:
        raise RuntimeError("worker_loop() is only available on an engine worker "
                           "(in a protocol callback, a handler, work or a timer)")
    loop: WorkerLoop = waker.loop
    return loop
