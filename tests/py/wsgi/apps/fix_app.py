"""Edges of the WSGI response path: a HEAD or 304 answered with the app's
Content-Length and no body, a streamed head the engine refuses, a file
wrapper over a file already partly read through Python's buffer."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

TEXT = [("Content-Type", "text/plain")]


def app(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/head-length":  # an app that knows the length and skips the body of a HEAD
        start("200 OK", TEXT + [("Content-Length", query)])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"x" * int(query)]
    if path == "/not-modified":
        start("304 Not Modified", [("ETag", '"v1"'), ("Content-Length", query)])
        return []
    if path == "/long-type-streamed":  # no length: streamed; a head the engine cannot build
        start("200 OK", [("Content-Type", "text/plain; x=" + "a" * 4000)])
        return iter([b"never", b" sent"])
    if path == "/file-read":  # k bytes read through the buffer, then the rest sent
        f = open(os.environ["FIX_APP_FILE"], "rb")  # noqa: SIM115 (closed by the wrapper)
        skip, _, length = query.partition(",")
        f.read(int(skip))
        headers = TEXT + ([("Content-Length", length)] if length else [])
        start("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 4096)
    start("404 Not Found", TEXT)
    return [b"not found"]
