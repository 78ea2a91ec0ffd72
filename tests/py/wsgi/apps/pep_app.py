"""A WSGI application exercising PEP 3333 edge by edge, one path each; the
tests serve it as ``pep_app:app`` and wrapped in wsgiref.validate as
``pep_app:validated``."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

StartResponse = Callable[..., Any]
TEXT = [("Content-Type", "text/plain")]

closed = {"count": 0}
_lock = threading.Lock()
FILE = os.environ.get("PEP_APP_FILE", "")


class Closing:
    """An iterable with close(), counted."""

    def __init__(self, chunks: list[bytes], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("iterable-failed-midway")
            yield chunk

    def close(self) -> None:
        with _lock:
            closed["count"] += 1


def _env(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    out = {k: v for k, v in environ.items() if isinstance(v, str)}
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        out[key] = environ[key]
    out["wsgi.version"] = list(environ["wsgi.version"])
    out["has_input"] = hasattr(environ["wsgi.input"], "read")
    out["has_errors"] = hasattr(environ["wsgi.errors"], "write")
    out["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    body = json.dumps(out).encode()
    start("200 OK", [("Content-Type", "application/json")])
    return [body]


def _input(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    stream = environ["wsgi.input"]
    # a chunked body has no length: read to its end (wsgi.input_terminated)
    length = int(environ.get("CONTENT_LENGTH") or -1)
    mode = environ["QUERY_STRING"]
    if mode == "read":
        result: Any = stream.read(length).decode()
    elif mode == "read3":
        result = [stream.read(3).decode(), stream.read(length).decode(), stream.read(3).decode()]
    elif mode == "readline":
        result = [stream.readline().decode(), stream.readline(2).decode(),
                  stream.readline().decode()]
    elif mode == "readlines":
        result = [line.decode() for line in stream.readlines()]
    else:
        result = [line.decode() for line in stream]
    start("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(result).encode()]


def _write(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    write = start("200 OK", TEXT)
    write(b"first,")
    write(b"second,")
    return [b"third"]


def _exc_info_before(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    start("200 OK", TEXT)
    try:
        raise ValueError("replaced")
    except ValueError:
        start("503 Service Unavailable", TEXT, sys.exc_info())
    return [b"replaced by exc_info"]


def _exc_info_after(environ: dict[str, Any], start: StartResponse) -> Iterator[bytes]:
    start("200 OK", TEXT)
    yield b"body started"
    try:
        raise KeyError("head-already-sent")
    except KeyError:
        start("500 Internal Server Error", TEXT, sys.exc_info())  # re-raises the KeyError
    yield b"never"


def _twice(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    start("200 OK", TEXT)
    start("200 OK", TEXT)
    return [b"never"]


def _file(environ: dict[str, Any], start: StartResponse) -> Any:
    f = open(FILE, "rb")  # noqa: SIM115 (the server closes it through the wrapper)
    q = environ["QUERY_STRING"]
    headers = list(TEXT)
    if q.startswith("seek="):
        f.seek(int(q[5:]))
    elif q.startswith("length="):
        headers.append(("Content-Length", q[7:]))
    start("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 4096)


def _bytesio(environ: dict[str, Any], start: StartResponse) -> Any:
    start("200 OK", TEXT)
    return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO " * 1000), 1000)


def _length(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    start("200 OK", TEXT + [("Content-Length", environ["QUERY_STRING"])])
    return [b"12345"]


def _errors(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    errors = environ["wsgi.errors"]
    errors.write("pep-app-error-line\n")
    errors.writelines(["pep-app-second-", "line\n"])
    errors.flush()
    start("200 OK", TEXT)
    return [b"logged"]


def _raise(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    raise LookupError("pep-app-handler-raised")


def _close_count(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    start("200 OK", TEXT)
    with _lock:
        return [str(closed["count"]).encode()]


def _connection_close(environ: dict[str, Any], start: StartResponse) -> list[bytes]:
    start("200 OK", TEXT + [("Connection", "close")])
    return [b"bye"]


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Any]] = {
    "/env": _env,
    "/input": _input,
    "/write": _write,
    "/exc-info-before": _exc_info_before,
    "/exc-info-after": _exc_info_after,
    "/twice": _twice,
    "/file": _file,
    "/bytesio": _bytesio,
    "/length": _length,
    "/errors": _errors,
    "/raise": _raise,
    "/close-count": _close_count,
    "/connection-close": _connection_close,
}


def app(environ: dict[str, Any], start: StartResponse) -> Any:
    path = environ["PATH_INFO"]
    if path == "/closing":
        start("200 OK", TEXT)
        return Closing([b"a", b"b", b"c"])
    if path == "/closing-fails":
        start("200 OK", TEXT)
        return Closing([b"a", b"b", b"c"], fail_at=1)
    if path == "/generator":
        start("200 OK", TEXT)
        return (b"%d," % i for i in range(5))
    handler = ROUTES.get(path)
    if handler is None:
        start("404 Not Found", TEXT)
        return [b"not found: " + path.encode("latin-1")]
    return handler(environ, start)


validated = validator(app)
