"""Transfers between accounts: AME transactions against one global lock and
against per-account locks.

Each configuration moves random amounts between two random accounts for
SECONDS, on 1 or 2 threads, in one of three ways:

  * ``stm``:    ``px.atomic(transfer, a, b, amount)`` over a ``px.tdict``;
  * ``lock``:   the same transfer on a plain dict under one ``threading.Lock``;
  * ``locks``:  the same transfer on a plain dict under the two accounts' own
    locks, taken in account order (so that it cannot deadlock);
  * ``none``:   a control: the same transfer on a plain dict with no
    synchronisation (wrong with two threads, which lose updates): the cost of
    sharing the accounts' objects between cores, with nothing else.

Many accounts (``--accounts-low``, 10,000) means few conflicts, a few
(``--accounts-high``, 4) many. The (source, destination, amount) triples are
drawn before the clock starts, by the thread that uses them (objects made by
another thread would be reference-counted atomically), so that what is
measured is the transfer. Every
configuration runs RUNS times, interleaved; the table gives the median
transfers per second (wall clock), the CPU time per transfer summed over the
threads (``time.thread_time``: it shows what the wall clock on a shared machine
cannot — whether a second thread makes each transfer cost more, or only shares
the cores), the speed-up of 2 threads over 1 and against the global lock, and
for STM the retries per commit and the serial fallbacks. The total of the
accounts is checked after every run (but the control's).

The functions and containers of every method are shared (``px.share``) first,
as a server's would be: on free-threaded CPython the reference counts of
objects that both threads touch are otherwise one contended cache line.
On a GIL interpreter the two threads take turns, so 2 threads cannot beat 1.

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
DRAWS = 1 << 16  # triples per thread, used round and round

Step = Callable[[int, int, int], None]


def stm_workload(accounts: int) -> tuple[Step, Callable[[], int]]:
    book: px.tdict[int, int] = px.tdict({i: START for i in range(accounts)}, name="accounts")
    atomic = px.atomic

    def transfer(src: int, dst: int, amount: int) -> None:
        if book[src] >= amount:
            book[src] -= amount
            book[dst] += amount

    def step(src: int, dst: int, amount: int) -> None:
        atomic(transfer, src, dst, amount)

    px.share(step)
    return step, lambda: sum(book.values())


def lock_workload(accounts: int) -> tuple[Step, Callable[[], int]]:
    book = {i: START for i in range(accounts)}
    lock = threading.Lock()

    def step(src: int, dst: int, amount: int) -> None:
        with lock:
            if book[src] >= amount:
                book[src] -= amount
                book[dst] += amount

    px.share(step)
    return step, lambda: sum(book.values())


def locks_workload(accounts: int) -> tuple[Step, Callable[[], int]]:
    book = {i: START for i in range(accounts)}
    locks = [threading.Lock() for _ in range(accounts)]

    def step(src: int, dst: int, amount: int) -> None:
        if src == dst:
            with locks[src]:
                return
        first, second = (locks[src], locks[dst]) if src < dst else (locks[dst], locks[src])
        with first, second:
            if book[src] >= amount:
                book[src] -= amount
                book[dst] += amount

    px.share(step)
    return step, lambda: sum(book.values())


def none_workload(accounts: int) -> tuple[Step, Callable[[], int]]:
    """A control, not a method: the transfer on a plain dict with no
    synchronisation at all (two threads lose updates, so the total is not
    checked). What it costs with two threads against one is what sharing the
    accounts' objects between cores costs the interpreter by itself."""
    book = {i: START for i in range(accounts)}

    def step(src: int, dst: int, amount: int) -> None:
        if book[src] >= amount:
            book[src] -= amount
            book[dst] += amount

    px.share(step)
    return step, lambda: accounts * START


WORKLOADS = {"stm": stm_workload, "lock": lock_workload, "locks": locks_workload,
             "none": none_workload}


def measure(kind: str, accounts: int, threads: int, seconds: float) -> dict[str, float]:
    """One run: transfers per second, CPU per transfer, and the STM counters."""
    step, total = WORKLOADS[kind](accounts)
    counts = [0] * threads
    cpu = [0.0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        # Drawn by the thread that uses them: on free-threaded CPython objects
        # made by another thread are counted with atomic operations, which
        # would be measured as part of every transfer.
        rnd = random.Random(i)
        mine = [(rnd.randrange(accounts), rnd.randrange(accounts), rnd.randrange(1, 100))
                for _ in range(DRAWS)]
        n = 0
        start.wait()
        c0 = time.thread_time()
        while not stop.is_set():
            for j in range(n & (DRAWS - 1), (n & (DRAWS - 1)) + 256):
                src, dst, amount = mine[j]
                step(src, dst, amount)
            n += 256
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
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--accounts-low", type=int, default=10_000)
    ap.add_argument("--accounts-high", type=int, default=4)
    args = ap.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    configs = [(kind, conflict, accounts, threads)
               for conflict, accounts in (("low", args.accounts_low), ("high", args.accounts_high))
               for kind in WORKLOADS
               for threads in thread_counts]
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]} ({'GIL' if gil else 'free-threaded'}), "
          f"{args.runs} runs x {args.seconds} s per configuration", flush=True)
    for _ in range(args.runs):
        for kind, conflict, accounts, threads in configs:
            r = measure(kind, accounts, threads, args.seconds)
            results.setdefault((kind, conflict, threads), []).append(r)

    def median(kind: str, conflict: str, threads: int, field: str) -> float:
        return statistics.median(r[field] for r in results[(kind, conflict, threads)])

    print()
    print("| conflict | accounts | method | threads | transfers/s (median) | range | "
          "2 threads / 1 | / global lock | CPU µs per transfer | retries per commit | "
          "serial fallbacks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, conflict, accounts, threads in configs:
        runs = results[(kind, conflict, threads)]
        rates = [r["rate"] for r in runs]
        med = statistics.median(rates)
        speedup = (f"{med / median(kind, conflict, 1, 'rate'):.2f}x"
                   if threads != 1 and (kind, conflict, 1) in results else "")
        vs_lock = f"{med / median('lock', conflict, threads, 'rate'):.2f}x"
        retry = f"{median(kind, conflict, threads, 'retry_ratio'):.3f}" if kind == "stm" else ""
        serial = f"{int(sum(r['serial'] for r in runs))}" if kind == "stm" else ""
        cpu = median(kind, conflict, threads, "cpu_us")
        print(f"| {conflict} | {accounts} | {kind} | {threads} | {med:,.0f} | "
              f"{min(rates):,.0f}–{max(rates):,.0f} | {speedup} | {vs_lock} | {cpu:.2f} | "
              f"{retry} | {serial} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
