"""Run an ASGI 3 application (FastAPI, Starlette...) on all cores, in one process.

::

    from pyparallel.asgi import serve

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Hello, World!"})

    serve(app, port=8080)

or from the command line: ``pyparallel serve module:app --interface asgi``
(found by itself for an ``async def`` callable of three parameters).

The engine parses the requests in C; the scope is built from them (``path``
decoded with ``raw_path`` beside it, headers as lower-case byte pairs in
request order, ``client``, ``server``, ``scheme`` from a trusted proxy's
header when one is named, ``root_path``, and the lifespan ``state``). The
app's coroutines run on an asyncio loop per engine worker
(:func:`pyparallel.asgi._loops.worker_loop`).

Bodies both ways are streamed: ``receive()`` gives the request body as it
arrives, at most 64 KiB a message, through a bounded buffer
(``Expect: 100-continue`` is answered at the first receive); a response sent
in one body message goes whole with its Content-Length, one in several as it
comes (chunked without a Content-Length), ``send`` waiting while the client
is slow; HEAD gets the head only; a Content-Length the app does not keep is
an error in the log and a closed connection. A client that goes away makes
``receive()`` return ``http.disconnect``. An app that raises before
``http.response.start`` is a 500 with its traceback in the log, after it a
closed connection; one that sends no response within ``response_timeout``
seconds is cancelled and answered 500. WebSocket upgrades are ``websocket``
scopes on the engine's WebSocket layer (:mod:`._websocket`: frames, limits
and pings in C; the app sees whole messages). Lifespan runs once per process
(``--lifespan auto|on|off``); a failed startup stops the server before it
listens.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any

import pyparallel as px

from . import _loops
from ._cycle import ASGIApp, Settings, handle
from ._lifespan import Lifespan, LifespanError
from ._websocket import WS_DEFAULTS, handle_websocket

__all__ = ["ASGIApp", "ASGIServer", "LifespanError", "is_asgi_app", "make_server", "serve"]

_log = logging.getLogger("pyparallel.asgi")


def is_asgi_app(obj: Any) -> bool:
    """True for an ``async def`` callable of three positional parameters
    (scope, receive, send): a function, or an object whose ``__call__`` is."""
    if isinstance(obj, type) or not callable(obj):
        return False
    # an instance runs its class's __call__ (FastAPI, Starlette)
    func = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj).__call__
    if not inspect.iscoroutinefunction(func):
        return False
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _ensure_logging() -> None:
    # The app's errors must reach somewhere when it configured no logging.
    if not logging.getLogger().handlers and not _log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)


class ASGIServer:
    """The description of one ASGI server endpoint; :func:`make_server` makes
    a subclass bound to an application, which :func:`pyparallel.register`
    attaches to a server transport like an :class:`~pyparallel.http.HttpServer`.
    """

    app: ASGIApp | None = None
    #: the mount point of the app ("" at the root): scope["root_path"]
    root_path: str = ""
    #: the header a trusted reverse proxy sets to the client's scheme
    #: (``X-Forwarded-Proto``), honoured for scope["scheme"]; None: none
    url_scheme_header: str | None = None
    #: {"/static": directory}: prefixes served by the engine's file path
    static: Mapping[str, str] = {}
    server_name: str = "pyparallel"
    #: seconds an app has to send http.response.start before it is cancelled
    #: and the client answered 500
    response_timeout: float = 60.0
    #: websocket scopes: max_size (bytes of a message), ping_interval,
    #: ping_timeout (s; 0: no pings), max_queue (messages the app has not
    #: received before the connection's next ones wait), per_message_deflate
    #: (take a client's offer; True) and deflate_options
    #: (pyparallel.http.DEFLATE_DEFAULTS); see
    #: pyparallel.asgi._websocket.WS_DEFAULTS
    websocket: Mapping[str, Any] = {}
    #: "auto", "on" or "off" (see pyparallel.asgi._lifespan)
    lifespan: str = "auto"
    #: listen_http limits and timeouts (max_body, keepalive_timeout, ...)
    limits: Mapping[str, Any] = {}
    _settings: Settings | None = None
    _lifespan: Lifespan | None = None

    @classmethod
    def settings(cls) -> Settings:
        if cls.__dict__.get("_settings") is None:
            if cls.app is None:
                raise TypeError("ASGIServer: no app (use make_server(app))")
            state = cls._lifespan.state if cls._lifespan is not None else {}
            cls._settings = Settings(cls.app, cls.root_path, cls.url_scheme_header, state,
                                     cls.response_timeout, cls.websocket)
        assert cls._settings is not None
        return cls._settings

    @classmethod
    def startup(cls) -> None:
        """Run the app's lifespan startup (once); LifespanError when it fails."""
        if cls.app is None:
            raise TypeError("ASGIServer: no app (use make_server(app))")
        _ensure_logging()
        if cls.__dict__.get("_lifespan") is None:
            cls._lifespan = Lifespan(cls.app, cls.lifespan)
            cls._lifespan.startup()

    @classmethod
    def shutdown(cls) -> None:
        """Run the app's lifespan shutdown and stop the worker loops."""
        lifespan = cls.__dict__.get("_lifespan")
        if lifespan is not None:
            lifespan.shutdown()
        _loops.stop_all()

    @classmethod
    def __px_listen__(cls, engine: Any, host: str, port: int, fd: int) -> int:
        from pyparallel.http import HttpError, Response
        from pyparallel.wsgi import WSGIServer

        _ensure_logging()
        settings = cls.settings()

        def handler(request: Any) -> Any:
            return handle(settings, request, handle_websocket)

        routes = WSGIServer.__dict__["_static_routes"].__func__(cls)
        bound = engine.listen_http(host, port, handler, None, server_name=cls.server_name,
                                   response_type=Response, routes=routes, fd=fd,
                                   error_type=HttpError,
                                   stream_bodies=True,  # receive() gets the body as it arrives
                                   **dict(cls.limits))
        settings.server = (host or "127.0.0.1", int(bound))
        return int(bound)


def make_server(app: ASGIApp, *, root_path: str = "", url_scheme_header: str | None = None,
                static: Mapping[str, str] | None = None, lifespan: str = "auto",
                response_timeout: float = 60.0, websocket: Mapping[str, Any] | None = None,
                **limits: Any) -> type[ASGIServer]:
    """An ASGIServer class serving app, for :func:`pyparallel.register`; its
    ``startup()`` runs the lifespan startup (call it before serving) and
    ``shutdown()`` the shutdown. Options as :class:`ASGIServer`'s attributes
    (``websocket``: keys of ``WS_DEFAULTS``);
    ``limits`` as :meth:`pyparallel.Engine.listen_http` takes them."""
    if not callable(app):
        raise TypeError(f"an ASGI application must be callable, not {type(app).__name__}")
    if lifespan not in ("auto", "on", "off"):
        raise ValueError(f"lifespan {lifespan!r}: auto, on or off")
    for directory in (static or {}).values():
        if not os.path.isdir(directory):
            raise NotADirectoryError(f"static: not a directory: {directory!r}")
    attrs = {
        "app": staticmethod(app) if inspect.isfunction(app) else app,
        "root_path": root_path.rstrip("/"),
        "url_scheme_header": url_scheme_header,
        "static": dict(static or {}),
        "lifespan": lifespan,
        "response_timeout": response_timeout,
        "websocket": _ws_options(websocket),
        "limits": limits,
    }
    return type("ASGIApp", (ASGIServer,), attrs)


def _ws_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    unknown = set(options or ()) - set(WS_DEFAULTS)
    if unknown:
        raise TypeError(f"websocket: unknown options {sorted(unknown)}; "
                        f"known: {sorted(WS_DEFAULTS)}")
    out = {**WS_DEFAULTS, **(options or {})}
    if out["max_size"] <= 0 or out["max_queue"] <= 0:
        raise ValueError("websocket: max_size and max_queue must be positive")
    return out


def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 8080, workers: int | None = None,
          reuse_port: bool = False, **options: Any) -> None:
    """Serve app on host:port on all workers until stopped (SIGINT, SIGTERM or
    :func:`pyparallel.shutdown`), its lifespan around; options as
    :func:`make_server`. LifespanError when its startup fails."""
    server = make_server(app, **options)
    server.startup()
    try:
        px.register(transport=px.server(host, port, reuse_port=reuse_port), protocol=server)
        px.run(workers=workers)
    finally:
        server.shutdown()
