"""The demo that ``make run`` starts: echo and chargen on consecutive ports."""

from __future__ import annotations

import argparse

import pyparallel as px
from pyparallel.examples.chargen import Chargen
from pyparallel.examples.echo import Echo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="echo; chargen is on port+1")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    echo = px.register(transport=px.server(args.host, args.port), protocol=Echo)
    chargen = px.register(transport=px.server(args.host, args.port + 1), protocol=Chargen)
    eng = px.engine(args.workers)
    print(f"pyparallel demo: {eng.workers} workers on {eng.backend}"
          f"{'' if not px.gil_enabled() else ' (GIL build: callbacks serialised)'}")
    print(f"  echo     nc {args.host} {echo.port}")
    print(f"  chargen  nc {args.host} {chargen.port} | head")
    print("Ctrl-C stops it.", flush=True)
    px.run(workers=args.workers)
    print("stopped.")


if __name__ == "__main__":
    main()
