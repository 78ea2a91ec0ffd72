"""The HttpServer base class and the route decorator: routes collected here,
compiled and matched by the engine."""


from __future__ import annotations

import functools
import inspect
import os
import stat as _stat
import types
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, overload

import pyparallel as px
from pyparallel import _core
from pyparallel import sharing as _sharing

from ._connection import HttpConnection, HttpListener
from ._ranges import RangedRequest, ranged_file_response
from ._response import HttpError, Response
from ._websocket import _upgrade_handler
from .static import (
    _file_validators,
    _if_range_holds,
    _precondition_answer,
    guess_type,
    make_etag,
    send_file,
)

__all__ = ["HttpServer", "route"]

_F = TypeVar("_F", bound=Callable[..., Any])

_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"


@overload
def route(path: _F) -> _F: ...
@overload
def route(path: str | None = None, *, methods: tuple[str, ...] = ("GET", "HEAD", "POST"),
          static: tuple[str, bytes] | None = None) -> Callable[[_F], _F]: ...
def route(path: Any = None, *, methods: tuple[str, ...] = ("GET", "HEAD", "POST"),
          static: tuple[str, bytes] | None = None) -> Any:
    """Mark a method as the handler of ``path`` (default: ``/`` + its name).

    Bare, ``@route`` without parentheses, is the original PyParallel's: the
    method answers ``/NAME`` and every path below it, the rest of the path
    (percent-decoded, without its leading ``/``) passed as the positional
    argument after the request (``def wiki(self, request, name)`` answers
    ``/wiki/Python`` with ``name="Python"``); ``/NAME`` alone is answered
    only when that argument may be left out (a default or ``*args``), paths
    below it only when the method takes one.

    Query parameters are passed as keyword arguments to a handler that
    declares them (by name, or every one with ``**kwargs``; the first value
    of a repeated name); others are left to ``request.args``, so
    ``/json?utm_source=x`` reaches ``def json(self, request)``.
    ``{name}`` parts become keyword arguments (percent-decoded; each takes one
    byte or more, never a '/', with literal text around it allowed:
    ``/f/{id}.txt``; of several in one segment, ``/{name}-{version}``, the
    earlier ones take as much as they can); a path
    ending in ``/*`` is a prefix route whose remainder is passed as ``rest``.
    Exact paths win over ``{name}`` patterns, which win over prefixes (the
    longest first). The engine matches routes in C; a known path asked with
    another method is answered 405. A handler object with a
    ``__px_mount__(path)`` method (a :class:`StaticFiles`) is told its path;
    one with ``__px_methods__`` (StaticFiles: GET and HEAD) takes only those
    of ``methods``, so that the engine answers the others 405 before their
    body arrives. A route of only GET and HEAD takes no body: one sent is
    dropped unread and the handler sees ``b""``.
    """
    if callable(path) and not isinstance(path, str):
        func = route()(path)
        func.__px_bare__ = True
        return func

    def mark(func: _F) -> _F:
        wanted = tuple(m.upper() for m in methods)
        answers = getattr(func, "__px_methods__", None)
        if answers is not None:
            wanted = tuple(m for m in wanted if m in answers)
        spec = (path or "/" + func.__name__, wanted)
        func.__px_route__ = spec  # type: ignore[attr-defined]
        mount = getattr(func, "__px_mount__", None)
        if mount is not None:
            mount(spec[0])
        return func
    return mark


def _method_route(cls: type, name: str, func: Any) -> bool:
    return (not name.startswith("_") and callable(func) and not isinstance(func, type)
            and not hasattr(HttpServer, name)
            and any(name in vars(k) for k in cls.__mro__ if k is not object))


def _class_routes(cls: type) -> list[tuple[str, str, tuple[str, ...]]]:
    """(pattern, attribute name, methods) of every route of cls, in the order
    the engine numbers them. For one pattern named twice, an exact path keeps
    the last attribute (in name order) and a pattern or prefix the first."""
    exact: dict[str, tuple[str, tuple[str, ...]]] = {}
    others: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in dir(cls):
        func = getattr(cls, name, None)
        spec = getattr(func, "__px_route__", None)
        if spec is None and _method_route(cls, name, func) and \
                not getattr(func, "__px_ws_hook__", False):
            # PyParallel-style: a public method of the subclass answers /name.
            spec = ("/" + name, ("GET", "HEAD"))
        if spec is None:
            continue
        path, methods = spec
        if func is not None and getattr(func, "__px_bare__", False):
            exact_ok, takes_rest = _rest_param(func)
            if takes_rest:
                others.setdefault(path + "/*", (name, methods))
            if not exact_ok:
                continue
        if "{" in path or path.endswith("/*"):
            others.setdefault(path, (name, methods))
        else:
            exact[path] = (name, methods)
    return ([(path, name, methods) for path, (name, methods) in exact.items()] +
            [(path, name, methods) for path, (name, methods) in others.items()])


def _rest_param(func: Callable[..., Any]) -> tuple[bool, bool]:
    """Of a bare route's function (self, request, ...): whether it may be
    called without the rest of the path, and whether it takes one."""
    try:
        params = list(inspect.signature(func).parameters.values())[2:]
    except (TypeError, ValueError):
        return True, False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params:
        return True, False
    first = params[0]
    if first.kind is inspect.Parameter.VAR_POSITIONAL:
        return True, True
    if first.kind in positional:
        return first.default is not inspect.Parameter.empty, True
    return True, False


def _rest_name(func: Callable[..., Any]) -> str | None:
    """The name of the parameter a bare route passes the rest of the path in."""
    params = list(inspect.signature(func).parameters.values())[2:]
    if params and params[0].kind is not inspect.Parameter.VAR_POSITIONAL:
        return params[0].name
    return None


def _with_rest(func: Callable[..., Any], exact_ok: bool) -> Callable[..., Any]:
    """The handler of a bare route's ``/NAME/*``: the engine's ``rest``
    passed on by position, as the original did."""
    @functools.wraps(func)
    def call(self: Any, request: Any, rest: str = "", **query: Any) -> Any:
        if rest:
            return func(self, request, rest, **query)
        if exact_ok:
            return func(self, request, **query)
        return self.error(request, 404, "404 Not Found")
    return call


def _unbound(handler: Any) -> Callable[..., Any]:
    """A handler object that is not a method, called with the instance first."""
    def call(self: Any, request: Any, *args: Any, **kw: Any) -> Any:
        return handler(request, *args, **kw)
    return call


#: what a handler takes from a query string: (the names it declares, None for
#: any name with ``**kwargs``; the names never passed: its request parameter)
_QueryParams = tuple[frozenset[str] | None, frozenset[str]]


def _query_params(handler: Callable[..., Any]) -> _QueryParams:
    """The query parameters handler accepts as keywords, found once when its
    route is registered (the engine filters the query with it per request).
    A handler whose signature cannot be read gets none (request.args has
    them all)."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return frozenset(), frozenset()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    reserved = set(_bound_names(handler))
    if params and params[0].kind in positional:
        reserved.add(params[0].name)  # the request, passed by position
        params = params[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None, frozenset(reserved)
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in params if p.kind in keyword), frozenset(reserved)


def _bound_names(handler: Callable[..., Any]) -> list[str]:
    """The name a bound method or a callable object gets its instance by
    (``self``): passed as a keyword too, it would be given twice."""
    func: Any
    if inspect.ismethod(handler):
        func = handler.__func__
    elif inspect.isfunction(handler) or inspect.isbuiltin(handler):
        return []
    else:
        func = type(handler).__call__
    try:
        first = next(iter(inspect.signature(func).parameters.values()), None)
    except (TypeError, ValueError):
        return []
    return [first.name] if first is not None else []


class HttpServer:
    """Base class of HTTP applications.

    By default one instance serves every connection: state kept on ``self``
    is shared by all clients (and, on several workers, by requests running at
    the same time). ``per_connection = True`` makes one instance per
    connection instead, as the original's protocol instances were: what a
    handler keeps on ``self`` lasts until that client disconnects and no
    other client sees it; the instance is made at the connection's first
    request and dropped when it closes."""

    #: {path: (content_type, body)} answered in C without entering Python.
    static_routes: ClassVar[dict[str, tuple[str, bytes]]] = {}
    #: the Server header (the engine's default unless a subclass sets it)
    server_name: str = _core.http_defaults()["server_name"]
    #: listen_http's limits and timeouts; absent keys keep the engine's
    #: defaults (``pyparallel._core.http_defaults()``)
    limits: ClassVar[dict[str, Any]] = {}
    #: called by the JSON encoder for objects it cannot encode
    json_default: Callable[[Any], Any] | None = None
    #: one instance per connection (True) or one for all (False)
    per_connection: ClassVar[bool] = False

    _route_specs: list[tuple[str, str, tuple[str, ...]]] | None = None

    def __init__(self) -> None:
        cls = type(self)
        if cls.__dict__.get("_route_specs") is None:
            cls._route_specs = _class_routes(cls)

    # -- helpers for handlers ------------------------------------------------
    def error(self, request: Any, status: int, message: str | None = None) -> Response:
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

        ``request.range`` set by the handler (a :class:`RangedRequest`, as
        the original's Wikipedia example does) is answered without looking at
        the request's headers (over the limits of :mod:`._ranges`, the whole
        file 200); a Range header of several ranges is answered
        206 ``multipart/byteranges``. ``request.response.content_type``, when
        set, is the content type.
        """
        # request.response and request.range only when the handler made them
        # or the client sent a Range: most calls read neither
        pending = getattr(request, "_response_if_set", None)
        if content_type is None and pending is not None:
            content_type = pending.content_type
        ranged = None
        if range is None:
            ranged = getattr(request, "_range_if_set", None)
            if ranged is None and "range" in request.headers:
                ranged = request.range
        if isinstance(ranged, RangedRequest) and (not ranged.from_header or
                                                  len(ranged.ranges) > 1):
            answer = self._send_ranges(request, os.fspath(path), ranged, content_type)
            if answer is not None:
                return answer
        return send_file(request, path, range=range, content_type=content_type)

    def _send_ranges(self, request: Any, path: str, ranged: RangedRequest,
                     content_type: str | None) -> Response | None:
        try:
            st = os.stat(path)
        except OSError:
            return None  # send_file answers 404 or 403
        if not _stat.S_ISREG(st.st_mode) or not os.access(path, os.R_OK):
            return None
        etag, mtime = make_etag(st), int(st.st_mtime)
        validators = _file_validators(etag, mtime)
        if ranged.from_header:
            # the Range header's own: the preconditions before it, as send_file
            early = _precondition_answer(request, etag, mtime, validators)
            if early is not None:
                return early
            if not _if_range_holds(request.headers, etag, mtime):
                return None
        ctype = content_type or guess_type(path)
        headers = {**validators, "Accept-Ranges": "bytes"}
        answer = ranged_file_response(request, path, ranged, ctype, st.st_size, headers)
        if answer is None and not ranged.from_header:
            # ranges set by the handler over the limits: the whole file, the
            # request's own Range never consulted (send_file would)
            return Response(px.sendfile(path, 0, st.st_size), 200, ctype, headers)
        return answer

    def _routes(self) -> list[tuple[str, Callable[..., Any], tuple[str, ...], _QueryParams]]:
        """The engine's route table: [(pattern, handler, methods, the query
        parameters it takes)], the route ids being the positions. Handlers
        are bound to this instance, or with ``per_connection`` functions the
        engine calls with the connection's instance first."""
        cls = type(self)
        routes = []
        for path, name, methods in cls._route_specs or ():
            bound = getattr(self, name)
            func = getattr(cls, name)
            query = _query_params(bound)
            handler: Callable[..., Any]
            if getattr(func, "__px_websocket__", None) is not None:
                upgrade = _upgrade_handler(func)
                handler = upgrade if cls.per_connection else types.MethodType(upgrade, self)
                query = (frozenset(), frozenset())
            elif getattr(func, "__px_bare__", False) and path.endswith("/*"):
                rest = _rest_name(func)
                if rest is not None and query[0] is not None:
                    query = (query[0] - {rest}, query[1] | {rest})
                func = _with_rest(func, _rest_param(func)[0])
                handler = func if cls.per_connection else types.MethodType(func, self)
            elif cls.per_connection:
                handler = func if isinstance(func, types.FunctionType) else _unbound(bound)
            else:
                handler = bound
            routes.append((path, handler, methods, query))
        return routes

    # -- dispatch --------------------------------------------------------------
    def __call__(self, request: Any) -> Any:
        """Answer a request whose path no route matched (the engine routes the
        others straight to their handlers): 404 through :meth:`error`."""
        return self.error(request, 404, "404 Not Found")

    def _http_error(self, request: Any, e: HttpError) -> Response:
        """The answer to an HttpError raised by any handler."""
        return self.error(request, e.status, e.message or str(e.status))

    @classmethod
    def __px_listen__(cls, engine: Any, host: str, port: int, fd: int) -> int:
        """Attach this app to a server endpoint (:func:`pyparallel.register`
        calls it): one instance answers every request, its routes compiled
        into the engine's table; it is shared first when the engine does not
        serve yet and the class was registered with sharing. The engine owns
        ``fd`` once this returns; the bound port is returned."""
        app = cls()
        routes = app._routes()
        if not engine.started and not cls.per_connection and _sharing._wants_sharing(cls):
            _sharing.share(app, routes)  # the one instance every request uses
        listener = HttpListener(fd, host, port)
        conn_factory = functools.partial(_new_connection, cls if cls.per_connection else None,
                                         listener)
        port = engine.listen_http(host, port, app, dict(cls.static_routes),
                                  server_name=cls.server_name, response_type=Response,
                                  json_default=cls.json_default, routes=routes, fd=fd,
                                  error_type=HttpError,
                                  # the default fallback is a 404 that reads no body
                                  fallback_takes_body=cls.__call__ is not HttpServer.__call__,
                                  conn_factory=conn_factory, per_connection=cls.per_connection,
                                  **cls.limits)
        listener.port = int(port)
        return int(port)

    @classmethod
    def serve(cls, host: str = "127.0.0.1", port: int = 8080, workers: int | None = None,
              reuse_port: bool = False) -> None:
        """Listen on host:port and serve on all workers until stopped; a port
        another process serves is an error unless ``reuse_port``
        (:func:`pyparallel.server`)."""
        px.register(transport=px.server(host, port, reuse_port=reuse_port), protocol=cls)
        px.run(workers=workers)




def _new_connection(cls: type[HttpServer] | None, listener: HttpListener,
                    fd: int) -> HttpConnection:
    """The context of a new connection; with per_connection its own app."""
    return HttpConnection(fd, cls() if cls is not None else None, listener)
