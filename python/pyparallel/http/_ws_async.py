"""``async def`` WebSocket routes of an HttpServer, on the worker's asyncio loop.

Two shapes, told apart by the method's parameters::

    @websocket("/echo")
    async def echo(self, ws, message):      # one call per message, in order
        await asyncio.sleep(0)
        return message                      # sent back when not None

    @websocket("/chat")
    async def chat(self, ws):               # one call per connection
        await ws.send("hello")
        async for message in ws:            # ws.receive() awaits the next one
            await ws.send(message.upper())
        # the loop ends when the client closes; returning closes with 1000

A connection handler gets an :class:`AsyncWebSocket`: ``receive()``
(``WebSocketClosed`` once the connection is over, whose ``code`` and
``reason`` are the close frame's), ``async for``, ``send()`` (waits while the
client reads slower than the handler writes), ``close()``. Messages wait in
a bounded inbox (``max_queue``): while it is full the engine reads no more of
that client. An exception is logged with its traceback and closes the
connection with 1011. Both shapes run as tasks on the loop of the worker that
owns the connection, beside its other connections' tasks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from pyparallel import _core

__all__ = ["AsyncWebSocket", "WebSocketClosed", "async_shape", "engine_handoff",
           "send_when_writable", "start"]

_log = logging.getLogger("pyparallel.http")


class WebSocketClosed(ConnectionError):
    """The WebSocket is closed: ``code`` and ``reason`` of its close frame
    (1006 and '' when the connection ended without one)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the WebSocket is closed ({code} {reason})".rstrip(" )") + ")")
        self.code = code
        self.reason = reason


async def send_when_writable(loop: asyncio.AbstractEventLoop, ws: Any, payload: Any) -> bool:
    """Send payload (str: text, bytes: binary) on ws, waiting on the loop (no
    thread held) while the connection is over its high-water mark; False once
    closed."""
    from pyparallel.asyncio._flow import until_writable

    while True:
        try:
            ws.send_nowait(payload)
            return True
        except BlockingIOError:
            await until_writable(lambda: bool(ws.writable))
        except ConnectionError:
            return False


def async_shape(func: Callable[..., Any]) -> str | None:
    """"message" for ``async def f(self, ws, message)``, "connection" for
    ``async def f(self, ws)``, None for a plain function."""
    if not inspect.iscoroutinefunction(func):
        return None
    params = [p for p in inspect.signature(func).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) == 2:
        return "connection"
    if len(params) == 3:
        return "message"
    raise TypeError(f"{func.__qualname__}: an async WebSocket route takes (self, ws) or "
                    "(self, ws, message)")


class AsyncWebSocket:
    """One WebSocket connection as an ``async def f(self, ws)`` route sees it."""

    def __init__(self, ws: Any, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        from pyparallel.asyncio._inbox import Inbox

        self.ws = ws  #: the engine's WebSocket (any thread may send on it)
        self.loop = loop
        self.inbox = Inbox(loop, limit)
        self.task: asyncio.Task[None] | None = None
        self._closed: WebSocketClosed | None = None

    # ---- what the handler uses -----------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message (str: text, bytes: binary); WebSocketClosed once
        the connection is over."""
        if self._closed is not None and self.inbox.empty():
            raise WebSocketClosed(self._closed.code, self._closed.reason)
        item = await self.inbox.get()
        if isinstance(item, WebSocketClosed):
            self._closed = item
            raise item
        message: str | bytes = item
        return message

    def __aiter__(self) -> AsyncWebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed:
            raise StopAsyncIteration from None

    async def send(self, message: str | bytes) -> None:
        """Send a message; WebSocketClosed when the connection is closed."""
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        if not await send_when_writable(self.loop, self.ws, message):
            raise self._closed or WebSocketClosed(self.ws.close_code or 1006,
                                                  self.ws.close_reason or "")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (nothing when already closing)."""
        try:
            self.ws.close(code, reason)
        except ConnectionError:
            pass

    @property
    def path(self) -> str:
        return str(self.ws.path)

    @property
    def subprotocol(self) -> str | None:
        sub: str | None = self.ws.subprotocol
        return sub

    @property
    def closed(self) -> bool:
        return bool(self.ws.closed)

    # ---- the engine's side ---------------------------------------------------------

    def on_message(self, ws: Any, message: str | bytes) -> None:
        """The engine's callback (the worker's thread)."""
        self.inbox.put(message, lambda: self.task)

    def on_close(self, ws: Any, code: int, reason: str) -> None:
        self.inbox.stop()
        self.loop.call_soon_threadsafe(self.inbox.put_last, WebSocketClosed(code, reason or ""))


async def _per_message(func: Callable[..., Any], app: Any, aws: AsyncWebSocket) -> None:
    async for message in aws:
        result = await func(app, aws.ws, message)
        if result is not None:
            await aws.send(result)


async def _run(func: Callable[..., Any], shape: str, app: Any, aws: AsyncWebSocket) -> None:
    try:
        if shape == "message":
            await _per_message(func, app, aws)
        else:
            await func(app, aws)
    except WebSocketClosed:
        pass  # a send after the client left: nothing more to do
    except asyncio.CancelledError:
        await aws.close(1001, "going away")  # the engine stops
        raise
    except Exception:
        _log.exception("WebSocket route %s (%s) raised: closing with 1011",
                       func.__qualname__, aws.path)
        await aws.close(1011, "")
    else:
        await aws.close(1000, "")
    finally:
        aws.inbox.stop()


def start(func: Callable[..., Any], shape: str, app: Any, aws: AsyncWebSocket) -> None:
    """Run the route's task on its loop: its first step here when this thread
    can claim the loop (the upgrade's handler), else posted to it."""
    from pyparallel.asyncio._drive import run_here

    def begin() -> asyncio.Task[None]:
        aws.task = aws.loop.create_task(_run(func, shape, app, aws))
        return aws.task

    if not run_here(aws.loop, begin):
        aws.loop.call_soon_threadsafe(begin)


def engine_handoff() -> bool:
    """Whether the engine hands blocked workers off (the inbox may then make
    the engine's callback wait for room; without hand-off it never waits)."""
    engine = _core.current_engine()
    return engine is not None and engine.handoff_ms > 0
