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
bool/None -> JSON, :class:`Response` for full control, ``self.sendfile(...)``.

Directories are served by :class:`StaticFiles` (see :mod:`pyparallel.http.static`)::

    class Site(HttpServer):
        files = route("/*", methods=("GET", "HEAD"))(StaticFiles("/srv/www"))
"""

from ._app import HttpServer, route
from ._connection import HttpConnection, HttpListener
from ._original import html_response, json_serialization, text_response
from ._ranges import InvalidRangeRequest, RangedRequest
from ._response import HttpError, Response
from .monitor import mount_stats
from .static import StaticFiles, send_file

__all__ = [
    "HttpConnection",
    "HttpError",
    "HttpListener",
    "HttpServer",
    "InvalidRangeRequest",
    "RangedRequest",
    "Response",
    "StaticFiles",
    "html_response",
    "json_serialization",
    "mount_stats",
    "route",
    "send_file",
    "text_response",
]
