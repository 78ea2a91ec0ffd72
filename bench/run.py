"""Run every benchmark (``make bench``); results are described in docs/benchmarks.md.

For now that is the echo benchmark (bench/echo_bench.py); arguments are passed
on to it, e.g. ``python bench/run.py --runs 5 --seconds 10``.
"""

from __future__ import annotations

import sys

import echo_bench  # bench/ is on sys.path: it holds this script


def main(argv: list[str]) -> int:
    print("## Echo round trips\n", flush=True)
    return echo_bench.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
