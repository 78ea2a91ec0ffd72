"""Run every benchmark (``make bench``); results are described in docs/benchmarks.md.

The echo benchmark (bench/echo_bench.py), then the HTTP benchmark
(bench/http_bench.py). Arguments are passed on to both, e.g.
``python bench/run.py --runs 5 --seconds 10``; ``--only echo`` or ``--only http``
runs just one of them.
"""

from __future__ import annotations

import sys

import echo_bench  # bench/ is on sys.path: it holds this script
import http_bench


def main(argv: list[str]) -> int:
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        only, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    rc = 0
    if only in (None, "echo"):
        print("## Echo round trips\n", flush=True)
        # echo_bench knows only its own options: hand it those.
        echo_argv = []
        for i, a in enumerate(argv):
            if a in ("--runs", "--seconds", "--conns", "--size"):
                echo_argv += argv[i:i + 2]
            elif a.split("=", 1)[0] in ("--runs", "--seconds", "--conns", "--size"):
                echo_argv.append(a)
        rc |= echo_bench.main(echo_argv)
    if only in (None, "http"):
        print("\n## HTTP\n", flush=True)
        rc |= http_bench.main(argv)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
