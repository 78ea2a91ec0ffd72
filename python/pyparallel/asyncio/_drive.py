"""Awaitables returned by the project's own callbacks, driven on the worker's loop.

An ``async def`` protocol callback (``data_received``, ``connection_made``...)
returns a coroutine: it runs as a task on the loop of the worker that owns the
connection, and what it returns is sent, as a plain callback's return value is.
An ``async def`` HttpServer handler's coroutine takes its first step at once,
on the handler's thread; when it finishes there, its result is the response
with no task switch at all. When it suspends, the response is deferred
(``pyparallel.http.defer``): the handler returns, and the task answers when
it is done, with no thread waiting for it. Only a request whose streamed body
is still arriving (which cannot be read once the handler returned) keeps the
handler's thread waiting for the task (released: the worker is handed to a
spare thread, which keeps serving the worker's other connections and runs
the loop meanwhile).
"""

from __future__ import annotations

import _thread
import asyncio
import sys
from asyncio import events
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from .. import _core
from ._worker import WorkerLoop, worker_loop

_EAGER = sys.version_info >= (3, 12)


def _as_task(loop: WorkerLoop, aw: Awaitable[Any]) -> asyncio.Future[Any]:
    if asyncio.iscoroutine(aw):
        return loop.create_task(aw)
    return asyncio.ensure_future(aw, loop=loop)


def drive_protocol(transport: _core.Transport, aw: Awaitable[Any]) -> None:
    """Run aw on the worker's loop; send its result on transport when done.

    Called by the thread serving the worker, which does not hold the loop
    while another thread may run it (hand-off): the task is then made by the
    loop's next pump, posted in the order the callbacks came."""
    loop = worker_loop()

    def start() -> None:
        task = _as_task(loop, aw)
        task.add_done_callback(lambda t: _protocol_done(transport, t))

    if loop._px_shared:
        loop.call_soon_threadsafe(start)
    else:
        start()


def _protocol_done(transport: _core.Transport, task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        result = task.result()
        if result is not None and not transport.closed:
            try:
                transport.send(result)
            except ConnectionError:
                pass  # closed meanwhile: nobody to answer, as for a plain callback
        return
    # As a plain callback's exception: the protocol's exception_handler, else
    # logged; the connection closes.
    handler = getattr(transport.protocol, "exception_handler", None)
    try:
        if handler is not None:
            handler(transport, "await", (type(exc), exc, exc.__traceback__))
        else:
            task.get_loop().call_exception_handler({
                "message": f"{type(transport.protocol).__qualname__}: an async callback "
                           "raised and no exception_handler took it: the connection is closed",
                "exception": exc,
                "transport": transport,
                "protocol": transport.protocol,
            })
    finally:
        transport.close()


def run_step_now(ready: Any, task: object) -> None:
    """Run task's step, just queued last on ready, here and now (claimed).
    Other threads may append to ready meanwhile (posted calls), so the step
    is taken out by identity, not popped from the end; when something came
    after it, it is left to the pump."""
    if ready:
        last = ready[-1]
        if getattr(last._callback, "__self__", None) is task:
            ready.remove(last)
            last._run()


def _step_here(loop: WorkerLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A task of coro whose first step has run on this thread (claimed)."""
    prev = events._get_running_loop()
    events._set_running_loop(loop)
    # debug mode's call_soon checks this: it names the spare that last ran the loop
    prev_thread = loop._thread_id
    loop._thread_id = _thread.get_ident()
    try:
        if _EAGER:
            return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
        task = loop.create_task(coro)
        run_step_now(loop._ready, task)
        return task
    finally:
        loop._thread_id = prev_thread
        events._set_running_loop(prev)


def _defer(request: object) -> Any:
    """The request's answer deferred, or None when it cannot be (its streamed
    body still arriving: the handler's thread waits for the task instead)."""
    try:
        return _core.http_defer(request)
    except RuntimeError:
        return None


def _answer(deferred: Any, task: asyncio.Future[Any]) -> None:
    """The task's outcome is the deferred response (a done callback)."""
    if task.cancelled():
        deferred.fail(asyncio.CancelledError("the handler's task was cancelled"))
    elif (exc := task.exception()) is not None:
        deferred.fail(exc)
    else:
        deferred.respond(task.result())


def drive_http(aw: Awaitable[Any], request: object) -> Any:
    """The response of an async handler (called released, on the handler's
    thread), or None once the response is deferred to the task's end."""
    loop = worker_loop()
    waker = loop._px_waker
    engine = _core.current_engine()
    handoff = engine is not None and engine.handoff_ms > 0
    done = _thread.allocate_lock()
    done.acquire()
    box: list[asyncio.Future[Any]] = []
    failed: list[BaseException] = []

    def watch(task: asyncio.Future[Any]) -> None:
        box.append(task)
        task.add_done_callback(lambda _t: done.release())

    if asyncio.iscoroutine(aw) and waker.claim():
        try:
            task = _step_here(loop, aw)
            if task.done():
                return task.result()
            deferred = _defer(request)
            if deferred is not None:
                task.add_done_callback(partial(_answer, deferred))
                return None
            if not handoff:
                task.cancel()
            else:
                watch(task)  # still claimed: no pump runs the task meanwhile
        finally:
            waker.unclaim()
    elif asyncio.iscoroutine(aw) and (deferred := _defer(request)) is not None:
        # The loop runs on another thread (a pump, another handler's first
        # step): the task is made there, at the loop's next pump.
        def start() -> None:
            try:
                task = _as_task(loop, aw)
            except BaseException as exc:  # the handler's 500
                deferred.fail(exc)
                return
            task.add_done_callback(partial(_answer, deferred))

        loop.call_soon_threadsafe(start)
        return None
    elif handoff:
        # Likewise, the handler's thread waiting for the task.
        def begin() -> None:
            try:
                watch(_as_task(loop, aw))
            except BaseException as exc:  # to the handler: a 500, not a wait forever
                failed.append(exc)
                done.release()

        loop.call_soon_threadsafe(begin)
    elif asyncio.isfuture(aw) and aw.done():
        return aw.result()
    elif asyncio.iscoroutine(aw):
        aw.close()  # never started: no "never awaited" warning for it
    if not handoff:
        raise RuntimeError("an async handler that awaits needs hand-off "
                           "(an engine with handoff_ms > 0)")
    waker.wake()  # queued work: the worker goes to a spare while we wait
    _core.worker_waiting()  # at once: the wait looks like a short lock wait
    done.acquire()
    if failed:
        raise failed[0]
    return box[0].result()


def run_here(loop: asyncio.AbstractEventLoop,
             step: Callable[[], asyncio.Task[None] | None]) -> bool:
    """Call step (which makes or wakes a task and returns it) on loop from a
    worker's thread, when this thread can claim the loop: the task's next step
    runs here too, so that an app answers with no thread switch. False,
    nothing called, when the loop is not this thread's to run now."""
    waker = getattr(loop, "_px_waker", None)
    if waker is None or not waker.claim():
        return False
    prev = events._get_running_loop()
    events._set_running_loop(loop)
    # debug mode's call_soon checks this: it names the spare that last ran the loop
    prev_thread = getattr(loop, "_thread_id", None)
    loop._thread_id = _thread.get_ident()  # type: ignore[attr-defined]
    try:
        task = step()
        ready = getattr(loop, "_ready", None)
        if task is not None and ready is not None:
            run_step_now(ready, task)  # its step now (a first one: no eager tasks in 3.11)
    finally:
        loop._thread_id = prev_thread  # type: ignore[attr-defined]
        events._set_running_loop(prev)
        waker.unclaim()
    return True


def handing_over(loop: asyncio.AbstractEventLoop) -> None:
    """The handler is about to block on the app: let its worker (and loop) go
    to a spare thread meanwhile."""
    waker = getattr(loop, "_px_waker", None)
    if waker is not None:
        waker.wake()
