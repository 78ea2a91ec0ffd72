"""wsgi.input read as the body arrives: an upload counted in chunks, and a
view that answers without reading (no 100 Continue for it)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any
from wsgiref.validate import validator

TEXT = [("Content-Type", "text/plain")]


def app(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/count":
        stream, total, digest = environ["wsgi.input"], 0, hashlib.md5()
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            total += len(chunk)
            digest.update(chunk[:16])
        body = b"%d %s" % (total, digest.hexdigest().encode())
        start("200 OK", TEXT + [("Content-Length", str(len(body)))])
        return [body]
    if path in ("/read-all", "/read-pieces"):  # the CPU the app's thread spent reading
        stream, cpu0 = environ["wsgi.input"], time.thread_time()
        if path == "/read-all":
            data = stream.read()
        else:  # 1 MiB at a time, joined: linear
            pieces = []
            while piece := stream.read(1 << 20):
                pieces.append(piece)
            data = b"".join(pieces)
        body = b"%d %f" % (len(data), time.thread_time() - cpu0)
        start("200 OK", TEXT + [("Content-Length", str(len(body)))])
        return [body]
    if path == "/no-read":
        start("403 Forbidden", TEXT)
        return [b"not reading that"]
    if path == "/no-read-streamed":  # no length: streamed, chunked
        start("403 Forbidden", TEXT)
        return iter([b"not reading ", b"that"])
    start("404 Not Found", TEXT)
    return [b"not found"]


validated = validator(app)  # the same app checked by wsgiref.validate
