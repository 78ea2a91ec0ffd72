"""Run a WSGI (PEP 3333) application on all cores, in one process.

::

    from pyparallel.wsgi import serve

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, World!"]

    serve(app, port=8080)

or from the command line: ``pyparallel serve module:app``.

The environ is built in C from the request the engine parsed; the callable
runs on the worker that owns the connection, in parallel on a free-threaded
interpreter, and an app that blocks (a database call, ``time.sleep``) is
handed off so that the worker's other connections go on.

Bodies both ways are streamed: ``wsgi.input`` reads the request body as it
arrives (``Expect: 100-continue`` is answered at the first read; a chunked
body has no ``CONTENT_LENGTH`` and ``wsgi.input_terminated`` is set). A
response given as a list, or with a Content-Length up to 1 MiB, is sent whole
once its iterable is exhausted; ``write()``, and an iterable without a length
(or with a larger one), are sent as they come, chunked for HTTP/1.1 and until
the close for HTTP/1.0, waiting while the client is slow to read; a client
that goes away stops the iteration. ``close()`` is always called. A
Content-Length the app sets and does not keep is an error in the log and a
closed connection (a 500 when nothing was sent yet), never a corrupt stream.
``wsgi.file_wrapper`` bodies with a file descriptor are sent by the kernel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pyparallel as px
from pyparallel import _core
from pyparallel import sharing as _sharing

__all__ = ["ErrorStream", "FileWrapper", "WSGIApp", "WSGIServer", "make_server", "serve"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_log = logging.getLogger("pyparallel.wsgi")


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server sends with sendfile from its
    position (``tell()``) when it has a ``fileno()`` of a regular file, never
    more than the app's Content-Length when that is shorter (PEP 3333; a
    longer one than the file holds is a 500); otherwise iterated in blocks of
    ``blksize``, as any other body. ``close()`` closes the file."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class ErrorStream:
    """``wsgi.errors``: text written here goes to the ``pyparallel.wsgi``
    logger, a record per line (a partial line waits for its end or a flush)."""

    def __init__(self, logger: logging.Logger = _log) -> None:
        self._logger = logger
        self._partial: dict[int, str] = {}

    def write(self, text: str) -> int:
        import threading
        key = threading.get_ident()
        data = self._partial.pop(key, "") + text
        *lines, rest = data.split("\n")
        for line in lines:
            self._emit(line)
        if rest:
            self._partial[key] = rest
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        import threading
        rest = self._partial.pop(threading.get_ident(), "")
        if rest:
            self._emit(rest)

    def _emit(self, line: str) -> None:
        # Straight to the handlers: an app usually writes here from inside a
        # logging handler of its own (Flask's), and Logger.handle drops what
        # is logged from inside a handler on the same thread (3.13).
        logger = self._logger
        if not logger.disabled and logger.getEffectiveLevel() <= logging.ERROR:
            logger.callHandlers(logger.makeRecord(logger.name, logging.ERROR, "(wsgi.errors)", 0,
                                                  "%s", (line,), None))


def _ensure_logging() -> None:
    # wsgi.errors must reach somewhere when the app configured no logging.
    if not logging.getLogger().handlers and not _log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        _log.addHandler(handler)


class WSGIServer:
    """The description of one WSGI server endpoint; :func:`make_server`
    makes a subclass bound to an application, which :func:`pyparallel.register`
    attaches to a server transport like an :class:`~pyparallel.http.HttpServer`.
    """

    app: WSGIApp | None = None
    #: SCRIPT_NAME: the mount point of the app ("" at the root); a request
    #: path under it has it taken off for PATH_INFO
    root_path: str = ""
    #: the header a trusted reverse proxy sets to the client's scheme
    #: (``X-Forwarded-Proto``), honoured for wsgi.url_scheme; None: none
    url_scheme_header: str | None = None
    #: {"/static": directory}: prefixes served by the engine's file path
    static: Mapping[str, str] = {}
    access_log: bool = False
    server_name: str = "pyparallel"
    #: listen_http limits and timeouts (max_body, keepalive_timeout, ...)
    limits: Mapping[str, Any] = {}

    @classmethod
    def _static_routes(cls) -> list[tuple[str, Any, tuple[str, ...], Any]]:
        from pyparallel.http import StaticFiles
        from pyparallel.http._app import _query_params

        routes: list[tuple[str, Any, tuple[str, ...], Any]] = []
        for prefix, directory in cls.static.items():
            files = StaticFiles(directory)
            pattern = prefix.rstrip("/") + "/*"
            files.__px_mount__(pattern)
            routes.append((pattern, files, ("GET", "HEAD"), _query_params(files)))
        return routes

    @classmethod
    def __px_listen__(cls, engine: Any, host: str, port: int, fd: int) -> int:
        from pyparallel.http import HttpError, Response

        if cls.app is None:
            raise TypeError("WSGIServer: no app (use make_server(app))")
        _ensure_logging()
        if not engine.started and _sharing._wants_sharing(cls):
            _sharing.share(cls.app)  # the one app every request calls
        spec = {
            "app": cls.app,
            "errors": ErrorStream(),
            "file_wrapper": FileWrapper,
            "root_path": cls.root_path,
            "scheme_header": cls.url_scheme_header,
            "server_name": host or "localhost",
            "server_software": cls.server_name,
            "access_log": cls.access_log,
        }
        bound = engine.listen_http(host, port, cls.app, None, server_name=cls.server_name,
                                   response_type=Response, routes=cls._static_routes(), fd=fd,
                                   error_type=HttpError, wsgi=spec,
                                   stream_bodies=True,  # wsgi.input reads as the body arrives
                                   **dict(cls.limits))
        return int(bound)


def make_server(app: WSGIApp, *, root_path: str = "", url_scheme_header: str | None = None,
                static: Mapping[str, str] | None = None, access_log: bool = False,
                **limits: Any) -> type[WSGIServer]:
    """A WSGIServer class serving app, for :func:`pyparallel.register`.

    ``static``: ``{"/static": "/srv/static"}`` serves those directories under
    those prefixes from the engine (sendfile, validators, ranges) before the
    app. ``limits``: as :meth:`pyparallel.Engine.listen_http` takes them
    (``max_body``, ``keepalive_timeout``, ``head_timeout``, ``body_timeout``...).
    """
    if not callable(app):
        raise TypeError(f"a WSGI application must be callable, not {type(app).__name__}")
    for directory in (static or {}).values():
        if not os.path.isdir(directory):
            raise NotADirectoryError(f"static: not a directory: {directory!r}")
    attrs = {
        "app": staticmethod(app) if _is_function(app) else app,
        "root_path": root_path.rstrip("/"),
        "url_scheme_header": url_scheme_header,
        "static": dict(static or {}),
        "access_log": access_log,
        "limits": limits,
    }
    return type("WSGIApp", (WSGIServer,), attrs)


def _is_function(app: Any) -> bool:
    import types
    return isinstance(app, types.FunctionType)


def serve(app: WSGIApp, host: str = "127.0.0.1", port: int = 8080, workers: int | None = None,
          reuse_port: bool = False, **options: Any) -> None:
    """Serve app on host:port on all workers until stopped (SIGINT, SIGTERM
    or :func:`pyparallel.shutdown`); options as :func:`make_server`."""
    px.register(transport=px.server(host, port, reuse_port=reuse_port),
                protocol=make_server(app, **options))
    px.run(workers=workers)


def _access_log_take() -> tuple[bytes, int]:
    data, dropped = _core.wsgi_access_log_take()
    return bytes(data), int(dropped)
