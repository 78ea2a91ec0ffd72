"""An HttpServer for the pipelining and memory-budget suites: large answers
from C and from Python, files sent by the kernel, and bodies.

    python pipeline_app.py --file PATH [--workers K] [--memory-budget N]
                           [--max-body N]

Routes: /big/{i} (Python: big_body(i), BIG_LEN bytes that name i), /file/{i}
(sendfile of --file), /id/{i} (b"req i"), /echo (POST: the body back), and
the static route /big-c (BIG_LEN bytes of big_body(0), answered in C).
"""

from __future__ import annotations

import sys

from _common import int_arg, serve

from pyparallel.http import HttpServer, Response, route

BIG_LEN = 1 << 20


def big_body(i: int) -> bytes:
    """The answer to /big/{i}: a pattern whose first bytes are i."""
    return (b"%08d" % i + bytes(range(256)) * (BIG_LEN // 256))[:BIG_LEN]


FILE = sys.argv[sys.argv.index("--file") + 1]
MAX_BODY = int_arg("--max-body", None)
BIG = [big_body(i) for i in range(10)]  # built once: the handler only picks one


class App(HttpServer):
    limits = {"max_body": MAX_BODY} if MAX_BODY else {}
    static_routes = {"/big-c": ("application/octet-stream", big_body(0))}

    @route("/big/{i}")
    def big(self, request, i):
        n = int(i)
        return BIG[n] if n < len(BIG) else big_body(n)

    @route("/file/{i}")
    def file(self, request, i):
        return self.sendfile(request, FILE)

    @route("/id/{i}")
    def ident(self, request, i):
        return f"req {i}".encode()

    @route("/echo", methods=("POST",))
    def echo(self, request):
        return Response(request.body, 200, "application/octet-stream")


if __name__ == "__main__":
    budget = int_arg("--memory-budget", None)
    serve("pipeline", {"http": App}, workers=int_arg("--workers", 2),
          **({"memory_budget": budget} if budget else {}))
