"""WebSocket routes of an HttpServer (RFC 6455; frames parsed and written in C).

::

    from pyparallel.http import HttpServer, websocket

    class Chat(HttpServer):
        @websocket("/echo")
        def echo(self, ws, message):
            return message          # str or bytes returned is sent back

        @websocket("/chat", subprotocols=("chat.v2", "chat.v1"), ping_interval=20)
        def chat(self, ws, message):
            for peer in list(self.peers):
                peer.send(message)  # any thread may send on any WebSocket

        @chat.on_open
        def chat_open(self, ws, request):
            self.peers.add(ws)

        @chat.on_close
        def chat_close(self, ws, code, reason):
            self.peers.discard(ws)

Each complete message calls the route's function on the worker that owns the
connection, messages of one connection one after the other, those of
different connections in parallel on all workers; a function that blocks is
handed off like an HTTP handler. ``on_connect(self, request)`` runs before the
handshake is answered and may refuse it (return a :class:`Response`, raise
:class:`HttpError`) or choose the subprotocol (return its name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pyparallel import _core
from pyparallel.asyncio import worker_loop

from ._response import HttpError, Response
from ._ws_async import AsyncWebSocket, async_shape, engine_handoff, start
from ._ws_compression import deflate_setting

__all__ = ["WebSocket", "websocket"]

WebSocket = _core.WebSocket

_F = TypeVar("_F", bound=Callable[..., Any])
_log = logging.getLogger("pyparallel.http")
_TEXT = "text/plain; charset=utf-8"


@dataclass
class _Options:
    subprotocols: tuple[str, ...]
    max_message: int
    max_frame: int
    ping_interval: float
    ping_timeout: float
    idle_timeout: float
    close_timeout: float
    max_queue: int = 32
    deflate: tuple[int, int, bool, int] | None = None
    on_connect: Callable[..., Any] | None = None
    on_open: Callable[..., Any] | None = None
    on_close: Callable[..., Any] | None = None


def websocket(path: str, *, subprotocols: tuple[str, ...] = (), max_message: int = 1 << 20,
              max_frame: int | None = None, ping_interval: float | None = 20.0,
              ping_timeout: float | None = 20.0, idle_timeout: float | None = None,
              close_timeout: float = 5.0, max_queue: int = 32,
              compression: str | None = "deflate",
              compression_options: Mapping[str, Any] | None = None) -> Callable[[_F], _F]:
    """Mark a method ``(self, ws, message)`` as the message handler of the
    WebSocket route ``path`` (patterns as :func:`route`'s; a ``{name}`` part
    is not passed: read ``ws.path``).

    ``subprotocols``: those the server speaks, preferred first; the first the
    client offers is chosen (none when it offers none of them).
    ``max_message``/``max_frame``: payload limits (a bigger message closes
    the connection with 1009 before its payload is read). ``ping_interval``:
    a ping whenever this long passed since the last pong, and
    ``ping_timeout`` to answer it, else the connection closes with 1011
    (None: no pings). ``idle_timeout``: nothing received this long closes the
    connection (None: never). ``close_timeout``: how long the client's close
    frame is awaited after ours. ``max_queue``: messages an ``async def``
    route has not taken yet before the connection's next ones wait.
    ``compression``: ``"deflate"`` takes a client's permessage-deflate offer,
    None refuses it; ``compression_options``: see
    :data:`pyparallel.http.DEFLATE_DEFAULTS` (level, min_size,
    client_context, window_bits).

    The method's return value, when not None, is sent back (str: text,
    bytes: binary). Hooks are registered on the decorated method:
    ``@name.on_connect`` ``(self, request)``, ``@name.on_open``
    ``(self, ws, request)`` and ``@name.on_close`` ``(self, ws, code,
    reason)``; they are not routes themselves.
    """
    if max_message <= 0 or (max_frame is not None and max_frame <= 0) or max_queue <= 0:
        raise ValueError("max_message, max_frame and max_queue must be positive")
    opts = _Options(tuple(subprotocols), max_message, max_frame or max_message,
                    ping_interval or 0.0, ping_timeout or 0.0, idle_timeout or 0.0,
                    close_timeout, max_queue, deflate_setting(compression, compression_options))

    def mark(func: _F) -> _F:
        async_shape(func)  # TypeError now for an async route of the wrong shape
        func.__px_route__ = (path, ("GET",))  # type: ignore[attr-defined]
        func.__px_websocket__ = opts  # type: ignore[attr-defined]
        for hook in ("on_connect", "on_open", "on_close"):
            setattr(func, hook, _hook_setter(opts, hook))
        return func
    return mark


def _hook_setter(opts: _Options, name: str) -> Callable[[_F], _F]:
    def register(hook: _F) -> _F:
        setattr(opts, name, hook)
        hook.__px_ws_hook__ = True  # type: ignore[attr-defined]
        return hook
    return register


def _closing(aws: AsyncWebSocket,
             hook: Callable[..., Any] | None) -> Callable[[Any, int, str], None]:
    """The engine's on_close of an async route: its receive() ends, then the
    route's own on_close hook runs."""
    def on_close(ws: Any, code: int, reason: str) -> None:
        aws.on_close(ws, code, reason)
        if hook is not None:
            hook(ws, code, reason)
    return on_close


def _offered(request: Any) -> list[str]:
    values = request.headers.get("sec-websocket-protocol") or ""
    return [p.strip() for p in values.split(",") if p.strip()]


def _upgrade_handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """The HTTP handler ``(self, request)`` of a WebSocket route: refuse what
    is not a valid upgrade, run on_connect, answer 101 with the callbacks
    bound to the app instance, run on_open."""
    opts: _Options = func.__px_websocket__  # type: ignore[attr-defined]
    shape = async_shape(func)

    def upgrade(self: Any, request: Any, **_params: Any) -> Any:
        refusal = _core.ws_refusal(request)
        if refusal is not None:
            status, headers = refusal
            return Response(f"{status} not a valid WebSocket upgrade\n", status, _TEXT, headers)
        proto = None
        if opts.on_connect is not None:
            try:
                answer = opts.on_connect(self, request)
            except HttpError as e:
                return self.error(request, e.status, e.message or str(e.status))
            if isinstance(answer, Response):
                return answer
            if isinstance(answer, str):
                proto = answer
        offered = _offered(request)
        if proto is None:
            proto = next((p for p in opts.subprotocols if p in offered), None)
        elif proto not in offered:
            raise ValueError(f"subprotocol {proto!r} was not offered by the client")
        on_close = opts.on_close
        hook = (lambda ws, code, reason: on_close(self, ws, code, reason)) if on_close else None
        aws: AsyncWebSocket | None = None
        if shape is None:
            on_message: Callable[..., Any] = lambda ws, message: func(self, ws, message)  # noqa: E731
        else:
            aws = AsyncWebSocket(None, worker_loop(), opts.max_queue if engine_handoff() else 0)
            on_message, hook = aws.on_message, _closing(aws, hook)
        ws = _core.ws_accept(
            request, on_message, hook,
            subprotocol=proto, max_message=opts.max_message, max_frame=opts.max_frame,
            ping_interval=opts.ping_interval, ping_timeout=opts.ping_timeout,
            idle_timeout=opts.idle_timeout, close_timeout=opts.close_timeout,
            deflate=opts.deflate)
        if aws is not None:
            aws.ws = ws
        try:
            if opts.on_open is not None:
                opts.on_open(self, ws, request)
        except Exception:
            # the 101 is sent: the WebSocket is closed as a failing route's is
            _log.exception("WebSocket %s: on_open raised: closing with 1011", ws.path)
            if aws is not None:  # no route will read: nothing may wait for it
                aws.inbox.stop()
            ws.close(1011, "")
            return None
        if aws is not None and shape is not None:
            start(func, shape, self, aws)
        return None
    upgrade.__name__ = getattr(func, "__name__", "websocket")
    return upgrade
