"""HttpServers written as the original PyParallel's: bare @route, the rest of
the path as an argument, the response helpers, request.transport and
request.range; one app shared by every connection (port "shared") and one
with per_connection = True (port "per").

    python original_app.py --file PATH [--workers K]

Routes (both ports): /set_name/NAME, /name, /args/... (args and query as
JSON), /need/PART (no /need alone), /text, /text2, /json, /json2, /html,
/transport, /alive (per-connection instances alive), /file (sendfile of
--file, honouring request.range), /setrange/SPEC (request.range set to
RangedRequest(SPEC), then sendfile), /release (lets a waiting SlowInit go).

Port "slowinit": per_connection, whose __init__ (made by a connection's first
request) waits for /release on another connection; /waited tells whether it
was released rather than timed out.
"""

from __future__ import annotations

import sys
import threading

from _common import int_arg, serve

from pyparallel.http import (
    HttpServer,
    RangedRequest,
    html_response,
    json_serialization,
    route,
    text_response,
)

FILE = sys.argv[sys.argv.index("--file") + 1]
# instances alive, by class name (made on workers, dropped on close: a lock
# rather than a WeakSet, whose iteration is not safe against other threads)
ALIVE: dict[str, int] = {}
ALIVE_LOCK = threading.Lock()
# a SlowInit made for a connection waits for this (its class's own instance,
# made at listen time, does not)
RELEASE = threading.Event()


def count(name: str, delta: int) -> None:
    with ALIVE_LOCK:
        ALIVE[name] = ALIVE.get(name, 0) + delta


class Shared(HttpServer):
    who = None

    def __init__(self) -> None:
        super().__init__()
        count(type(self).__name__, 1)

    def __del__(self) -> None:
        count(type(self).__name__, -1)

    @route
    def set_name(self, request, name):
        self.who = name
        return text_response(request, "ok")

    @route
    def name(self, request):
        return json_serialization(request, {"name": self.who})

    @route
    def args(self, request, *args, **kwds):
        return json_serialization(request, {"args": args, "kwds": kwds})

    @route
    def need(self, request, part):
        return text_response(request, part)

    @route
    def text(self, request):
        return text_response(request)

    @route
    def text2(self, request):
        request.response.headers["X-Extra"] = "1"
        return text_response(request, "two")

    @route
    def json(self, request):
        return json_serialization(request)

    @route
    def json2(self, request):
        return json_serialization(request, ["a", 1, None])

    @route
    def html(self, request):
        return html_response(request, "<p>hi</p>")

    @route
    def transport(self, request):
        t = request.transport
        return json_serialization(request, {
            "fd": t.fileno(), "elapsed": t.elapsed(), "parent_port": t.parent.port,
            "own_app": t.app is self, "same": t is request.transport,
            "data": request.data.decode("latin-1"), "command": request.command})

    @route
    def alive(self, request):
        with ALIVE_LOCK:
            alive = ALIVE.get(type(self).__name__, 0)
        return json_serialization(request, {"alive": alive})

    @route
    def file(self, request):
        return self.sendfile(request, FILE)

    @route
    def plainfile(self, request):
        """sendfile with neither request.range nor .response made: X-Made
        tells which sendfile made."""
        answer = self.sendfile(request, FILE)
        made = [name for name in ("range", "response")
                if getattr(request, f"_{name}_if_set") is not None]
        answer.headers["X-Made"] = ",".join(made) or "none"
        return answer

    @route
    def setrange(self, request, spec):
        request.range = RangedRequest(spec)
        request.response.content_type = "text/x-part"
        return self.sendfile(request, FILE)


    @route
    def race(self, request):
        """Threads reading request.transport/response/range at once: each
        field must be made once, every thread seeing the same object."""
        barrier = threading.Barrier(6)
        seen: list[tuple[object, object, object]] = []

        def read() -> None:
            barrier.wait()
            seen.append((request.transport, request.response, request.range))

        threads = [threading.Thread(target=read) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        same = all(all(a is b for a, b in zip(fields, seen[0], strict=True)) for fields in seen)
        return json_serialization(request, {"same": same, "n": len(seen)})

    @route
    def release(self, request):
        RELEASE.set()
        return text_response(request, "released")


class PerConnection(Shared):
    per_connection = True


class SlowInit(PerConnection):
    """A blocking __init__ (a database connection, say): the worker must be
    handed off while it runs, or /release could never be answered."""
    made = 0

    def __init__(self) -> None:
        super().__init__()
        SlowInit.made += 1
        self.released = SlowInit.made == 1 or RELEASE.wait(10.0)

    @route
    def waited(self, request):
        return json_serialization(request, {"released": self.released})


if __name__ == "__main__":
    serve("original_app", {"shared": Shared, "per": PerConnection, "slowinit": SlowInit},
          workers=int_arg("--workers", 2))
