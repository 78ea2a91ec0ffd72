"""An application that answers with its environ, for the tests of environs
made as copies of a thread's template (tests/py/wsgi/test_wsgi_environ_template.py):
served as ``template_app:app`` and wrapped in wsgiref.validate as
``template_app:validated``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote
from wsgiref.validate import validator

StartResponse = Callable[..., Any]
previous: dict[str, Any] = {}  # the last request's HTTP_HOST, for the sharing test
kept: dict[str, Any] = {}  # a start_response and a write() kept past their request


def _stale(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    """/keep keeps its start_response and write(); /stale calls them in a
    later request: each fails, and this request's own answer is whole."""
    if environ["PATH_INFO"] == "/keep":
        kept["start"] = start
        kept["write"] = start("200 OK", [("Content-Type", "text/plain")])
        return [b"kept"]
    errors = []
    for name, call in (("write", lambda: kept["write"](b"intruder")),
                       ("start", lambda: kept["start"]("200 OK", [("Content-Type", "text/plain")]))):
        try:
            call()
            errors.append(f"{name}: no error")
        except RuntimeError as e:
            errors.append(f"{name}: {e}")
    write = start("200 OK", [("Content-Type", "text/plain")])
    write(b"own:")
    return ["|".join(errors).encode()]


CT, CL, CONN, CUSTOM, BAD = "Content-Type", "content-LENGTH", "Connection", "X-Custom", "Bad Name"
HEADER_SETS = {  # the same name objects every request: the server keeps what each is
    "plain": [(CT, "text/plain"), (CL, "5"), (CUSTOM, "yes")],
    "close": [(CT, "text/plain"), (CONN, "Close"), (CUSTOM, "closing")],
    "bad": [(CT, "text/plain"), (BAD, "x")],
}


def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    if environ["PATH_INFO"] == "/headers":
        start("200 OK", list(HEADER_SETS[environ["QUERY_STRING"]]))
        return [b"12345"]
    if environ["PATH_INFO"] in ("/keep", "/stale"):
        return _stale(environ, start)
    if environ["PATH_INFO"] == "/length":  # the query, decoded, as the Content-Length
        length = unquote(environ["QUERY_STRING"])
        start("200 OK", [("Content-Type", "text/plain"), ("Content-Length", length)])
        return [b"12345"]
    host = environ.get("HTTP_HOST")
    shared = host is not None and host is previous.get("host")
    previous["host"] = host
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = stream.read(length if length else -1)  # a chunked body has no length: to its end
    out: dict[str, Any] = {k: v for k, v in environ.items() if isinstance(v, str)}
    out["body"] = body.decode()
    out["host_shared"] = shared
    if environ["PATH_INFO"] == "/mutate":  # an app may change its environ: the next is whole
        for key in ("PATH_INFO", "HTTP_HOST", "SERVER_NAME", "REMOTE_PORT"):
            del environ[key]
        environ["QUERY_STRING"] = "mutated"
        environ["HTTP_X_ADDED"] = "added"
    reply = json.dumps(out).encode()
    start("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(reply)))])
    return [reply]


validated = validator(app)
