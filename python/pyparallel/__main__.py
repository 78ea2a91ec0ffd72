"""``python -m pyparallel COMMAND`` (also the ``pyparallel`` console script).

Commands: ``serve module:app [options]`` (:mod:`pyparallel.serve`).
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_COMMANDS = {"serve": "run a WSGI app or an HttpServer on all cores"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in _COMMANDS:
        usage = "\n".join(f"  {name:8} {what}" for name, what in _COMMANDS.items())
        stream = sys.stdout if args and args[0] in ("-h", "--help") else sys.stderr
        if args and args[0] not in ("-h", "--help"):
            print(f"pyparallel: unknown command {args[0]!r}", file=stream)
        print(f"usage: pyparallel COMMAND [options]\n\ncommands:\n{usage}", file=stream)
        return 0 if stream is sys.stdout else 2
    from pyparallel.serve import main as serve_main
    return serve_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
