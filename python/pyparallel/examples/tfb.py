"""TechEmpower's /json and /plaintext, plus /plaintext-c answered in C; with a
PostgreSQL database (``--db DSN`` or the ``PX_DB_DSN`` environment variable)
also /db, /queries, /fortunes, /updates and /cached-queries
(:mod:`pyparallel.examples.tfb_db`).

``python -m pyparallel.examples.tfb --port N [--workers K] [--db DSN]``
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import pyparallel as px
from pyparallel.http import HttpServer, route

__all__ = ["DSN_ENV", "Tfb", "main"]

_HELLO = b"Hello, World!"
#: the environment variable naming the database of the database test types
DSN_ENV = "PX_DB_DSN"


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
    parser.add_argument("--db", default=os.environ.get(DSN_ENV) or None, metavar="DSN",
                        help="PostgreSQL connection string (libpq DSN or URL) of a database "
                             f"with TechEmpower's tables; default ${DSN_ENV}")
    args = parser.parse_args(argv)
    app: type[HttpServer] = Tfb
    if args.db:
        from .tfb_db import app_class
        logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        app = app_class(args.db, base=Tfb)
    server = px.register(transport=px.server(args.host, args.port), protocol=app)
    print(f"tfb: listening on {args.host}:{server.port}", flush=True)
    px.run(workers=args.workers)


if __name__ == "__main__":
    main()
