"""Transfers per second: AME transactions against one global lock.

Each configuration moves random amounts between random accounts for SECONDS,
on 1 or 2 threads, in one of two ways:

  * ``stm``:  ``px.atomic(transfer, a, b, amount)`` over a ``px.tdict``;
  * ``lock``: the same transfer on a plain dict under one ``threading.Lock``.

Low conflict uses many accounts (``--accounts-low``, 10,000 by default), high
conflict a few (``--accounts-high``, 4). Every configuration runs RUNS times,
interleaved; the table gives the median transfers per second, the range, the
speed-up of 2 threads over 1, and for STM the share of runs that were aborted
(retries per commit) and the serial fallbacks, and the CPU time per transfer
summed over the threads (on a busy machine it shows what the wall clock
cannot: whether a second thread makes each transfer cost more — contention — or
only shares the cores). The totals of the accounts are checked after every run.

On a GIL interpreter the two threads take turns, so 2 threads cannot beat 1;
on a free-threaded one, transactions over different accounts run in parallel.

    python bench/stm_bench.py [--runs 3] [--seconds 2] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable

import pyparallel as px

START = 1_000


def stm_workload(accounts: int) -> tuple[Callable[[random.Random], None], Callable[[], int]]:
    book: px.tdict[int, int] = px.tdict({i: START for i in range(accounts)}, name="accounts")

    def transfer(src: int, dst: int, amount: int) -> None:
        if book[src] >= amount:
            book[src] -= amount
            book[dst] += amount

    def step(rnd: random.Random) -> None:
        px.atomic(transfer, rnd.randrange(accounts), rnd.randrange(accounts),
                  rnd.randrange(1, 100))

    return step, lambda: sum(book.values())


def lock_workload(accounts: int) -> tuple[Callable[[random.Random], None], Callable[[], int]]:
    book = {i: START for i in range(accounts)}
    lock = threading.Lock()

    def step(rnd: random.Random) -> None:
        src, dst, amount = (rnd.randrange(accounts), rnd.randrange(accounts),
                            rnd.randrange(1, 100))
        with lock:
            if book[src] >= amount:
                book[src] -= amount
                book[dst] += amount

    return step, lambda: sum(book.values())


def measure(kind: str, accounts: int, threads: int, seconds: float) -> dict[str, float]:
    """One run: transfers per second, and the STM counters of the run."""
    make = stm_workload if kind == "stm" else lock_workload
    step, total = make(accounts)
    counts = [0] * threads
    cpu = [0.0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        rnd = random.Random(i)
        n = 0
        start.wait()
        c0 = time.thread_time()
        while not stop.is_set():
            for _ in range(64):
                step(rnd)
            n += 64
        cpu[i] = time.thread_time() - c0
        counts[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    px.stm_stats(reset=True)
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    stats = px.stm_stats()
    if total() != accounts * START:
        raise AssertionError(f"{kind}: the total changed to {total()}")
    commits = max(1, stats["commits"])
    return {"rate": sum(counts) / elapsed, "retry_ratio": stats["retries"] / commits,
            "serial": stats["serial_fallbacks"], "cpu_us": sum(cpu) / max(1, sum(counts)) * 1e6}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--accounts-low", type=int, default=10_000)
    ap.add_argument("--accounts-high", type=int, default=4)
    args = ap.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    configs = [(kind, conflict, accounts, threads)
               for conflict, accounts in (("low", args.accounts_low), ("high", args.accounts_high))
               for kind in ("stm", "lock")
               for threads in thread_counts]
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]} ({'GIL' if gil else 'free-threaded'}), "
          f"{args.runs} runs x {args.seconds} s per configuration", flush=True)
    for _ in range(args.runs):
        for kind, conflict, accounts, threads in configs:
            r = measure(kind, accounts, threads, args.seconds)
            results.setdefault((kind, conflict, threads), []).append(r)
    print()
    print("| conflict | accounts | method | threads | transfers/s (median) | range | "
          "2 threads / 1 | CPU µs per transfer | retries per commit | serial fallbacks |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, conflict, accounts, threads in configs:
        runs = results[(kind, conflict, threads)]
        rates = [r["rate"] for r in runs]
        med = statistics.median(rates)
        base = results.get((kind, conflict, 1))
        speedup = (f"{med / statistics.median(r['rate'] for r in base):.2f}x"
                   if base and threads != 1 else "")
        retry = (f"{statistics.median(r['retry_ratio'] for r in runs):.3f}"
                 if kind == "stm" else "")
        serial = f"{int(sum(r['serial'] for r in runs))}" if kind == "stm" else ""
        cpu = statistics.median(r["cpu_us"] for r in runs)
        print(f"| {conflict} | {accounts} | {kind} | {threads} | {med:,.0f} | "
              f"{min(rates):,.0f}–{max(rates):,.0f} | {speedup} | {cpu:.2f} | {retry} | {serial} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
