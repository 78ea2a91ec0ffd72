"""Run every benchmark (``make bench``); results are described in docs/benchmarks.md.

The echo benchmark (bench/echo_bench.py) and the HTTP benchmark
(bench/http_bench.py), to which the arguments are passed on (e.g.
``python bench/run.py --runs 5 --seconds 10``), then, with their own defaults,
fixed-rate latency, sharing, the HTTP handler over shared data, px.map (without
and with sharing), transactions, hand-off, the Wikipedia example, the
chat broadcast and TechEmpower's database tests on PostgreSQL.
``--only NAME[,NAME...]`` runs just those (echo, http, latency, share,
share_http, map, stm, handoff, wiki, instructions, broadcast, db).
"""

from __future__ import annotations

import os
import subprocess
import sys

import echo_bench  # bench/ is on sys.path: it holds this script
import http_bench


def main(argv: list[str]) -> int:
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        only, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    only = set(only.split(",")) if only else None
    rc = 0
    if only is None or "echo" in only:
        print("## Echo round trips\n", flush=True)
        # echo_bench knows only its own options: hand it those.
        echo_argv = []
        for i, a in enumerate(argv):
            if a in ("--runs", "--seconds", "--conns", "--size"):
                echo_argv += argv[i:i + 2]
            elif a.split("=", 1)[0] in ("--runs", "--seconds", "--conns", "--size"):
                echo_argv.append(a)
        rc |= echo_bench.main(echo_argv)
    if only is None or "http" in only:
        print("\n## HTTP\n", flush=True)
        rc |= http_bench.main(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    for name, script, args in OTHERS:
        if only is None or name in only:
            print(f"\n## {name}\n", flush=True)
            rc |= subprocess.run([sys.executable, os.path.join(here, script), *args]).returncode
    return rc


OTHERS = [
    ("latency", "latency_bench.py", ["--chart", "docs/latency.png"]),
    ("share", "share_bench.py", []),
    ("share_http", "share_http_bench.py", []),
    ("map", "map_bench.py", ["--tasks", "4000"]),
    ("map", "map_bench.py", ["--tasks", "4000", "--share"]),
    ("stm", "stm_bench.py", []),
    ("handoff", "handoff_bench.py", []),
    ("wiki", "wiki_bench.py", []),
    ("instructions", "http_instructions.py", []),
    ("broadcast", "broadcast_bench.py", []),
    ("db", "db_bench.py", []),
]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
