"""An application that answers with its environ, for the tests of environs
made as copies of a thread's template (tests/py/wsgi/test_wsgi_environ_template.py):
served as ``template_app:app`` and wrapped in wsgiref.validate as
``template_app:validated``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from wsgiref.validate import validator

StartResponse = Callable[..., Any]
previous: dict[str, Any] = {}  # the last request's HTTP_HOST, for the sharing test


def app(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
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
