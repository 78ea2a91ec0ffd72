"""The transaction core in C: contention that cannot livelock, replaced values
released once no reader can hold them (and not before), the containers as C
types that px.share() makes immortal, and the counters by cause.

Every test runs on both interpreters.
"""

from __future__ import annotations

import functools
import gc
import sys
import threading
import time
import weakref
from typing import Any

import pytest
from test_stm import default_config, lose_once, run_threads  # noqa: F401 (autouse)

import pyparallel as px
from pyparallel import _core


def test_the_containers_are_c_types() -> None:
    # The pure-Python implementation is gone: tvar/tdict/tlist and atomic come
    # from the extension.
    for obj in (px.tvar, px.tdict, px.tlist):
        assert obj.__module__ == "pyparallel" and obj is getattr(_core, obj.__name__)
    assert px.atomic is _core.atomic and type(px.atomic).__name__ == "builtin_function_or_method"
    assert px.tdict[int, int] is not None and px.tlist[int] is not None  # generic in annotations


def test_four_hot_accounts_two_workers_all_finish_and_serial_fallbacks_are_counted() -> None:
    # Every transfer yields inside its transaction, so that the two threads
    # interleave (on the GIL build too) and conflict; with one retry allowed,
    # losers fall back to the irrevocable mode, which must finish them all.
    px.stm_config(max_retries=1)
    book: px.tdict[int, int] = px.tdict({i: 1000 for i in range(4)}, name="hot")
    per_thread = 1500

    def transfer(src: int, dst: int) -> None:
        amount = book[src] // 10
        time.sleep(0)
        book[src] -= amount
        book[dst] += amount

    def worker(seed: int) -> None:
        for i in range(per_thread):
            px.atomic(transfer, (i + seed) % 4, (i + seed + 1 + i % 3) % 4)

    run_threads([functools.partial(worker, s) for s in range(2)], timeout=120)
    s = px.stm_stats()
    assert s["commits"] == 2 * per_thread
    assert sum(book.values()) == 4000
    assert s["retries"] == sum(v for k, v in s["aborts_by_cause"].items() if k != "exception")
    assert all(c["container"] == "hot" for c in s["conflicts"])

    # How often the workers conflict depends on the scheduler: a transfer
    # that loses twice on purpose must fall back, and be counted.
    px.stm_stats(reset=True)
    holds = [threading.Event(), threading.Event()]
    gos = [threading.Event(), threading.Event()]
    runs = [0]

    def loses_twice() -> None:
        runs[0] += 1
        amount = book[0] // 10
        if runs[0] <= 2:
            holds[runs[0] - 1].set()
            assert gos[runs[0] - 1].wait(10)
        book[0] -= amount
        book[1] += amount

    t = threading.Thread(target=px.atomic, args=(loses_twice,))
    t.start()
    for hold, go in zip(holds, gos):
        assert hold.wait(10)
        px.atomic(lambda: book.__setitem__(0, book[0] + 1))
        go.set()
    t.join(10)
    assert not t.is_alive() and runs[0] == 3
    s = px.stm_stats()
    assert s["retries"] == 2 and s["serial_fallbacks"] == 1
    assert sum(book.values()) == 4002
    assert s["conflicts"] and all(c["container"] == "hot" for c in s["conflicts"])


class Payload:
    """A value whose release is observable (weakref), and whose use after
    release would be (its marker is cleared by __del__)."""

    live = 0
    lock = threading.Lock()

    def __init__(self, n: int) -> None:
        self.n = n
        self.ok = True
        with Payload.lock:
            Payload.live += 1

    def __del__(self) -> None:
        self.ok = False
        with Payload.lock:
            Payload.live -= 1


def test_replaced_values_are_released_after_their_readers() -> None:
    # Writers replace the value of a tvar and of tdict keys while readers take
    # references to the old ones; readers must never see a released object,
    # and once everyone is done every replaced value is released.
    Payload.live = 0
    v = px.tvar(Payload(-1))
    d: px.tdict[int, Payload] = px.tdict({k: Payload(-1) for k in range(4)})
    stop = threading.Event()
    bad: list[int] = []

    def writer(seed: int) -> None:
        for i in range(3000):
            p = Payload(i)
            px.atomic(lambda p=p, k=(i + seed) % 4: (v.set(p), d.__setitem__(k, p)))

    def reader() -> None:
        while not stop.is_set():
            got = [v.get(), d[0], d[3]] + px.atomic(lambda: [v.get(), d[1], d[2]])
            if not all(x.ok for x in got):
                bad.append(len(got))

    def writers() -> None:
        try:
            run_threads([functools.partial(writer, s) for s in range(2)])
        finally:
            stop.set()

    run_threads([writers, reader, reader])
    assert bad == []
    ref = weakref.ref(v.get())
    # Values wait for every thread to move on; transactions on this thread
    # move the epoch and release what is due (those of ended threads too).
    held = len({id(x) for x in [v.get()] + d.values()})   # what v and d hold now
    deadline = time.monotonic() + 30
    while Payload.live > held and time.monotonic() < deadline:
        px.atomic(lambda: v.get())
    assert Payload.live == held
    assert ref() is not None
    v.set(None)   # replace what is left too
    d.clear()
    deadline = time.monotonic() + 30
    w = px.tvar(0)
    while Payload.live > 0 and time.monotonic() < deadline:
        px.atomic(lambda: w.set(w.get() + 1))
    gc.collect()
    assert Payload.live == 0


def test_a_container_freed_during_another_threads_transaction_is_safe() -> None:
    # A transaction reads a tdict and a tvar that another thread then drops;
    # its commit still validates their locations (they wait for its epoch).
    for _ in range(200):
        box: list[Any] = [px.tdict({1: 1}), px.tvar(1)]
        read, dropped = threading.Event(), threading.Event()

        def body(box: list[Any] = box, read: threading.Event = read,
                 dropped: threading.Event = dropped) -> int:
            d, t = box
            value: int = d[1] + t.get()
            del d, t
            if not read.is_set():
                read.set()
                assert dropped.wait(10)
            return value

        th = threading.Thread(target=px.atomic, args=(body,))
        th.start()
        assert read.wait(10)
        box.clear()
        dropped.set()
        th.join(10)
        assert not th.is_alive()


def test_share_makes_the_containers_immortal() -> None:
    book: px.tdict[int, int] = px.tdict({1: 1})
    items: px.tlist[int] = px.tlist([1])
    v = px.tvar(1)

    def reads() -> int:
        return book[1] + items[0] + v.get()

    result = px.share(reads)
    assert result["skipped"] == 0
    if result["immortal"] and not getattr(sys, "_is_gil_enabled", lambda: True)():
        before = sys.getrefcount(book)
        alias = [book] * 10
        assert sys.getrefcount(book) == before   # immortal: counts no longer move
        del alias
    assert px.atomic(reads) == 3


def test_exceptions_and_conflicts_are_counted_by_cause() -> None:
    v = px.tvar(0, name="cause")
    with pytest.raises(ZeroDivisionError):
        px.atomic(lambda: 1 // 0)
    lose_once(v, 10)
    s = px.stm_stats()
    assert s["aborts_by_cause"] == {"read_locked": 0, "stale_read": 1, "commit_locked": 0,
                                    "exception": 1}
    assert s["aborts"] == 2 and s["retries"] == 1 and s["exceptions"] == 1
    assert v.get() == 20   # 10, then the retried +10


def test_cycles_through_the_containers_are_collected() -> None:
    class Node:
        pass

    node = Node()
    node.d = px.tdict({"self": node})  # type: ignore[attr-defined]
    node.v = px.tvar(node)             # type: ignore[attr-defined]
    node.items = px.tlist([node])      # type: ignore[attr-defined]
    ref = weakref.ref(node)
    del node
    w = px.tvar(0)
    deadline = time.monotonic() + 30
    while ref() is not None and time.monotonic() < deadline:
        gc.collect()
        for _ in range(100):   # values the collector dropped wait for the epochs
            px.atomic(lambda: w.set(w.get() + 1))
    assert ref() is None


def test_unnamed_containers_are_told_apart_in_the_conflict_stats() -> None:
    # Each unnamed container is labelled with its type and address; two of
    # them must not share one entry in the stats.
    a, b = px.tvar(0), px.tvar(0)
    for v in (a, b):
        lose_once(v, 10)
    containers = [c["container"] for c in px.stm_stats()["conflicts"]]
    assert len(containers) == 2 and len(set(containers)) == 2, containers
    assert all(c.startswith("pyparallel.tvar@0x") for c in containers), containers
