"""The demo that ``make run`` starts: TechEmpower endpoints over HTTP with the
live dashboard at ``/``, ``/stats`` and ``/metrics``, plus the echo and chargen
services on the next two ports and the Wikipedia example (a generated dump) on
the third (``--port 0``: free ports). With a PostgreSQL database (``--db DSN``
or ``PX_DB_DSN``) it serves TechEmpower's database tests too; without one it
says how to get one."""

from __future__ import annotations

import argparse
import logging
import os

import pyparallel as px
from pyparallel.examples.chargen import Chargen
from pyparallel.examples.echo import Echo
from pyparallel.examples.tfb import DSN_ENV, Tfb
from pyparallel.http import HttpServer, mount_stats

__all__ = ["Demo", "main"]


@mount_stats(dashboard="/")
class Demo(Tfb):
    """/json, /plaintext, /plaintext-c, and the statistics routes."""

_DB_PATHS = ("/db", "/queries?queries=20", "/fortunes", "/updates?queries=20",
             "/cached-queries?count=20")


def _with_database(dsn: str | None) -> tuple[type[HttpServer], str]:
    """The demo's HTTP app, with the database tests when dsn reaches a
    database; and the line that says which."""
    if not dsn:
        return Demo, (f"  (database tests off: set {DSN_ENV} or --db to a PostgreSQL DSN; "
                      "`make db` starts a throwaway one and prints its DSN)")
    from pyparallel.db import DatabaseUnavailable
    from pyparallel.examples.tfb_db import app_class
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("pyparallel.db").setLevel(logging.CRITICAL)  # the line below says it
    try:
        app = app_class(dsn, base=Demo)
    except DatabaseUnavailable as e:
        return Demo, (f"  (database tests off: {e}; `make db` starts a throwaway PostgreSQL "
                      f"and prints the DSN to put in {DSN_ENV})")
    finally:
        logging.getLogger("pyparallel.db").setLevel(logging.NOTSET)
    return app, ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080,
                        help="HTTP; echo is on port+1 and chargen on port+2 (0: any free ports)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--wiki-pages", type=int, default=2000,
                        help="pages of the generated dump the Wikipedia example serves on "
                             "port+3 (0: no Wikipedia example)")
    parser.add_argument("--db", default=os.environ.get(DSN_ENV) or None, metavar="DSN",
                        help="PostgreSQL DSN of a database with TechEmpower's tables, for "
                             f"/db, /queries, /fortunes, /updates, /cached-queries; "
                             f"default ${DSN_ENV}")
    parser.add_argument("--pid-file", metavar="FILE", default=None,
                        help="keep FILE naming the serving process (SIGHUP restarts it)")
    args = parser.parse_args(argv)
    free = not args.port  # --port 0: every service on a free port
    http_app, db_note = _with_database(args.db)
    http = px.register(transport=px.server(args.host, args.port), protocol=http_app)
    echo = px.register(transport=px.server(args.host, 0 if free else args.port + 1),
                       protocol=Echo)
    chargen = px.register(transport=px.server(args.host, 0 if free else args.port + 2),
                          protocol=Chargen)
    wiki = None
    if args.wiki_pages > 0:
        from pyparallel.examples import wiki as wiki_example
        app = wiki_example.prepare(pages=args.wiki_pages, workers=args.workers)
        wiki = px.register(transport=px.server(args.host, 0 if free else args.port + 3),
                           protocol=app)
    eng = px.engine(args.workers)
    mode = "callbacks serialised by the GIL" if px.gil_enabled() else "callbacks in parallel"
    base = f"http://{args.host}:{http.port}"
    print(f"pyparallel demo: {eng.workers} workers on {eng.backend} ({mode})")
    print(f"  dashboard  {base}/")
    print(f"  stats      {base}/stats")
    print(f"  metrics    {base}/metrics")
    for path in ("/json", "/plaintext", "/plaintext-c"):
        print(f"  tfb        {base}{path}")
    if db_note:
        print(db_note)
    else:
        for path in _DB_PATHS:
            print(f"  tfb        {base}{path}")
    print(f"  echo       {args.host}:{echo.port}")
    print(f"  chargen    {args.host}:{chargen.port}")
    if wiki is not None:
        print(f"  wikipedia  http://{args.host}:{wiki.port}/ ({args.wiki_pages} generated pages)")
    print("Ctrl-C stops it.", flush=True)
    px.run(workers=args.workers, pid_file=args.pid_file)
    print("stopped.", flush=True)


if __name__ == "__main__":
    main()
