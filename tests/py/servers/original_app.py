"""HttpServers written as the original PyParallel's: bare @route, the rest of
the path as an argument, the response helpers, request.transport and
request.range; one app shared by every connection (port "shared") and one
with per_connection = True (port "per").

    python original_app.py --file PATH [--workers K]

Routes (both ports): /set_name/NAME, /name, /args/... (args and query as
JSON), /need/PART (no /need alone), /text, /text2, /json, /json2, /html,
/transport, /alive (per-connection instances alive), /file (sendfile of
--file, honouring request.range), /setrange/SPEC (request.range set to
RangedRequest(SPEC), then sendfile).
"""

from __future__ import annotations

import sys
import threading

from _common import serve

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
    def setrange(self, request, spec):
        request.range = RangedRequest(spec)
        request.response.content_type = "text/x-part"
        return self.sendfile(request, FILE)


class PerConnection(Shared):
    per_connection = True


if __name__ == "__main__":
    serve("original_app", {"shared": Shared, "per": PerConnection}, workers=2)
