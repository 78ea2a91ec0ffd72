"""HTTP/1.1 serving: framing, limits, routing and static routes in C; handlers in Python.

::

    from pyparallel.http import HttpServer, route

    class App(HttpServer):
        @route("/json")
        def json(self, request):
            return {"message": "Hello, World!"}

        @route("/hello/{name}")
        def hello(self, request, name):
            return f"<p>Hello, {name}</p>"

    App.serve(port=8080)

Return values: bytes -> text/plain, str -> text/html, dict/list/tuple/int/float/
bool/None -> JSON, :class:`Response` for full control, ``self.sendfile(...)``;
a generator (or :class:`StreamingResponse`) is streamed as it produces, and
:func:`stream` / :class:`EventStream` give a body any thread writes to later
(see :mod:`pyparallel.http._stream`).

WebSocket routes: :func:`websocket` (see :mod:`pyparallel.http._websocket`;
``async def`` routes, with an awaitable ``receive()``: :mod:`pyparallel.http._ws_async`).

Directories are served by :class:`StaticFiles` (see :mod:`pyparallel.http.static`)::

    class Site(HttpServer):
        files = route("/*", methods=("GET", "HEAD"))(StaticFiles("/srv/www"))
"""

from ._app import HttpServer, route
from ._connection import HttpConnection, HttpListener
from ._original import html_response, json_serialization, text_response
from ._ranges import InvalidRangeRequest, RangedRequest
from ._response import HttpError, Response
from ._stream import (
                      Deferred,
                      EventStream,
                      HttpStream,
                      StreamingResponse,
                      defer,
                      format_event,
                      stream,
)
from ._websocket import WebSocket, websocket
from ._ws_async import AsyncWebSocket, WebSocketClosed
from ._ws_compression import DEFLATE_DEFAULTS
from .monitor import mount_stats
from .static import StaticFiles, send_file

__all__ = [
    "Deferred",
    "EventStream",
    "HttpConnection",
    "HttpError",
    "HttpListener",
    "HttpServer",
    "HttpStream",
    "InvalidRangeRequest",
    "RangedRequest",
    "Response",
    "StaticFiles",
    "StreamingResponse",
    "defer",
    "format_event",
    "html_response",
    "json_serialization",
    "mount_stats",
    "route",
    "send_file",
    "stream",
    "text_response",
    "websocket",
    "WebSocket",
    "AsyncWebSocket",
    "WebSocketClosed",
    "DEFLATE_DEFAULTS",
]
