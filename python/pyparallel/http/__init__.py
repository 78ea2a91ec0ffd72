"""HTTP/1.1 serving: framing, limits and static routes in C; handlers in Python.

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

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote

import pyparallel as px
from pyparallel import sharing as _sharing

__all__ = ["HttpServer", "route", "Response", "HttpError", "StaticFiles", "send_file",
           "mount_stats"]

_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"


class HttpError(Exception):
    """Raise in a handler to answer with this status."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


class Response:
    """A response with full control of status, headers and body."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, body: Any = b"", status: int = 200, content_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def route(path: str | None = None, *, methods: tuple[str, ...] = ("GET", "HEAD", "POST"),
          static: tuple[str, bytes] | None = None) -> Callable[[Callable], Callable]:
    """Mark a method as the handler of ``path`` (default: ``/`` + its name).

    ``{name}`` segments become keyword arguments; a path ending in ``/*`` is a
    prefix route whose remainder is passed as ``rest``. A handler object with a
    ``__px_mount__(path)`` method (a :class:`StaticFiles`) is told its path.
    """
    def mark(func: Callable) -> Callable:
        func.__px_route__ = (path or "/" + func.__name__, tuple(m.upper() for m in methods))
        mount = getattr(func, "__px_mount__", None)
        if mount is not None:
            mount(func.__px_route__[0])
        return func
    return mark




_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _method_route(cls: type, name: str, func: Any) -> bool:
    return (not name.startswith("_") and callable(func) and not isinstance(func, type)
            and not hasattr(HttpServer, name)
            and any(name in vars(k) for k in cls.__mro__ if k is not object))


class _Router:
    def __init__(self, cls: type) -> None:
        self.exact: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.patterns: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = []
        self.prefixes: list[tuple[str, str, tuple[str, ...]]] = []
        for name in dir(cls):
            func = getattr(cls, name, None)
            spec = getattr(func, "__px_route__", None)
            if spec is None and _method_route(cls, name, func):
                # PyParallel-style: a public method of the subclass answers /name.
                spec = ("/" + name, ("GET", "HEAD"))
            if spec is None:
                continue
            path, methods = spec
            if path.endswith("/*"):
                self.prefixes.append((path[:-1], name, methods))
            elif "{" in path:
                rx = "^" + _PARAM.sub(r"(?P<\1>[^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
                self.patterns.append((re.compile(rx), name, methods))
            else:
                self.exact[path] = (name, methods)
        self.prefixes.sort(key=lambda p: -len(p[0]))

    def match(self, path: str) -> tuple[str, tuple[str, ...], dict[str, str]] | None:
        hit = self.exact.get(path)
        if hit:
            return hit[0], hit[1], {}
        for rx, name, methods in self.patterns:
            m = rx.match(path)
            if m:
                return name, methods, {k: unquote(v) for k, v in m.groupdict().items()}
        for prefix, name, methods in self.prefixes:
            if path.startswith(prefix):
                return name, methods, {"rest": unquote(path[len(prefix):])}
        return None


class HttpServer:
    """Base class of HTTP applications: one instance serves every connection."""

    #: {path: (content_type, body)} answered in C without entering Python.
    static_routes: dict[str, tuple[str, bytes]] = {}
    server_name = "pyparallel"
    limits: dict[str, Any] = {}
    #: called by the JSON encoder for objects it cannot encode
    json_default: Callable[[Any], Any] | None = None

    _router: _Router | None = None

    def __init__(self) -> None:
        cls = type(self)
        if cls.__dict__.get("_router") is None:
            cls._router = _Router(cls)

    # -- helpers for handlers ------------------------------------------------
    def error(self, request: Any, status: int, message: str = "") -> Response:
        text = message or f"{status}"
        return Response(text + "\n", status=status, content_type=_TEXT)

    def redirect(self, request: Any, location: str, status: int = 302) -> Response:
        return Response(b"", status=status, headers={"Location": location})

    def sendfile(self, request: Any, path: str | os.PathLike[str],
                 range: tuple[int, int | None] | None = None,
                 content_type: str | None = None) -> Response:
        """Answer with a file, sent by the kernel (never read into memory).

        ``range=(start, stop)`` (stop exclusive; None: to the end) answers with
        that part of the file: 206 with its ``Content-Range``, or 416 when it
        is empty or past the end. Without it the request's own ``Range`` (one
        range: 206; unsatisfiable: 416; several: the whole file), ``If-Range``
        and conditional headers are honoured, with ``ETag`` and
        ``Last-Modified`` as :class:`StaticFiles` sends them. content_type:
        guessed from the name when None. A missing file is a 404.
        """
        return send_file(request, path, range=range, content_type=content_type)

    def _exact_routes(self) -> dict[str, tuple[Callable, tuple[str, ...]]]:
        """Routes the engine matches in C: {path: (bound handler, methods)}."""
        return {path: (getattr(self, name), methods)
                for path, (name, methods) in self._router.exact.items()}  # type: ignore[union-attr]

    # -- dispatch --------------------------------------------------------------
    def __call__(self, request: Any) -> Any:
        """Route one request; the engine turns the result into a response."""
        try:
            hit = self._router.match(request.path)  # type: ignore[union-attr]
            if hit is None:
                return self.error(request, 404, "404 Not Found")
            name, methods, params = hit
            if request.method not in methods:
                return Response(b"405 Method Not Allowed\n", 405, _TEXT,
                                {"Allow": ", ".join(methods)})
            if request.query:
                for k, v in parse_qsl(request.query, keep_blank_values=True):
                    params.setdefault(k, v)
            return getattr(self, name)(request, **params)
        except HttpError as e:
            return self._http_error(request, e)

    def _http_error(self, request: Any, e: HttpError) -> Response:
        """The answer to an HttpError raised by any handler (also the C-routed ones)."""
        return self.error(request, e.status, e.message or str(e.status))

    @classmethod
    def __px_listen__(cls, engine: Any, host: str, port: int, fd: int) -> int:
        """Attach this app to a server endpoint (:func:`pyparallel.register`
        calls it): one instance answers every request, routed in C where the
        route is exact; it is shared too when the engine is not serving yet
        and the class was registered with sharing. The engine owns ``fd``
        once this returns; the bound port is returned."""
        app = cls()
        routes = app._exact_routes()
        if not engine.started and _sharing._wants_sharing(cls):
            _sharing.share(app, routes)  # the one instance every request uses
        port = engine.listen_http(host, port, app, dict(cls.static_routes),
                                  server_name=cls.server_name, response_type=Response,
                                  json_default=cls.json_default, routes=routes,
                                  fd=fd, error_type=HttpError, **cls.limits)
        return int(port)

    @classmethod
    def serve(cls, host: str = "127.0.0.1", port: int = 8080, workers: int | None = None) -> None:
        """Listen on host:port and serve on all workers until stopped."""
        px.register(transport=px.server(host, port), protocol=cls)
        px.run(workers=workers)


# the static module needs Response, defined above
from .static import StaticFiles, send_file  # noqa: E402
from .monitor import mount_stats  # noqa: E402
