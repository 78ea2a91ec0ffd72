"""An HttpServer whose answers come later: pyparallel.http.defer answered by
another thread, and async def handlers that suspend (their answers deferred
to their tasks' ends, with no thread waiting).

    python deferred_app.py [--workers K] [--handoff-ms N]

Routes: /thread/{ms} (deferred, answered by a timer thread after ms), /drop
(deferred and dropped unanswered: 500), /twice (answered twice: the second
is refused), /gone/{ms} (answered after ms; whether the answer went is
counted at /counts), /sleep/{ms} (async: sleeps, then answers with the
thread count and the remote address), /http-error (async: HttpError 404
after an await), /raise (async: ValueError after an await), /gen (async: a
generator after an await, sent chunked), /resp (async: a Response with a
status and a header after an await), /with/{what} (deferred, answered by
another thread with respond_with: "stream" streams from the worker, "error"
raises HttpError 409 there, "raise" a ValueError), /threads, /counts, /plain.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from _common import int_arg, serve

from pyparallel.http import HttpError, HttpServer, Response, defer, route, stream

COUNTS = {"sent": 0, "refused": 0, "gone": 0}
LOCK = threading.Lock()


def count(name: str) -> None:
    with LOCK:
        COUNTS[name] += 1


def thread_count() -> int:
    """The process's threads, the engine's spares included (which the
    threading module does not know)."""
    return len(os.listdir("/proc/self/task"))


def later(ms: int, fn: Any) -> None:
    t = threading.Timer(ms / 1000, fn)
    t.daemon = True
    t.start()


class App(HttpServer):
    @route("/thread/{ms}")
    def thread(self, request: Any, ms: str) -> None:
        d = defer(request)
        later(int(ms), lambda: d.respond({"later": int(ms)}))

    @route("/drop")
    def drop(self, request: Any) -> None:
        defer(request)  # dropped at once: the engine answers 500

    @route("/twice")
    def twice(self, request: Any) -> None:
        d = defer(request)

        def both() -> None:
            first = d.respond(b"first")
            second = d.respond(b"second")
            count("sent" if first and not second else "refused")

        later(1, both)

    @route("/gone/{ms}")
    def gone(self, request: Any, ms: str) -> None:
        d = defer(request)
        later(int(ms), lambda: count("sent" if d.respond(b"late") else "refused"))

    @route("/with/{what}")
    def with_(self, request: Any, what: str) -> None:
        d = defer(request)

        def answer(req: Any) -> Any:  # on the worker, as the handler would run
            assert req is request
            if what == "error":
                raise HttpError(409, "conflict, later")
            if what == "raise":
                raise ValueError("respond_with boom")
            out = stream(req, 200, "text/plain", {"X-Streamed": "later"})
            out.write(b"streamed ")
            later(5, lambda: (out.write(b"after"), out.end()))
            return out

        later(5, lambda: d.respond_with(answer, gone=lambda: count("gone")))

    @route("/sleep/{ms}")
    async def sleep(self, request: Any, ms: str) -> dict[str, Any]:
        await asyncio.sleep(int(ms) / 1000)
        return {"threads": thread_count(), "remote": request.remote_addr[0]}

    @route("/http-error")
    async def http_error(self, request: Any) -> bytes:
        await asyncio.sleep(0.001)
        raise HttpError(404, "not here after all")

    @route("/raise")
    async def raises(self, request: Any) -> bytes:
        await asyncio.sleep(0.001)
        raise ValueError("deferred handler boom")

    @route("/gen")
    async def gen(self, request: Any) -> Any:
        await asyncio.sleep(0.001)

        def pieces() -> Any:
            yield b"one,"
            yield b"two"

        return pieces()

    @route("/resp")
    async def resp(self, request: Any) -> Response:
        await asyncio.sleep(0.001)
        return Response(b"made", status=201, headers={"X-Later": "yes"})

    @route("/threads")
    def threads(self, request: Any) -> dict[str, int]:
        return {"threads": thread_count()}

    @route("/counts")
    def counts(self, request: Any) -> dict[str, int]:
        with LOCK:
            return dict(COUNTS)

    @route("/plain")
    def plain(self, request: Any) -> bytes:
        return b"plain"


if __name__ == "__main__":
    serve("deferred", {"http": App}, workers=int_arg("--workers", 1),
          handoff_ms=int_arg("--handoff-ms", 2))
