"""TechEmpower's /json and /plaintext, plus /plaintext-c answered in C.

``python -m pyparallel.examples.tfb --port N [--workers K]``
"""

from __future__ import annotations

import argparse
from typing import Any

import pyparallel as px
from pyparallel.http import HttpServer, route

__all__ = ["Tfb", "main"]

_HELLO = b"Hello, World!"


class Tfb(HttpServer):
    """The TechEmpower test types that need no database."""

    # Answered by the engine's static route table: never enters Python.
    static_routes = {"/plaintext-c": ("text/plain", _HELLO)}

    @route("/json")
    def json(self, request: Any) -> dict[str, str]:
        return {"message": "Hello, World!"}

    @route("/plaintext")
    def plaintext(self, request: Any) -> bytes:
        return _HELLO


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.examples.tfb")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    server = px.register(transport=px.server(args.host, args.port), protocol=Tfb)
    print(f"tfb: listening on {args.host}:{server.port}", flush=True)
    px.run(workers=args.workers)


if __name__ == "__main__":
    main()
