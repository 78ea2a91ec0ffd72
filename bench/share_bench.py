"""Two threads against one on CPU-light Python that reads shared objects,
without and with ``px.share``: does sharing take the reference-count
contention away?

Workloads (each call is a few hundred nanoseconds, like a small handler):
  * ``dict``:   a module-level function looking up three keys in a shared
                100,000-entry dict (keys from a shared list);
  * ``hello``:  a module-level function returning ``{"message": "Hello, World!"}``;
  * ``method``: a method of an app object reading a dict held by the instance;
  * ``control``: arithmetic on the thread's own objects, nothing shared: its
                ratio is what the machine allows at that moment (a loaded
                machine shows it below 2).

Every (workload, sharing) pair runs in a process of its own (what ``share``
made immortal stays so); inside it 1-thread and 2-thread runs of SECONDS each
alternate RUNS times, and the table reports the medians of calls per second and
the ratio of 2 threads to 1 (2.0 is perfect scaling; the target is 1.6 or more
with sharing on 2 cores). Free-threaded CPython only: with a GIL the ratio says
nothing about reference counting.

    python bench/share_bench.py [--runs 5] [--seconds 0.4] [--workloads dict,hello,method,control]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

TABLE = {f"key{i}": i * 7 for i in range(100_000)}
KEYS = list(TABLE)[::97]


def lookup(i: int) -> int:
    return TABLE[KEYS[i]] + TABLE[KEYS[i + 1]] + TABLE[KEYS[i + 2]]


def hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


class App:
    def __init__(self) -> None:
        self.table = {f"route{i}": (i, f"value{i}") for i in range(1000)}
        self.names = list(self.table)

    def handle(self, i: int) -> int:
        return self.table[self.names[i]][0] + 1


APP = App()


def loop_dict(seconds: float) -> int:
    calls = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(0, 200, 2):
            lookup(i)
        calls += 100
    return calls


def loop_hello(seconds: float) -> int:
    calls = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            hello()
        calls += 100
    return calls


def loop_method(seconds: float) -> int:
    calls = 0
    handle = APP.handle  # a bound method made once, as the engine holds its routes
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(100):
            handle(i)
        calls += 100
    return calls


def loop_control(seconds: float) -> int:
    calls = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        acc = 0
        for i in range(100):
            acc ^= i * 7 + 3
        calls += 100
    return calls


LOOPS: dict[str, Callable[[float], int]] = {"dict": loop_dict, "hello": loop_hello,
                                            "method": loop_method, "control": loop_control}


def measure(loop: Callable[[float], int], threads: int, seconds: float) -> float:
    """Calls per second of `threads` threads running `loop` together."""
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        barrier.wait()
        counts[k] = loop(seconds)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def child(workload: str, share: bool, runs: int, seconds: float) -> None:
    import pyparallel as px
    loop = LOOPS[workload]
    if share:
        px.share(TABLE, KEYS, lookup, hello, APP, APP.handle, loop)
    measure(loop, 2, seconds / 4)  # warm-up (and the first thread start)
    result: dict[str, list[float]] = {"1": [], "2": []}
    for _ in range(runs):
        for threads in (1, 2):
            result[str(threads)].append(measure(loop, threads, seconds))
    print(json.dumps({"result": result, "shared": px.share_stats()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--workloads", default="dict,hello,method,control")
    ap.add_argument("--child", nargs=2, metavar=("WORKLOAD", "SHARE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1", args.runs, args.seconds)
        return
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        sys.exit("share_bench: needs a free-threaded interpreter (the GIL serialises the threads)")
    print(f"Python {sys.version.split()[0]} free-threaded, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs of {args.seconds} s, medians")
    print(f"{'workload':8} {'share':6} {'1 thread':>12} {'2 threads':>12} {'2T/1T':>6}")
    for workload in args.workloads.split(","):
        for share in (False, True):
            out = subprocess.run(
                [sys.executable, __file__, "--child", workload, "1" if share else "0",
                 "--runs", str(args.runs), "--seconds", str(args.seconds)],
                capture_output=True, text=True, check=True, timeout=600)
            res: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
            one = statistics.median(res["result"]["1"])
            two = statistics.median(res["result"]["2"])
            print(f"{workload:8} {'on' if share else 'off':6} {one:12,.0f} {two:12,.0f} "
                  f"{two / one:6.2f}", flush=True)


if __name__ == "__main__":
    main()
