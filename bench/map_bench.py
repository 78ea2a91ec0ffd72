"""Data-parallel map over shared data: px.map against multiprocessing.Pool and
ThreadPoolExecutor, on the interpreter running this script.

The work: TASKS calls of a pure-Python function that reads STEPS entries of a
shared list of 1,000,000 ints (made once, before anything starts) and sums
them. Configurations, each measured on the same inputs:

  * serial:      list(map(func, tasks)) in this thread, the reference result;
  * px.map 1/2:  pyparallel.map(func, tasks, workers=N) with no engine running
                 (it makes a temporary engine of N workers each call, which is
                 included in the time);
  * pool 2:      multiprocessing.Pool(2).map (fork; the pool is made before the
                 runs and not timed; the children inherit the data);
  * threads 2:   concurrent.futures.ThreadPoolExecutor(2).map.

Every configuration runs RUNS times, interleaved so that drift in the
machine's speed spreads evenly; the table shows medians, ranges and ratios.
On a GIL build the thread-based ones cannot run Python in parallel.
``--share`` calls px.share() on the data and the function first, where the
package has it (objects every worker reads then cost no reference counting).

    python bench/map_bench.py [--runs 5] [--tasks 400] [--steps 2000] [--share] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable

import pyparallel as px

SIZE = 1_000_000
DATA: list[int] = []
STEPS = 2000


def work(i: int) -> int:
    """Sum STEPS entries of DATA along a stride that depends on i."""
    data, n = DATA, SIZE
    j = (i * 7919) % n
    stride = 1 + (i % 97)
    total = 0
    for _ in range(STEPS):
        total += data[j]
        j += stride
        if j >= n:
            j -= n
    return total


def _init_child(steps: int) -> None:
    global STEPS
    STEPS = steps


def timed(fn: Callable[[], list[int]], expect: list[int]) -> float:
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    assert out == expect, "a configuration computed other results"
    return elapsed


def main() -> None:
    global STEPS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--share", action="store_true", help="px.share() the data and function first")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    STEPS = args.steps
    DATA.extend(range(10**9, 10**9 + SIZE))  # ints that are not cached singletons
    shared = None
    if args.share:
        share = getattr(px, "share", None)
        if share is None:
            sys.exit("map_bench: this pyparallel has no px.share()")
        shared = share([DATA, work])
    tasks = list(range(args.tasks))

    ctx = multiprocessing.get_context("fork")
    # Made before any engine thread exists (forking a threaded process is unsafe).
    pool = ctx.Pool(2, initializer=_init_child, initargs=(STEPS,))
    threads = concurrent.futures.ThreadPoolExecutor(2)
    expect = list(map(work, tasks))
    configs: dict[str, Callable[[], list[int]]] = {
        "serial": lambda: list(map(work, tasks)),
        "px.map 1": lambda: px.map(work, tasks, workers=1),
        "px.map 2": lambda: px.map(work, tasks, workers=2),
        "pool 2": lambda: pool.map(work, tasks),
        "threads 2": lambda: list(threads.map(work, tasks)),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    try:
        for fn in configs.values():  # warm-up: pool children, code paths
            timed(fn, expect)
        for _ in range(args.runs):
            for name, fn in configs.items():
                times[name].append(timed(fn, expect))
    finally:
        pool.close()
        pool.join()
        threads.shutdown()

    med = {name: statistics.median(ts) for name, ts in times.items()}
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"map_bench: Python {sys.version.split()[0]}, GIL {'on' if gil else 'off'}, "
          f"{os.cpu_count()} CPUs, {args.tasks} tasks x {STEPS} reads of a 1e6-int list, "
          f"{args.runs} runs" + (f", shared {shared}" if shared is not None else ""))
    print(f"{'configuration':<12} {'median s':>9} {'min':>7} {'max':>7} {'vs serial':>10}")
    for name, ts in times.items():
        print(f"{name:<12} {med[name]:9.3f} {min(ts):7.3f} {max(ts):7.3f} "
              f"{med['serial'] / med[name]:9.2f}x")
    ratios = {
        "px.map 2 / px.map 1 (speed-up)": med["px.map 1"] / med["px.map 2"],
        "px.map 2 vs pool 2 (speed)": med["pool 2"] / med["px.map 2"],
        "px.map 2 vs threads 2 (speed)": med["threads 2"] / med["px.map 2"],
    }
    for label, value in ratios.items():
        print(f"{label:<34} {value:5.2f}x")
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "gil": gil, "tasks": args.tasks,
                          "steps": STEPS, "runs": args.runs, "times": times, "median": med,
                          "ratios": ratios}))


if __name__ == "__main__":
    main()
