"""``python -m pyparallel.examples.wiki --xml DUMP.xml | --pages N [--port P] [--workers K]``"""

from __future__ import annotations

import argparse
import sys

import pyparallel as px

from . import prepare

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.examples.wiki",
                                     description="Serve a MediaWiki XML dump by title.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--xml", help="a MediaWiki XML dump (pages-articles layout)")
    source.add_argument("--pages", type=int,
                        help="generate a synthetic dump of this many pages (cached)")
    parser.add_argument("--cache-dir", default=None,
                        help="where --pages dumps are kept (default ~/.cache/pyparallel/wiki)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--workers", type=int, default=None,
                        help="worker threads (default: PX_WORKERS or one per CPU)")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(f"wiki: {msg}", file=sys.stderr, flush=True)

    app = prepare(args.xml, args.pages, args.cache_dir, args.workers, log)
    server = px.register(transport=px.server(args.host, args.port), protocol=app)
    print(f"wiki: listening on {args.host}:{server.port}", flush=True)
    px.run(workers=args.workers)


if __name__ == "__main__":
    main()
