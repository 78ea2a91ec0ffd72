"""One WebSocket connection of an ASGI app: the ``websocket`` scope (ASGI
spec 2.4) on the engine's WebSocket layer, which does the handshake checks,
the frames, fragmentation, UTF-8 validation, the message limits, ping
keep-alive and the close handshake in C.

The upgrade request's handler (on its worker, released) starts the app on the
worker's loop and serves the app's answer to ``websocket.connect``:
``websocket.accept`` makes the connection a WebSocket (``_core.ws_accept``,
which only the request's handler may call), with the subprotocol and headers
the app gives; ``websocket.close`` before it is a 403; the
``websocket.http.response`` extension answers with the app's own response.
The handler returns then. Complete messages reach ``receive()`` through a
bounded queue: the engine's callback waits while it is full, so that a slow
app slows its client down instead of filling the memory. Sends go to the
engine from the loop, waiting (off the loop) while the client reads slower
than the app writes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Mapping
from typing import Any

from pyparallel import _core
from pyparallel.asyncio._inbox import Inbox
from pyparallel.http import Response
from pyparallel.http._ws_async import send_when_writable
from pyparallel.http._ws_compression import deflate_setting

from . import _loops
from ._cycle import AppTask, Message, Scope, Settings, _error_response, _response_head

__all__ = ["WS_DEFAULTS", "ClientDisconnected", "handle_websocket"]

_log = logging.getLogger("pyparallel.asgi")

_POLL = 0.1  # s between two looks at the client while the app decides
#: what a websocket scope's connection gets unless the server says otherwise
#: (uvicorn's defaults: 16 MiB messages, a ping every 20 s, 32 queued)
WS_DEFAULTS: Mapping[str, Any] = {"max_size": 16 * 1024 * 1024, "ping_interval": 20.0,
                                  "ping_timeout": 20.0, "max_queue": 32,
                                  "per_message_deflate": True, "deflate_options": {}}
# The engine writes these into the 101 itself.
_OWN_HEADERS = frozenset((b"upgrade", b"connection", b"sec-websocket-accept",
                          b"sec-websocket-protocol", b"sec-websocket-extensions",
                          b"content-length", b"transfer-encoding"))

# What the loop asks of the handler thread.
_ACCEPT, _DENY, _RESPOND, _DONE = range(4)
# The connection as the app sees it.
_CONNECTING, _OPEN, _CLOSED = range(3)


class ClientDisconnected(ConnectionError):
    """A send on a WebSocket that is closed (ASGI spec 2.4: an OSError)."""


def _subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    out: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            out += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
    return out


def _ws_scope(scope: Scope) -> Scope:
    """The websocket scope of the upgrade request whose http scope is scope."""
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    scope["subprotocols"] = _subprotocols(scope["headers"])
    scope["extensions"] = {"websocket.http.response": {}}
    return scope


class _WebSocketCycle(AppTask):
    """The app's side (loop thread), the handler's side (worker thread, until
    the answer to the handshake) and the engine's callbacks (worker thread,
    once open) of one WebSocket."""

    __slots__ = ("body", "connect_given", "disconnect", "head", "inbox", "request", "scope",
                 "settings", "state", "ws")

    def __init__(self, settings: Settings, request: Any, scope: Scope,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.settings = settings
        self.request = request
        self.scope = scope
        self.state = _CONNECTING
        self.connect_given = False
        self.head: tuple[int, list[tuple[str, str]], str | None, int | None] | None = None
        self.body: list[bytes] = []
        self.ws: Any = None
        # the engine's callback to the app's receive(), at most max_queue unread
        self.inbox = Inbox(loop, int(settings.ws_options.get("max_queue",
                                                             WS_DEFAULTS["max_queue"])))
        self.disconnect: Message | None = None  # once the connection is over

    def _where(self) -> str:
        return f"websocket {self.scope['path']}"

    # ---- the loop's side ---------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.settings.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self.cancelled:
                _log.error("ASGI app %s: cancelled", self._where())
            self._fail()
        except GeneratorExit:  # its loop closed with the engine: not the app's error
            self._fail()
            raise
        except BaseException:
            if self.state == _CONNECTING:
                _log.exception("Exception in ASGI application (%s) before it accepted: 500",
                               self._where())
            else:
                _log.exception("Exception in ASGI application (%s): closed with 1011",
                               self._where())
            self._fail()
        else:
            if self.state == _CONNECTING and not self.cancelled and self.disconnect is None:
                _log.error("ASGI app %s returned without accepting or closing: 500",
                           self._where())
            elif self.state == _OPEN:
                self._close(1000, "")  # the app is over: so is its WebSocket
        finally:
            self.inbox.stop()
            self._ask(_DONE, None)

    def _fail(self) -> None:
        if self.state == _OPEN:
            self._close(1011, "")

    def _close(self, code: int, reason: str) -> None:
        self.state = _CLOSED
        try:
            self.ws.close(code, reason)
        except ConnectionError:
            pass

    async def receive(self) -> Message:
        if not self.connect_given:
            self.connect_given = True
            return {"type": "websocket.connect"}
        if self.disconnect is not None and self.inbox.empty():
            return self.disconnect  # asked again: the same answer
        message: Message = await self.inbox.get()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            if self.state == _CONNECTING:
                raise RuntimeError("ASGI: websocket.send before websocket.accept")
            if self.state != _OPEN:
                raise ClientDisconnected(f"{self._where()}: the WebSocket is closed")
            data = message.get("bytes")
            payload = data if data is not None else message.get("text")
            if payload is None:
                raise ValueError("ASGI: websocket.send without bytes or text")
            await self._send(payload)
        elif kind == "websocket.accept":
            if self.state != _CONNECTING or self.head is not None:
                raise RuntimeError("ASGI: websocket.accept out of place")
            await self._accept(message)
        elif kind == "websocket.close":
            if self.state == _CONNECTING and self.head is None:
                self.state = _CLOSED
                self._ask(_DENY, None)
            elif self.state == _OPEN:
                self._close(int(message.get("code", 1000)), str(message.get("reason") or ""))
            # else: closed already, nothing to do
        elif kind == "websocket.http.response.start":
            if self.state != _CONNECTING or self.head is not None:
                raise RuntimeError("ASGI: websocket.http.response.start out of place")
            self.head = _response_head(message)
        elif kind == "websocket.http.response.body":
            if self.head is None or self.state != _CONNECTING:
                raise RuntimeError("ASGI: websocket.http.response.body out of place")
            self.body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.state = _CLOSED
                self._ask(_RESPOND, b"".join(self.body))
        else:
            raise RuntimeError(f"ASGI: unexpected message {kind!r} on a websocket scope")

    async def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        headers: list[tuple[bytes, bytes]] = []
        for name, value in message.get("headers") or ():
            name = bytes(name).lower()
            if name == b"sec-websocket-protocol" and subprotocol is None:
                subprotocol = bytes(value).decode("latin-1").strip()
            elif name not in _OWN_HEADERS:
                headers.append((name, bytes(value)))
        fut = self.loop.create_future()
        if self.disconnect is not None or not self._ask(_ACCEPT, (subprotocol, headers, fut)):
            self.state = _CLOSED
            raise ClientDisconnected(f"{self._where()}: the client went away")
        self.ws = await fut
        self.state = _OPEN

    async def _send(self, payload: Any) -> None:
        if not await send_when_writable(self.loop, self.ws, payload):
            self.state = _CLOSED
            raise ClientDisconnected(f"{self._where()}: the WebSocket is closed")

    def _gone(self, code: int, reason: str) -> None:  # on the loop
        if self.disconnect is not None:
            return
        if self.state == _OPEN:
            self.state = _CLOSED
        self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self.inbox.put_last(self.disconnect)

    # ---- the engine's callbacks (the worker's thread, released) -------------------

    def _on_message(self, ws: Any, message: str | bytes) -> None:
        event: Message = ({"type": "websocket.receive", "text": message}
                          if isinstance(message, str)
                          else {"type": "websocket.receive", "bytes": message})
        self.inbox.put(event, lambda: self.task)

    def _on_close(self, ws: Any, code: int, reason: str) -> None:
        self.inbox.stop()
        self.loop.call_soon_threadsafe(self._gone, code, reason or "")

    # ---- the handler's side (the worker's thread) ---------------------------------

    def serve(self) -> Any:
        """Serve the app's answer to the handshake; the handler's result."""
        deadline = time.monotonic() + self.settings.response_timeout
        gone = False
        if self.cmds.empty():  # the app waits on something: the worker goes on meanwhile
            _loops.handing_over(self.loop)
        while True:
            try:
                left = deadline - time.monotonic()
                what, arg = self.cmds.get(timeout=max(0.0, min(left, _POLL)))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    _log.error("ASGI app %s neither accepted nor refused in %g s: 500, and "
                               "the app cancelled", self._where(),
                               self.settings.response_timeout)
                    self.loop.call_soon_threadsafe(self.cancel)
                    return self._leave(_error_response())
                if not gone and _core.asgi_client_gone(self.request):
                    gone = True
                    self.loop.call_soon_threadsafe(self._gone, 1006, "")
                continue
            if what == _ACCEPT:
                return self._leave(self._accept_now(*arg))
            if what == _DENY:
                return self._leave(Response(b"", 403, "text/plain; charset=utf-8"))
            if what == _RESPOND:
                return self._leave(self._whole(arg))
            return self._leave(_error_response())  # _DONE: the app ended first

    def _accept_now(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]],
                    fut: asyncio.Future[Any]) -> Any:
        opts = {**WS_DEFAULTS, **self.settings.ws_options}
        try:
            ws = _core.ws_accept(self.request, self._on_message, self._on_close,
                                 subprotocol=subprotocol, headers=headers,
                                 max_message=int(opts["max_size"]),
                                 ping_interval=float(opts["ping_interval"] or 0.0),
                                 ping_timeout=float(opts["ping_timeout"] or 0.0),
                                 deflate=deflate_setting(
                                     "deflate" if opts["per_message_deflate"] else None,
                                     opts["deflate_options"]))
        except ConnectionError as e:
            self._reply(fut, None, ClientDisconnected(str(e)))
            return _error_response()
        except Exception as e:  # a subprotocol or header the handshake cannot carry
            self._reply(fut, None, e)
            return _error_response()
        self._reply(fut, ws, None)
        return None  # the 101 is the answer

    def _reply(self, fut: asyncio.Future[Any], ws: Any, error: BaseException | None) -> None:
        def settle() -> None:
            if fut.done():  # the app was cancelled meanwhile: nobody will use it
                if ws is not None:
                    ws.close(1011, "")
            elif error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(ws)
        self.loop.call_soon_threadsafe(settle)

    def _whole(self, body: bytes) -> Any:
        assert self.head is not None
        status, pairs, ctype, length = self.head
        if length is not None and length != len(body):
            _log.error("ASGI app %s: its Content-Length is %d but its body has %d bytes: 500",
                       self._where(), length, len(body))
            return _error_response()
        return Response(body, status, ctype, pairs)

    def _leave(self, result: Any) -> Any:
        """The handler returns result: what the app asks later is refused."""
        with self.lock:
            self.answered = True
        self.request = None  # its exchange is over: nothing of it held while open
        while not self.cmds.empty():  # this thread is its only reader
            what, arg = self.cmds.get_nowait()
            if what == _ACCEPT:
                self._reply(arg[2], None, ClientDisconnected("the request was answered"))
        return result


def handle_websocket(settings: Settings, request: Any, scope: Scope) -> Any:
    """Run the ASGI app for the WebSocket upgrade request (its http scope
    made); called from the HTTP handler on its worker."""
    refusal = _core.ws_refusal(request)
    if refusal is not None:  # not a valid upgrade: the app never sees it
        status, headers = refusal
        return Response(f"{status} not a valid WebSocket upgrade\n".encode(), status,
                        "text/plain; charset=utf-8", list(headers.items()))
    loop = _loops.worker_loop()
    cycle = _WebSocketCycle(settings, request, _ws_scope(scope), loop)
    _loops.start(loop, cycle.begin)
    return cycle.serve()
