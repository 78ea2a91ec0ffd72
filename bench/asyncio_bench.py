"""Echo round trips per second of one asyncio echo server (the same code) on
pyparallel.asyncio, uvloop and asyncio's own loop.

The server is echo_bench.py's ``asyncio.Protocol`` whose ``data_received``
writes the data back (``--serve KIND``); only the loop differs. It runs pinned to the
first CPU, and the C load generator of echo_bench.py (``echo_load.c``) to the
second: CONNS connections, each with one SIZE-byte message in flight, for
SECONDS after a warm-up, RUNS times interleaved; the table gives the median,
the range and the ratio to uvloop's median.

Loops and interpreters:
  * pyparallel.asyncio (standalone, a one-worker engine) on the GIL interpreter
    (.venv-gil, as uvloop) and on the free-threaded one (.venv);
  * uvloop and asyncio on .venv-gil (uvloop installed there when missing).

    python bench/asyncio_bench.py [--runs 3] [--seconds 5] [--conns 64] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo_bench as eb  # noqa: E402  (the harness: load generator, pinning, runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--size", type=int, default=64, help="message bytes")
    ap.add_argument("--serve", choices=["asyncio", "uvloop", "pyparallel"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        eb.serve(args.serve, args.host, args.port)
        return 0

    load = eb.build_load()
    cpus = sorted(os.sched_getaffinity(0))
    one, gen = (cpus[:1], cpus[1:2]) if len(cpus) >= 2 and shutil.which("taskset") else ([], [])
    me = os.path.abspath(__file__)
    configs = [
        eb.Config("pyparallel.asyncio", eb.PY_GIL, [me, "--serve", "pyparallel"], one, gen),
        eb.Config("pyparallel.asyncio", eb.PY_FT, [me, "--serve", "pyparallel"], one, gen),
    ]
    uv = None
    if eb.ensure_uvloop():
        uv = eb.Config("uvloop", eb.PY_GIL, [me, "--serve", "uvloop"], one, gen)
        configs.append(uv)
    configs.append(eb.Config("asyncio", eb.PY_GIL, [me, "--serve", "asyncio"], one, gen))

    busy = eb.busy_fraction()
    if busy > 0.10:
        eb.log(f"warning: the machine was {busy:.0%} busy before the runs: expect noisy numbers")
    for run in range(args.runs):
        for cfg in configs:
            r = eb.run_once(cfg, load, args.seconds, args.conns, args.size)
            cfg.results.append(r)
            eb.log(f"run {run + 1}/{args.runs} {cfg.name} ({os.path.basename(os.path.dirname(os.path.dirname(cfg.interpreter)))}): "
                   f"{r['roundtrips_per_sec']:,.0f} round trips/s")
    print(eb.table(configs, uv))
    os.makedirs(eb.RAW_DIR, exist_ok=True)
    raw = os.path.join(eb.RAW_DIR, time.strftime("asyncio-echo-%Y%m%d-%H%M%S.json"))
    with open(raw, "w") as f:
        json.dump({"busy_before": round(busy, 3), "conns": args.conns, "size": args.size,
                   "seconds": args.seconds, "configs": [
                       {"name": c.name, "interpreter": c.interpreter, "runs": c.results}
                       for c in configs]}, f, indent=1)
    eb.log(f"raw results: {os.path.relpath(raw, eb.TOP)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
