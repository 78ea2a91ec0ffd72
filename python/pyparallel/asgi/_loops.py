"""The asyncio loop that ASGI app coroutines run on, one per engine worker.

:func:`worker_loop` is the ONE place the ASGI server gets its loop from: the
calling worker's own loop, run by the worker on its I/O and timers
(``pyparallel.asyncio.worker_loop()``). A request's handler (on the worker,
released) takes the app's first step on its own thread when it can claim the
loop (:func:`start`): an app that answers without waiting on anything is
answered with no thread switch. When the app waits, the handler blocks
(:func:`handing_over`) and a spare thread takes the worker over and runs its
loop meanwhile; replies come back through the thread-safe stream writes and a
queue the handler waits on.

Without hand-off (``handoff_ms=0``) nobody would run the loop while the
handler blocks: each worker then gets a standard asyncio loop in a companion
thread instead (events posted with ``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from pyparallel import _core
from pyparallel.asyncio._drive import handing_over, run_here

__all__ = ["handing_over", "run_here", "start", "stop_all", "worker_loop"]

_lock = threading.Lock()
_companions: dict[int, tuple[asyncio.AbstractEventLoop, threading.Thread]] = {}
_engine_loop: Callable[[], asyncio.AbstractEventLoop] | None = None


def worker_loop() -> asyncio.AbstractEventLoop:
    """The event loop of the calling engine worker's ASGI coroutines."""
    global _engine_loop
    engine = _core.current_engine()
    if engine is not None and engine.handoff_ms > 0:
        if _engine_loop is None:  # imported once, not per request
            from pyparallel.asyncio import worker_loop as engine_loop
            _engine_loop = engine_loop
        return _engine_loop()
    return _companion_loop()


def start(loop: asyncio.AbstractEventLoop,
          begin: Callable[[], asyncio.Task[None] | None]) -> None:
    """Call begin (which makes the app's task, eager where asyncio has that)
    on loop, from a request's handler: right here when this thread can claim
    the loop, else posted. Here, the task's first step runs here too."""
    if not run_here(loop, begin):
        loop.call_soon_threadsafe(begin)


def _companion_loop() -> asyncio.AbstractEventLoop:
    index = _core.worker_index()
    key = -1 if index is None else index
    entry = _companions.get(key)
    if entry is None:
        with _lock:
            entry = _companions.get(key)
            if entry is None:
                entry = _start_companion(key)
                _companions[key] = entry
    return entry[0]


def _start_companion(key: int) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, name=f"pyparallel-asgi-loop-{key}", daemon=True)
    thread.start()
    ready.wait()
    return loop, thread


def stop_all(timeout: float = 5.0) -> None:
    """Stop the companion loops (after the engine stopped; the engine closes
    its workers' own): their pending tasks are cancelled, the loops closed."""
    with _lock:
        entries = list(_companions.values())
        _companions.clear()
    for loop, thread in entries:
        def cancel_and_stop(loop: asyncio.AbstractEventLoop = loop) -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancellations ran once
        loop.call_soon_threadsafe(cancel_and_stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
