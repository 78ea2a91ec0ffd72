"""WSGI pieces beyond the common path: a reason phrase of the app's own, write()
from a thread the app started, a slow generator consumed on the thread that
runs a handed-off request, a chunked request body read by Flask."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

TEXT = [("Content-Type", "text/plain")]


def slow_items(idents: list[int]) -> Iterator[bytes]:
    for i in range(4):
        idents.append(threading.get_ident())
        time.sleep(0.25)  # a slow producer: must not hold the worker
        yield b"item %d;" % i


def app(environ: dict[str, Any], start: Callable[..., Any]) -> Any:
    path = environ["PATH_INFO"]
    if path == "/reason":
        body = b"super"
        start("200 Super", [*TEXT, ("Content-Length", str(len(body)))])
        return [body]
    if path == "/reason-streamed":
        start("299 Streamed Along", TEXT)
        return (b"part %d;" % i for i in range(3))
    if path == "/reason-head":
        start("404 Nowhere To Be Found", [*TEXT, ("Content-Length", "0")])
        return [b""]
    if path == "/write-thread":
        write = start("200 OK", TEXT)

        def writer() -> None:
            for i in range(5):
                write(b"w%d;" % i)

        t = threading.Thread(target=writer)
        t.start()
        t.join()
        return [b"iterable;"]
    if path == "/slow-gen":
        # blocks first (the request is handed off), then a slow generator
        time.sleep(0.1 if environ["QUERY_STRING"] == "block" else 0)
        idents: list[int] = [threading.get_ident()]
        start("200 OK", TEXT)

        def gen() -> Iterator[bytes]:
            yield from slow_items(idents)
            yield b"same thread" if len(set(idents)) == 1 else b"other thread"

        return gen()
    if path == "/fast":
        start("200 OK", [*TEXT, ("Content-Length", "4")])
        return [b"fast"]
    if path == "/chunked-upload":
        has_length = "CONTENT_LENGTH" in environ
        chunks = []
        while chunk := environ["wsgi.input"].read(65536):  # validate wants a size
            chunks.append(chunk)
        data = b"".join(chunks)
        body = b"length=%d;%s" % (has_length, data)
        start("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
        return [body]
    start("404 Not Found", [*TEXT, ("Content-Length", "0")])
    return [b""]


validated = validator(app)


def flask_app() -> Any:
    from flask import Flask, request

    f = Flask(__name__)

    @f.post("/upload")
    def upload() -> Any:
        data = request.get_data()
        return {"length_header": request.environ.get("CONTENT_LENGTH"), "size": len(data),
                "head": data[:16].decode(), "tail": data[-16:].decode()}

    return f
