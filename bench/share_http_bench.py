"""An HTTP handler doing about 50 µs of pure-Python work on shared data: two
workers against one, with and without sharing.

The server (``--serve``, started by this script) loads a 100,000-entry dict and
a 1e6-int list at start and answers ``/work?i=N`` by walking a few hundred of
their entries (about 50 µs of Python on the free-threaded interpreter; the
script prints the measured figure). It registers the app with
``register(share=True)`` (the default: the app, its methods and the data their
code reads are shared) or ``share=False``.

Every configuration (workers 1 or 2, sharing on or off) runs RUNS times,
interleaved, a fresh server each time; ``wrk -t1 -c32`` runs 1 s to warm up and
SECONDS to measure. The machine has two CPUs, so the server is given both and
wrk shares them: its CPU share is printed, and it caps what two workers can
reach (about 1.8x when wrk needs a tenth of a CPU). Tables give medians and the
2-workers/1-worker ratio (target: 1.7 or more with sharing).

    python bench/share_http_bench.py [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
PY_FT = os.path.join(TOP, ".venv", "bin", "python")
sys.path.insert(0, BENCH)

STEPS = 100  # dict and list reads per request: about 50 µs of Python

TABLE: dict[str, int] = {}
NUMBERS: list[int] = []
KEYS: list[str] = []


def load() -> None:
    TABLE.update((f"key{i}", i * 7) for i in range(100_000))
    NUMBERS.extend(range(1_000_000))
    KEYS.extend(list(TABLE)[::13])


def work(i: int) -> int:
    total = 0
    n = len(KEYS)
    for k in range(STEPS):
        key = KEYS[(i + k * 31) % n]
        total += TABLE[key] + NUMBERS[(i * 7 + k * 8191) % 1_000_000]
    return total


def serve(port: int, workers: int, share: bool) -> None:
    import pyparallel as px
    from pyparallel.http import HttpServer, route

    class Work(HttpServer):
        @route("/work")
        def handle(self, request, i="0"):
            return {"total": work(int(i))}

    load()
    t0 = time.perf_counter()
    for i in range(2000):
        work(i)
    per_call = (time.perf_counter() - t0) / 2000
    px.register(transport=px.server("127.0.0.1", port), protocol=Work, share=share)
    print(f"READY {per_call * 1e6:.1f}", flush=True)
    px.run(workers=workers)


def run_one(workers: int, share: bool, seconds: float) -> dict:
    from http_bench import CLK_TCK, cpu_ticks, free_port, run_wrk  # the same wrk parsing

    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", "0,1", PY_FT, __file__, "--serve", str(port),
                             str(workers), "1" if share else "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"server did not start: {line!r}")
        per_call_us = float(line.split()[1])
        run_wrk(port, "/work?i=12345", 1.0, 32, [0, 1])
        t0 = cpu_ticks([proc.pid])
        r = run_wrk(port, "/work?i=12345", seconds, 32, [0, 1])
        r["server_cpus"] = (cpu_ticks([proc.pid]) - t0) / CLK_TCK / r["seconds"]
        r["per_call_us"] = per_call_us
        if r["non_2xx"] or any(r["socket_errors"].values()):
            raise RuntimeError(f"errors: {r['non_2xx']} non-2xx, {r['socket_errors']}")
        return r
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), args.serve[2] == "1")
        return 0
    configs = [(w, s) for s in (True, False) for w in (1, 2)]
    results: dict[tuple[int, bool], list[dict]] = {c: [] for c in configs}
    for run in range(args.runs):
        for w, s in configs:
            r = run_one(w, s, args.seconds)
            results[(w, s)].append(r)
            print(f"run {run + 1}: workers={w} share={s}: {r['rps']:,.0f} req/s, server "
                  f"{r['server_cpus']:.2f} CPUs, handler {r['per_call_us']:.0f} µs", flush=True)
    print("\n| sharing | workers | requests/s (median) | range | server CPUs | handler µs |")
    print("|---|---|---|---|---|---|")
    for w, s in configs:
        rs = results[(w, s)]
        rps = [r["rps"] for r in rs]
        print(f"| {'on' if s else 'off'} | {w} | {statistics.median(rps):,.0f} | "
              f"{min(rps):,.0f}–{max(rps):,.0f} | "
              f"{statistics.median(r['server_cpus'] for r in rs):.2f} | "
              f"{statistics.median(r['per_call_us'] for r in rs):.0f} |")
    print()
    for s in (True, False):
        one = statistics.median(r["rps"] for r in results[(1, s)])
        two = statistics.median(r["rps"] for r in results[(2, s)])
        print(f"sharing {'on' if s else 'off'}: 2 workers / 1 worker = {two / one:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
