"""Command line shared by the example services."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pyparallel as px

__all__ = ["serve"]


def serve(name: str, protocol: type, default_port: int, argv: list[str] | None = None, *,
          add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
          configure: Callable[[argparse.Namespace], dict[str, Any]] | None = None) -> None:
    """Parse --host/--port/--workers, register protocol, and serve until stopped.

    An example with options of its own adds them with add_arguments; configure
    applies them and returns options for the engine."""
    parser = argparse.ArgumentParser(prog=f"python -m pyparallel.examples.{name}",
                                     description=protocol.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--workers", type=int, default=None,
                        help="worker threads (default: PX_WORKERS or one per CPU)")
    parser.add_argument("--pid-file", metavar="FILE", default=None,
                        help="keep FILE naming the serving process (SIGHUP restarts it)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    options = configure(args) if configure is not None else {}
    try:
        server = px.server(args.host, args.port)
        # an I/O backend that cannot start fails here, before the banner
        px.engine(args.workers, **options)
    except OSError as e:
        raise SystemExit(f"{name}: {e}") from None
    px.register(transport=server, protocol=protocol)
    print(f"{name}: listening on {args.host}:{server.port}", flush=True)
    px.run(workers=args.workers, pid_file=args.pid_file)
