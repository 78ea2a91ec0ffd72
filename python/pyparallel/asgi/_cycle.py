"""One HTTP request of an ASGI app: its scope, built from the request the
engine parsed, and ``receive``/``send`` over the engine's streamed bodies.

The request's handler runs on its engine worker, released (a spare thread
serves the worker's other connections, and runs its loop, while the handler
waits). It starts the app on the worker's loop (:mod:`._loops`), its first
step right there when it can, then serves what only it may do, on the app's
behalf: read the request body as it arrives and start the response. An app
that answers whole in that first step, on the handler's own thread (most of
them), hands its body over directly: no command queue and no serve() loop.
An app that awaits with no request body left to read (none, or read to its
end) is answered later (:func:`pyparallel.http.defer`): the handler returns
and no thread waits for the app, however long it awaits; the loop answers
for it. While the body is still arriving the handler stays, to read it.
Body bytes after the start are written to the engine's stream from the loop
(any thread may).

A response whose first body message is its last is sent whole, with a
Content-Length; one sent in several goes as it comes (chunked when the app
gave no Content-Length), ``send`` waiting while the client reads slower than
the app writes. A client that goes away makes ``receive`` return
``http.disconnect`` and later sends do nothing (ASGI spec 2.3).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

from pyparallel import _core
from pyparallel.asyncio._flow import until_writable
from pyparallel.http import Response
from pyparallel.http import defer as defer_response
from pyparallel.http import stream as start_stream

from . import _deadlines as deadlines
from . import _disconnects as disconnects
from . import _loops

__all__ = ["Settings", "handle"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("pyparallel.asgi")

_CHUNK = 64 * 1024  # the most one http.request message carries

# asyncio.Task(eager_start=True) where there is one (3.12)
_EAGER: dict[str, Any] = {"eager_start": True} if sys.version_info >= (3, 12) else {}

# What the loop asks of the handler thread.
_READ, _RESPOND, _FILE, _START, _DONE = range(5)


class Settings:
    """What every request of one ASGI server shares."""

    def __init__(self, app: ASGIApp, root_path: str = "", scheme_header: str | None = None,
                 state: dict[str, Any] | None = None, response_timeout: float = 60.0,
                 ws_options: Mapping[str, Any] | None = None) -> None:
        self.app = app
        self.root_path = root_path.rstrip("/")
        self.scheme_header = scheme_header.lower().encode("latin-1") if scheme_header else None
        self.state: dict[str, Any] = state if state is not None else {}
        self.response_timeout = response_timeout
        self.server: tuple[str, int] | None = None  # set once listening
        #: websocket scopes' settings over _websocket.WS_DEFAULTS
        self.ws_options: Mapping[str, Any] = dict(ws_options or {})


def _scheme(settings: Settings, headers: list[tuple[bytes, bytes]]) -> str:
    if settings.scheme_header is not None:
        for name, value in headers:
            if name == settings.scheme_header:
                first = value.split(b",", 1)[0].strip().lower()
                if first in (b"http", b"https"):
                    return first.decode()
                break
    return "http"


def _scope(settings: Settings, request: Any) -> tuple[Scope, bool]:
    method, version, raw_path, query, headers, client, has_body = _core.asgi_request(request)
    path = raw_path.decode("latin-1")
    if "%" in path:
        path = unquote(path, "utf-8", "surrogateescape")
    root = settings.root_path
    if root and not (path == root or path.startswith(root + "/")):
        # a proxy took the mount point off: the path the app sees has it (ASGI)
        path = root + path
        raw_path = root.encode("utf-8") + raw_path
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # the app may change its copy
        "http_version": version,
        "method": method,
        "scheme": "http" if settings.scheme_header is None else _scheme(settings, headers),
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root,
        "headers": headers,
        "client": client,
        "server": settings.server,
        "state": settings.state.copy(),
        "extensions": {"http.response.pathsend": {}},
    }
    return scope, has_body


# (status, header pairs, content type, Content-Length) of an
# http.response.start, the server's own framing headers taken out
_response_head = _core.asgi_response_head


class AppTask:
    """What the app's task (on the loop) and the request's handler (on its
    worker) share, for an http and a websocket scope: the task, begun eagerly,
    and the queue of what the app asks of the handler until it answers."""

    __slots__ = ("answered", "cancelled", "cmds", "lock", "loop", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cmds: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.answered = False  # the handler returned: it serves nothing more
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False

    async def run(self) -> None:
        raise NotImplementedError

    def begin(self) -> asyncio.Task[None] | None:
        if not self.cancelled:
            if _EAGER:  # the app's first steps now, not one loop pass later
                self.task = asyncio.Task(self.run(), loop=self.loop, **_EAGER)
            else:
                self.task = self.loop.create_task(self.run())
        return self.task

    def cancel(self) -> None:
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()

    def _ask(self, what: int, arg: Any) -> bool:
        """Post to the handler; False once it has answered (and left)."""
        with self.lock:
            if self.answered:
                return False
            self.cmds.put((what, arg))
            return True


class _Cycle(AppTask):
    """The app's side (loop thread) and the handler's side (worker thread)
    of one request."""

    __slots__ = ("body_more", "complete", "deadline", "deferred", "disconnected",
                 "empty_body_given", "head", "inline", "inline_body", "replied", "request",
                 "scope", "settings", "stream")

    def __init__(self, settings: Settings, request: Any, scope: Scope, has_body: bool,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.settings = settings
        self.request = request
        self.scope = scope
        self.body_more = has_body  # request body still to receive
        self.empty_body_given = False
        self.head: tuple[int, list[tuple[str, str]], str | None, int | None] | None = None
        self.stream: Any = None  # the engine's response stream once started
        self.complete = False  # the app sent its last body message
        self.disconnected = False
        # The handler's thread while it takes the app's first step (handle),
        # else 0: a whole response sent by that thread then is kept here, not
        # queued. A step a pump runs on another thread meanwhile queues as
        # usual (the handler may already be past its look at inline_body).
        self.inline = 0
        self.inline_body: bytes | None = None
        self.deadline = time.monotonic() + settings.response_timeout
        # Deferred (answer_later): the app's requests are answered from the
        # loop through it, and replied once one was.
        self.deferred: Any = None
        self.replied = False

    # ---- the loop's side ---------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.settings.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            if not self.cancelled:
                _log.error("ASGI app %s %s: cancelled", self.scope["method"], self.scope["path"])
            self._cut()
        except BaseException:
            if self.head is None or (self.stream is None and not self.complete):
                _log.exception("Exception in ASGI application (%s %s): 500",
                               self.scope["method"], self.scope["path"])
            else:
                _log.exception("Exception in ASGI application (%s %s) after the response "
                               "started: connection closed", self.scope["method"],
                               self.scope["path"])
            self._cut()
        else:
            if self.head is not None and not self.complete and not self.disconnected:
                _log.error("ASGI app %s %s returned without completing its response: "
                           "connection closed", self.scope["method"], self.scope["path"])
                self._cut()
            elif self.head is None and not self.cancelled and not self.disconnected:
                _log.error("ASGI app %s %s returned without starting a response: 500",
                           self.scope["method"], self.scope["path"])
        finally:
            if self.inline_body is None:
                self._ask(_DONE, None)

    def _cut(self) -> None:
        if self.stream is not None and not self.complete:
            self.stream.fail()  # the client sees a truncated body, never a whole one

    async def receive(self) -> Message:
        if self.body_more:
            fut = self.loop.create_future()
            if self._ask(_READ, fut):
                try:
                    data, more = await fut
                except (ConnectionError, ValueError, TimeoutError, OSError):
                    data, more = None, False
                self.body_more = more
                if data is not None:
                    return {"type": "http.request", "body": data, "more_body": more}
            self.body_more = False
            self.disconnected = True
            return {"type": "http.disconnect"}
        if not self.empty_body_given:
            self.empty_body_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Nothing more to receive: wait for the end of the response or the client.
        await disconnects.until(self._over)
        return {"type": "http.disconnect"}

    def _over(self) -> bool:
        """The response is complete or the client has gone (noted)."""
        if not self.disconnected and not self.complete and (
                (self.stream is not None and self.stream.closed) or (
                    self.stream is None and not self.replied and self.deferred is not None
                    and self.deferred.closed)):
            self.disconnected = True
        return self.disconnected or self.complete

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.head is not None:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self.head = _response_head(message)
            return
        if kind == "http.response.pathsend":
            if self.head is None or self.stream is not None or self.complete:
                raise RuntimeError("ASGI: http.response.pathsend must follow "
                                   "http.response.start alone")
            self.complete = True
            if not self._ask(_FILE, os.fspath(message["path"])):
                self.disconnected = True
            return
        if kind != "http.response.body":
            raise RuntimeError(f"ASGI: unexpected message {kind!r} on an http scope")
        if self.head is None:
            raise RuntimeError("ASGI: http.response.body before http.response.start")
        if self.complete:
            raise RuntimeError("ASGI: http.response.body after the response completed")
        body = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if self.disconnected:
            self.complete = not more
            return
        if self.stream is None:
            if not more and self.scope["method"] != "HEAD":
                self.complete = True
                if self.inline == threading.get_ident():  # the handler, in handle()
                    self.inline_body = body
                    return
                if not self._ask(_RESPOND, body):
                    self.disconnected = True
                return
            fut = self.loop.create_future()
            if not self._ask(_START, fut):
                self.disconnected = True
                return
            try:
                self.stream = await fut
            except BrokenPipeError:
                self.disconnected = True
                return
        if body:
            await self._write(body)
        if not more:
            self.complete = True
            if not self.disconnected:
                try:
                    self.stream.end()
                except BrokenPipeError:
                    self.disconnected = True

    async def _write(self, data: bytes) -> None:
        stream = self.stream
        while not self.disconnected:
            try:
                stream.write(data, block=False)
                return
            except BlockingIOError:
                # over the connection's high-water mark: wait on the loop,
                # no executor thread held while the client reads slowly
                await until_writable(lambda: stream.closed or stream.wait_writable(0))
            except BrokenPipeError:
                self.disconnected = True

    # ---- answered later: what the handler would do, done from the loop --------------

    def _ask(self, what: int, arg: Any) -> bool:
        with self.lock:
            if not self.answered:
                self.cmds.put((what, arg))
                return True
            deferred = self.deferred is not None
        return deferred and self._answer(what, arg)

    def answer_later(self) -> None:
        """The handler returns now; what the app asks is done from the loop
        (what it asked meanwhile first, in order). Only with no request body
        left to read (none, or read whole): reading it needs the handler."""
        try:
            self.deferred = defer_response(self.request)
        except ConnectionError:  # the connection is closing: nobody to answer
            self.disconnected = True
            self._leave(None)
            return
        while True:
            with self.lock:
                if self.cmds.empty():
                    self.answered = True
                    break
                what, arg = self.cmds.get_nowait()
            self._answer(what, arg)
        if not self.replied:
            deadlines.add(self.loop, id(self), self.deadline, self._deferred_timeout)
            if self.replied:  # answered from the loop meanwhile: not kept till the deadline
                deadlines.drop(self.loop, id(self))

    def _answer(self, what: int, arg: Any) -> bool:
        """Do what the app asks through the deferral; False when the client
        went away (or the app was answered already)."""
        if self.replied:
            if what == _START:
                self._reply(arg, error=BrokenPipeError("the request was answered"))
            return False
        if what == _DONE:
            if self.stream is None:  # the app gave no answer (logged): 500
                self._replied(self.deferred.respond(_error_response()))
            return True
        if what == _RESPOND:
            return self._replied(self.deferred.respond(self._whole(arg)))
        if what == _FILE:
            return self._replied(self.deferred.respond(self._file(arg)))
        fut = arg  # _START: on the worker, as the handler would (a 500 if it cannot)
        if not self._replied(self.deferred.respond_with(
                lambda request: self._start(fut) or _error_response(),
                gone=lambda: self._gone_before_start(fut))):
            self._reply(fut, error=BrokenPipeError("the client went away"))
            return False
        return True

    def _gone_before_start(self, fut: asyncio.Future[Any]) -> None:
        """The client went away before the worker could start the response:
        the app's send learns it (not left waiting for ever)."""
        try:
            self._reply(fut, error=BrokenPipeError("the client went away"))
        except RuntimeError:  # the loop is closed: the server has stopped
            pass

    def _replied(self, went: bool) -> bool:
        if not self.replied:
            self.replied = True
            deadlines.drop(self.loop, id(self))
        return went

    def _deferred_timeout(self) -> None:  # on the loop
        if not self.replied:
            _log.error("ASGI app %s %s sent no response in %g s: 500, and the app cancelled",
                       self.scope["method"], self.scope["path"], self.settings.response_timeout)
            self._replied(self.deferred.respond(_error_response()))
            self.cancel()

    # ---- the handler's side (the worker's thread) ---------------------------------

    def serve(self) -> Any:
        """Do what the app asks until the request is answered; the handler's result."""
        deadline = self.deadline
        gone = False
        if self.cmds.empty():  # the app waits on something: the worker goes on meanwhile
            _loops.handing_over(self.loop)
        while True:
            if self.cmds.empty():
                # waiting for the loop: its worker goes on at once, also after
                # an engine call of ours (a body read) took the worker back
                _core.worker_waiting()
            try:
                if self.stream is None:
                    # until the start: a look at the client now and then
                    left = deadline - time.monotonic()
                    what, arg = self.cmds.get(timeout=max(0.0, min(left, disconnects.POLL)))
                else:
                    what, arg = self.cmds.get()
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return self._timed_out()
                if not gone and _core.asgi_client_gone(self.request):
                    gone = True
                    self.loop.call_soon_threadsafe(self._client_gone)
                continue
            if what == _READ:
                whole = self._read(arg)
                if self.stream is not None and not self.body_more:
                    return self._leave(self.stream)
                if whole:  # nothing left that only the handler may do
                    return self.answer_later()
            elif what == _RESPOND:
                return self._leave(self._whole(arg))
            elif what == _FILE:
                return self._leave(self._file(arg))
            elif what == _START:
                self._start(arg)
                if self.stream is not None and not self.body_more:
                    return self._leave(self.stream)
            else:  # _DONE
                if self.stream is not None:
                    return self._leave(self.stream)
                return self._leave(_error_response())

    def _client_gone(self) -> None:  # on the loop
        self.disconnected = True

    def _reply(self, fut: asyncio.Future[Any], result: Any = None,
               error: BaseException | None = None) -> None:
        def settle() -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)
        self.loop.call_soon_threadsafe(settle)

    def _read(self, fut: asyncio.Future[Any]) -> bool:
        """The next piece of the body to the app; True once it was read whole."""
        try:
            data, more = _core.asgi_body_read(self.request, _CHUNK, -1)
        except Exception as e:
            self.body_more = False
            self._reply(fut, error=e)
            return False
        self.body_more = more
        self._reply(fut, (data, more))
        return not more

    def _start(self, fut: asyncio.Future[Any]) -> Any:
        """Start the response stream (the handler's thread, or the worker
        answering a deferral); it goes to the app through fut."""
        assert self.head is not None
        status, pairs, ctype, length = self.head
        try:
            self.stream = start_stream(self.request, status, ctype, pairs, length)
        except Exception as e:
            _log.error("ASGI app %s %s: its response cannot be sent: %s", self.scope["method"],
                       self.scope["path"], e)
            self._reply(fut, error=BrokenPipeError(str(e)))
            return None
        self._reply(fut, self.stream)
        return self.stream

    def _whole(self, body: bytes) -> Any:
        assert self.head is not None
        status, pairs, ctype, length = self.head
        if length is not None and length != len(body):
            _log.error("ASGI app %s %s: its Content-Length is %d but its body has %d bytes: "
                       "500", self.scope["method"], self.scope["path"], length, len(body))
            return _error_response()
        return Response(body, status, ctype, pairs)

    def _file(self, path: str) -> Any:
        """http.response.pathsend: the file, sent by the kernel."""
        assert self.head is not None
        status, pairs, ctype, length = self.head
        try:
            size = os.stat(path).st_size
        except OSError as e:
            _log.error("ASGI app %s %s: http.response.pathsend: %s: 500", self.scope["method"],
                       self.scope["path"], e)
            return _error_response()
        if length is not None and length != size:
            _log.error("ASGI app %s %s: its Content-Length is %d but its file has %d bytes: "
                       "500", self.scope["method"], self.scope["path"], length, size)
            return _error_response()
        return Response(_core.sendfile(path, 0, size), status, ctype, pairs)

    def _timed_out(self) -> Any:
        _log.error("ASGI app %s %s sent no response in %g s: 500, and the app cancelled",
                   self.scope["method"], self.scope["path"], self.settings.response_timeout)
        self.loop.call_soon_threadsafe(self.cancel)
        return self._leave(_error_response())

    def _leave(self, result: Any) -> Any:
        """The handler returns result: what the app asks later is refused."""
        with self.lock:
            self.answered = True
        while not self.cmds.empty():  # this thread is its only reader
            what, arg = self.cmds.get_nowait()
            if what in (_READ, _START):
                self._reply(arg, error=BrokenPipeError("the request was answered"))
        return result


def _wants_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    """True when the request asks for a WebSocket (``Upgrade: websocket``)."""
    for name, value in headers:
        if name == b"upgrade":
            return b"websocket" in value.lower()
    return False


def _error_response() -> Response:
    return Response(b"Internal Server Error", 500, "text/plain; charset=utf-8")


def handle(settings: Settings, request: Any,
           websocket: Callable[[Settings, Any, Scope], Any] | None = None) -> Any:
    """Run the ASGI app for request; called as the HTTP handler on its worker.
    websocket(settings, request, http scope) serves a WebSocket upgrade."""
    scope, has_body = _scope(settings, request)
    if websocket is not None and not has_body and _wants_websocket(scope["headers"]):
        return websocket(settings, request, scope)
    loop = _loops.worker_loop()
    cycle = _Cycle(settings, request, scope, has_body, loop)
    # The app's first step, on this thread when it can claim the loop: an
    # app that answers whole there needs no queue and no serve() loop.
    cycle.inline = threading.get_ident()
    try:
        here = _loops.run_here(loop, cycle.begin)
    finally:
        cycle.inline = 0
    if not here:
        loop.call_soon_threadsafe(cycle.begin)
    elif cycle.inline_body is not None:
        return cycle._leave(cycle._whole(cycle.inline_body))
    if not cycle.body_more:
        return cycle.answer_later()
    return cycle.serve()
