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

Directories are served by :class:`StaticFiles` (see :mod:`pyparallel.http.static`)::

    class Site(HttpServer):
        files = route("/*", methods=("GET", "HEAD"))(StaticFiles("/srv/www"))
"""

from ._app import HttpServer, route
from ._response import HttpError, Response
from ._stream import EventStream, HttpStream, StreamingResponse, format_event, stream
from .monitor import mount_stats
from .static import StaticFiles, send_file

__all__ = [
    "EventStream",
    "HttpError",
    "HttpServer",
    "HttpStream",
    "Response",
    "StaticFiles",
    "StreamingResponse",
    "format_event",
    "mount_stats",
    "route",
    "send_file",
    "stream",
]
