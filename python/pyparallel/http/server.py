"""Serve a directory over HTTP on all cores.

::

    python -m pyparallel.http.server [DIR] [--port N] [--host H] [--workers K]

DIR defaults to the current directory, the port to 8000 (0 picks a free one),
the host to 127.0.0.1 (``--host 0.0.0.0`` to serve other machines), the workers
to one per usable CPU. Once connections are accepted it prints
``serving DIR on http://HOST:PORT/``; SIGINT or SIGTERM stop it gracefully,
SIGHUP restarts it with no connection lost.
Everything :class:`~pyparallel.http.StaticFiles` does applies: directory
index and listings, MIME types, validators, conditional GET, single ranges,
no path traversal.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import pyparallel as px
from pyparallel.http import (
    HttpServer,
    RangedRequest,
    StaticFiles,
    html_response,
    json_serialization,
    route,
    text_response,
)

# The original's module of these names (async.http.server) was this one.
__all__ = ["make_app", "main", "HttpServer", "RangedRequest", "route", "json_serialization",
           "text_response", "html_response"]


def make_app(directory: str | os.PathLike[str], listing: bool = True) -> type[HttpServer]:
    """An HttpServer class serving directory at ``/``."""
    files = StaticFiles(directory, listing=listing)

    class DirectoryServer(HttpServer):
        serve_files = route("/*", methods=("GET", "HEAD"))(files)

    DirectoryServer.root = files.root  # type: ignore[attr-defined]
    return DirectoryServer


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _announce_when_ready(eng: px.Engine, line: str) -> None:
    # The sockets accept connections once the engine has started.
    while not eng.started:
        if eng.finished:
            return
        time.sleep(0.005)
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.http.server",
                                     description="Serve a directory over HTTP on all cores.")
    parser.add_argument("directory", nargs="?", default=os.curdir,
                        help="the directory to serve (default: the current one)")
    parser.add_argument("--port", "-p", type=int, default=8000, help="port (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker threads (default: one per usable CPU)")
    parser.add_argument("--no-listing", action="store_true",
                        help="answer directories without an index.html with 404")
    parser.add_argument("--pid-file", metavar="FILE", default=None,
                        help="keep FILE naming the serving process (SIGHUP restarts it)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.directory):
        parser.error(f"not a directory: {args.directory}")
    app = make_app(args.directory, listing=not args.no_listing)
    try:
        endpoint = px.register(transport=px.server(args.host, args.port), protocol=app)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    eng = px.engine(args.workers)
    line = f"serving {app.root} on http://{_url_host(args.host)}:{endpoint.port}/"  # type: ignore[attr-defined]
    threading.Thread(target=_announce_when_ready, args=(eng, line), daemon=True).start()
    px.run(workers=args.workers, pid_file=args.pid_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
