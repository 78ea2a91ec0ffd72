"""``request.transport``: the connection a request came on, kept from its
first use until it closes; with ``per_connection = True`` it holds the
connection's own app instance."""

from __future__ import annotations

import time
from typing import Any

__all__ = ["HttpConnection", "HttpListener"]


class HttpListener:
    """``request.transport.parent``: the listening socket of the server
    (``fileno()`` for :func:`pyparallel.socket_stats`, ``host``, ``port``)."""

    __slots__ = ("_fd", "host", "port")

    def __init__(self, fd: int, host: str, port: int) -> None:
        self._fd = fd
        self.host = host
        self.port = port

    def fileno(self) -> int:
        return self._fd

    def __repr__(self) -> str:
        return f"<HttpListener {self.host}:{self.port}>"


class HttpConnection:
    """One client connection of an HttpServer.

    ``app``: the connection's own instance when the class sets
    ``per_connection = True`` (None otherwise); ``parent``: the
    :class:`HttpListener`; ``fileno()``: the socket (for
    :func:`pyparallel.socket_stats`; do not read or write it, the server owns
    it); ``elapsed()``: seconds since the connection's first use of this
    object (its first request with ``per_connection``)."""

    __slots__ = ("app", "parent", "_fd", "_born", "__weakref__")

    def __init__(self, fd: int, app: Any, parent: HttpListener | None) -> None:
        self._fd = fd
        self.app = app
        self.parent = parent
        self._born = time.monotonic()

    def fileno(self) -> int:
        return self._fd

    def elapsed(self) -> float:
        return time.monotonic() - self._born

    def __repr__(self) -> str:
        return f"<HttpConnection fd={self._fd}>"
