"""Streamed WSGI responses: bodies without a length, write(), a large body
behind a slow reader, a client that leaves, lengths not kept."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

TEXT = [("Content-Type", "text/plain")]
CHUNK = b"x" * 65536
MIB = 1 << 20

closes = {"count": 0}
_lock = threading.Lock()
released = threading.Event()


class Forever:
    """Chunks until the client goes; close() counted."""

    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield CHUNK

    def close(self) -> None:
        with _lock:
            closes["count"] += 1


def app(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/chunked":
        start("200 OK", TEXT)
        return (b"piece %d;" % i for i in range(10))
    if path == "/write-early":
        write = start("200 OK", TEXT)
        write(b"early;")
        released.wait(30)  # until /release: the bytes above must be out already
        released.clear()
        return [b"late"]
    if path == "/release":
        released.set()
        start("200 OK", TEXT)
        return [b"released"]
    if path == "/big":
        start("200 OK", TEXT)
        return (CHUNK for _ in range(int(query) * MIB // len(CHUNK)))
    if path == "/forever":
        start("200 OK", TEXT)
        return Forever()
    if path == "/close-count":
        start("200 OK", TEXT)
        with _lock:
            return [str(closes["count"]).encode()]
    if path == "/length":  # declared, actual (MiB)
        declared, actual = (int(x) for x in query.split(","))
        start("200 OK", TEXT + [("Content-Length", str(declared * MIB))])
        return (CHUNK for _ in range(actual * MIB // len(CHUNK)))
    start("404 Not Found", TEXT)
    return [b"not found"]


validated = validator(app)  # the same app checked by wsgiref.validate
