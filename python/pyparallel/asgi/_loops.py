"""The asyncio loop that ASGI app coroutines run on, one per engine worker.

:func:`worker_loop` is the ONE place the ASGI server gets its loop from. Today
each worker has a companion thread running a standard asyncio loop: a
request's handler (on the worker) posts the app to it with
``call_soon_threadsafe`` and the app's replies go back through the
thread-safe stream writes and a queue the handler waits on. When the
in-engine loop (``pyparallel.asyncio.worker_loop()``) is in, this function
returns it instead; nothing else changes, as long as that loop runs while
the handler that posted to it waits (the handler blocks with its worker
released).
"""

from __future__ import annotations

import asyncio
import threading

from pyparallel import _core

__all__ = ["stop_all", "worker_loop"]

_lock = threading.Lock()
_loops: dict[int, tuple[asyncio.AbstractEventLoop, threading.Thread]] = {}


def worker_loop() -> asyncio.AbstractEventLoop:
    """The event loop of the calling engine worker's ASGI coroutines (made on
    first use; a thread outside the engine shares one of its own)."""
    index = _core.worker_index()
    key = -1 if index is None else index
    entry = _loops.get(key)
    if entry is None:
        with _lock:
            entry = _loops.get(key)
            if entry is None:
                entry = _start(key)
                _loops[key] = entry
    return entry[0]


def _start(key: int) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
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
    """Stop every worker loop (after the engine stopped): their pending tasks
    are cancelled and the loops closed."""
    with _lock:
        entries = list(_loops.values())
        _loops.clear()
    for loop, thread in entries:
        def cancel_and_stop(loop: asyncio.AbstractEventLoop = loop) -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancellations ran once
        loop.call_soon_threadsafe(cancel_and_stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
