"""The server of the soak test (bench/soak.py): one HttpServer process.

    python bench/soak_server.py --port N [--workers K] [--fd-limit N]

Lowers its own descriptor limit (RLIMIT_NOFILE) to --fd-limit first, so that
an attacker can reach it. Routes, each answer known to the clients in advance:

    /plaintext       b"Hello, World!"
    /json            {"message": "Hello, World!"}
    /item/{n}        {"item": n, "square": n * n}   (a Python handler with a parameter)
    /big             256 KiB of a fixed pattern (for readers that stop or reset)
    /echo            POST: the body back
    /stats           px.stats() as JSON

Prints ``soak: listening on HOST:PORT`` when clients may connect; SIGTERM
shuts it down gracefully.
"""

from __future__ import annotations

import argparse
import resource
import sys

import pyparallel as px
from pyparallel.http import HttpServer, route
from soak_traffic import BIG


class Soak(HttpServer):
    static_routes = {"/plaintext": ("text/plain", b"Hello, World!")}

    @route("/json")
    def json(self, request):
        return {"message": "Hello, World!"}

    @route("/item/{n}")
    def item(self, request, n):
        n = int(n)
        return {"item": n, "square": n * n}

    @route("/big")
    def big(self, request):
        return BIG

    @route("/echo", methods=("POST",))
    def echo(self, request):
        return bytes(request.body)

    @route("/stats")
    def stats(self, request):
        return px.stats()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fd-limit", type=int, default=1024)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = min(args.fd_limit, hard) if hard != resource.RLIM_INFINITY else args.fd_limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    server = px.register(transport=px.server(args.host, args.port), protocol=Soak)
    px.engine(args.workers)
    print(f"soak: listening on {args.host}:{server.port}", flush=True)
    px.run(shutdown_timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
