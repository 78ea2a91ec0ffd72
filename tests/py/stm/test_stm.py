"""Transactions (AME): atomic() over tvar/tdict/tlist, parallel_for, the
irrevocable fallback, the I/O guard and stm_stats.

Every test runs on both interpreters; on the GIL build the threads interleave
(at the switch interval and wherever a test makes them wait) instead of running
at the same time, which the algorithm must survive just the same.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyparallel as px
from helpers import connect, recv_until_line
from pyparallel import _core, stm

ACCOUNTS = 100
START_BALANCE = 1000


@pytest.fixture(autouse=True)
def default_config() -> Iterator[None]:
    """Each test starts with the default retry limit and fresh counters."""
    saved = px.stm_config()["max_retries"]
    px.stm_stats(reset=True)
    yield
    px.stm_config(max_retries=saved)


def run_threads(targets: list[Callable[[], Any]], timeout: float = 60.0) -> None:
    """Run the callables on threads of their own; re-raise the first failure."""
    errors: list[BaseException] = []

    def guard(f: Callable[[], Any]) -> None:
        try:
            f()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(f,)) for f in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        assert not t.is_alive(), "a thread did not finish in time"
    if errors:
        raise errors[0]


def conflict_once(v: px.tvar, hold: threading.Event, go: threading.Event) -> Callable[[], None]:
    """A transaction body that, in its first run only, reads v and then waits
    (inside the transaction) until another thread has committed to v."""
    runs = [0]

    def body() -> None:
        runs[0] += 1
        value = v.get()
        if runs[0] == 1:
            hold.set()
            assert go.wait(10)
        v.set(value + 10)
    body.runs = runs  # type: ignore[attr-defined]
    return body


def lose_once(v: px.tvar, value: int) -> None:
    """Run conflict_once's body on a thread while this one sets v to value:
    the body conflicts once, then commits (v ends at value + 10)."""
    hold, go = threading.Event(), threading.Event()
    t = threading.Thread(target=px.atomic, args=(conflict_once(v, hold, go),))
    t.start()
    assert hold.wait(10)
    v.set(value)
    go.set()
    t.join(10)
    assert not t.is_alive()


# ---- the bank: money is never created or lost --------------------------------

def test_transfers_keep_the_total_at_every_observation() -> None:
    accounts: px.tdict[int, int] = px.tdict(
        {i: START_BALANCE for i in range(ACCOUNTS)}, name="accounts")
    total = ACCOUNTS * START_BALANCE
    done = threading.Event()
    observed: list[int] = []

    def transfer(src: int, dst: int, amount: int) -> bool:
        if accounts[src] < amount:
            return False
        accounts[src] -= amount
        accounts[dst] += amount
        return True

    def client(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(10_000):
            src, dst = rnd.randrange(ACCOUNTS), rnd.randrange(ACCOUNTS)
            px.atomic(transfer, src, dst, rnd.randrange(1, 200))

    def observer() -> None:
        while not done.is_set() or len(observed) < 10:
            observed.append(px.atomic(lambda: sum(accounts.values())))

    def clients() -> None:
        try:
            run_threads([functools.partial(client, seed) for seed in range(8)], timeout=80)
        finally:
            done.set()

    run_threads([clients, observer], timeout=85)
    assert px.stm_stats()["commits"] == 80_000 + len(observed)
    assert len(observed) >= 10
    assert set(observed) == {total}
    assert sum(accounts.snapshot().values()) == total
    assert all(v >= 0 for v in accounts.values())


# ---- serialisability: the outcome of some serial order -------------------------

@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=40))
def test_parallel_for_non_commutative_updates_follow_the_commit_order(ks: list[int]) -> None:
    x = px.tvar(1, name="x")
    order: px.tlist[int] = px.tlist(name="order")

    def update(k: int) -> int:
        x.set(x.get() * 2 + k)   # order matters
        order.append(k)          # commits with the update, so in the same order
        return k

    assert px.parallel_for(ks, update) == ks
    recorded = order.snapshot()
    assert sorted(recorded) == sorted(ks)
    expected = 1
    for k in recorded:
        expected = expected * 2 + k
    assert x.get() == expected


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-50, 50)), min_size=1, max_size=60))
def test_parallel_for_commutative_updates_sum_up(updates: list[tuple[int, int]]) -> None:
    d: px.tdict[int, int] = px.tdict(name="sums")

    def add(update: tuple[int, int]) -> None:
        key, delta = update
        d[key] = d.get(key, 0) + delta

    px.parallel_for(updates, add)
    expected: dict[int, int] = {}
    for key, delta in updates:
        expected[key] = expected.get(key, 0) + delta
    assert d.snapshot() == expected
    assert len(d) == len(expected)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(), min_size=0, max_size=80))
def test_parallel_appends_lose_nothing_and_keep_a_serial_order(items: list[int]) -> None:
    log: px.tlist[tuple[int, int]] = px.tlist(name="log")
    seen = px.tvar(0)

    def record(item: int) -> None:
        n = seen.get()          # appends also ordered against a counter
        seen.set(n + 1)
        log.append((n, item))

    px.parallel_for(items, record)
    entries = log.snapshot()
    assert [n for n, _ in entries] == list(range(len(items)))
    assert sorted(item for _, item in entries) == sorted(items)


def test_parallel_for_results_in_input_order_and_errors_after_all_ran() -> None:
    d: px.tdict[int, int] = px.tdict()

    def square(i: int) -> int:
        d[i] = i * i
        return i * i

    assert px.parallel_for(range(200), square) == [i * i for i in range(200)]

    def fail_on_7(i: int) -> None:
        d[i] = -1
        if i == 7:
            raise ValueError("seven")

    with pytest.raises(ValueError, match="seven"):
        px.parallel_for(range(50), fail_on_7)
    snap = d.snapshot()
    assert snap[7] == 49                 # the failing iteration rolled back
    assert all(snap[i] == -1 for i in range(50) if i != 7)


def test_parallel_for_runs_on_the_runtime_map(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, Any]] = []

    def fake_map(func: Callable[[Any], Any], iterable: Any, chunksize: int | None = None) -> list[Any]:
        items = list(iterable)
        calls.append((len(items), chunksize))
        return [func(item) for item in items]

    monkeypatch.setattr(stm._parallel, "_parallel_map", fake_map)
    v = px.tvar(0)
    assert px.parallel_for(range(10), lambda i: v.set(v.get() + i), chunksize=3) == [None] * 10
    assert calls == [(10, 3)]
    assert v.get() == 45


def test_parallel_for_inside_a_transaction_is_refused() -> None:
    with pytest.raises(px.TransactionError):
        px.atomic(px.parallel_for, [1, 2], lambda i: i)


# ---- isolation and opacity ------------------------------------------------------

def test_writes_are_invisible_until_commit() -> None:
    d: px.tdict[str, int] = px.tdict({"a": 0, "b": 0})
    v = px.tvar("old")
    items = px.tlist([1])
    written, release = threading.Event(), threading.Event()

    def body() -> None:
        d["a"], d["b"] = 1, 1
        d["new"] = 1
        v.set("new")
        items.append(2)
        items[0] = 10
        written.set()
        assert release.wait(10)

    t = threading.Thread(target=px.atomic, args=(body,))
    t.start()
    assert written.wait(10)
    # Outside any transaction and in one: nothing of the running one shows.
    assert (d["a"], d["b"], "new" in d, len(d)) == (0, 0, False, 2)
    assert v.get() == "old" and items.snapshot() == [1] and len(items) == 1
    assert px.atomic(lambda: (d.snapshot(), v.get(), items.snapshot())) == (
        {"a": 0, "b": 0}, "old", [1])
    release.set()
    t.join(10)
    assert d.snapshot() == {"a": 1, "b": 1, "new": 1}
    assert v.get() == "new" and items.snapshot() == [10, 2]


def test_no_thread_sees_part_of_a_transaction() -> None:
    pair: px.tdict[str, int] = px.tdict({"a": 0, "b": 0})
    ring = px.tlist([0] * 8)
    stop = threading.Event()
    torn: list[Any] = []

    def writer() -> None:
        for i in range(1, 3000):
            def step(i: int = i) -> None:
                pair["a"] = i
                for j in range(len(ring)):
                    ring[j] = i
                pair["b"] = i
            px.atomic(step)
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            a, values, b = px.atomic(lambda: (pair["a"], ring.snapshot(), pair["b"]))
            if a != b or set(values) != {a}:
                torn.append((a, values, b))

    run_threads([writer, reader, reader])
    assert torn == []


def test_a_running_transaction_never_sees_an_inconsistent_snapshot() -> None:
    # Writers keep x + y == 0. A reader that reads x, lets writers commit, then
    # reads y must be stopped (and run again) rather than see x + y != 0.
    x, y = px.tvar(0, name="x"), px.tvar(0, name="y")
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            px.atomic(lambda i=i: (x.set(i), y.set(-i)))  # this round's i, on every retry
            time.sleep(0)

    def read_pair() -> int:
        a = x.get()
        time.sleep(0.0005)
        b = y.get()
        assert a + b == 0, (a, b)
        return a

    def reader() -> None:
        try:
            for _ in range(300):
                px.atomic(read_pair)
        finally:
            stop.set()

    run_threads([writer, reader])
    assert px.stm_stats()["retries"] > 0   # the readers did meet writers


def test_read_only_transactions_take_no_locks_and_leave_the_clock() -> None:
    d: px.tdict[int, int] = px.tdict({1: 10, 2: 20})
    v = px.tvar(5)
    before = _core._stm_now()
    assert px.atomic(lambda: d[1] + d[2] + v.get() + len(d) + d.get(3, 0)) == 37
    assert _core._stm_now() == before
    s = px.stm_stats()
    assert (s["commits"], s["read_only"], s["aborts"]) == (1, 1, 0)


# ---- conflicts, retries, the irrevocable fallback ---------------------------------

def test_a_conflict_is_retried_and_counted() -> None:
    v = px.tvar(0, name="contended")
    hold, go = threading.Event(), threading.Event()
    body = conflict_once(v, hold, go)
    t = threading.Thread(target=px.atomic, args=(body,))
    t.start()
    assert hold.wait(10)
    v.set(1)            # commits while the other transaction has read v
    go.set()
    t.join(10)
    assert body.runs[0] == 2             # type: ignore[attr-defined]
    assert v.get() == 11                 # the second run saw the commit
    s = px.stm_stats()
    assert s["retries"] == 1 and s["aborts"] == 1 and s["serial_fallbacks"] == 0
    assert s["conflicts"][0] == {"container": "contended", "key": None, "count": 1}


def test_disjoint_keys_never_conflict() -> None:
    d: px.tdict[int, int] = px.tdict({i: 0 for i in range(4)})

    def bump(key: int) -> None:
        for _ in range(3000):
            px.atomic(lambda: d.__setitem__(key, d[key] + 1))

    run_threads([functools.partial(bump, k) for k in range(4)])
    assert d.snapshot() == {i: 3000 for i in range(4)}
    s = px.stm_stats()
    assert s["aborts"] == 0 and s["conflicts"] == []


def test_serial_fallback_finishes_a_contended_transaction() -> None:
    px.stm_config(max_retries=0)
    v = px.tvar(0, name="hot")
    hold, go = threading.Event(), threading.Event()
    body = conflict_once(v, hold, go)
    t = threading.Thread(target=px.atomic, args=(body,))
    t.start()
    assert hold.wait(10)
    v.set(1)
    go.set()
    t.join(10)
    assert v.get() == 11
    assert px.stm_stats()["serial_fallbacks"] == 1


def test_others_wait_for_the_irrevocable_transaction() -> None:
    px.stm_config(max_retries=0)
    v = px.tvar(0, name="v")
    hold, go = threading.Event(), threading.Event()
    serial_holding, finish = threading.Event(), threading.Event()
    runs = [0]

    def body() -> None:
        runs[0] += 1
        value = v.get()
        if runs[0] == 1:       # first run: lose a conflict on purpose
            hold.set()
            assert go.wait(10)
        else:                  # irrevocable run: keep v locked a while
            serial_holding.set()
            assert finish.wait(10)
        v.set(value + 10)

    t = threading.Thread(target=px.atomic, args=(body,))
    t.start()
    assert hold.wait(10)
    v.set(1)
    go.set()
    assert serial_holding.wait(10)
    other_done = threading.Event()
    other = threading.Thread(target=lambda: (px.atomic(lambda: v.set(v.get() + 100)),
                                             other_done.set()))
    other.start()
    assert not other_done.wait(0.3)   # it waits for the irrevocable one
    finish.set()
    t.join(10)
    other.join(10)
    assert v.get() == 111             # 1, +10 (irrevocable), then +100


def test_contended_counter_with_tiny_retry_limit_is_exact() -> None:
    px.stm_config(max_retries=1)
    v = px.tvar(0)
    total = px.tvar(0)

    def bump() -> None:
        for _ in range(2000):
            px.atomic(lambda: (v.set(v.get() + 1), total.set(total.get() + 1)))

    run_threads([bump] * 6)
    assert v.get() == total.get() == 12_000


# ---- nesting and exceptions ------------------------------------------------------

def test_nested_atomic_joins_the_outer_transaction() -> None:
    d: px.tdict[str, int] = px.tdict()
    seen: list[bool] = []

    def inner() -> int:
        seen.append(px.in_transaction())
        d["inner"] = 1
        return d["outer"] + 1

    def outer() -> int:
        d["outer"] = 1
        r = px.atomic(inner)
        assert d["inner"] == 1
        return r

    assert px.atomic(outer) == 2
    assert px.stm_stats()["commits"] == 1        # one transaction
    assert d.snapshot() == {"outer": 1, "inner": 1}
    assert seen == [True]


def test_exception_in_nested_block_undoes_only_the_inner_writes() -> None:
    d: px.tdict[str, int] = px.tdict()
    items: px.tlist[int] = px.tlist()

    def inner() -> None:
        d["inner"] = 1
        d["outer"] = 99
        items.append(2)
        raise KeyError("inner")

    def outer() -> None:
        d["outer"] = 1
        items.append(1)
        with pytest.raises(KeyError):
            px.atomic(inner)

    px.atomic(outer)
    assert d.snapshot() == {"outer": 1}
    assert items.snapshot() == [1]


def test_exception_rolls_back_and_propagates() -> None:
    d: px.tdict[str, int] = px.tdict({"a": 1})
    items = px.tlist([1, 2])

    class Boom(Exception):
        pass

    def body() -> None:
        d["a"] = 2
        d["b"] = 3
        del d["a"]
        items.pop()
        items.append(7)
        raise Boom()

    with pytest.raises(Boom):
        px.atomic(body)
    s = px.stm_stats()
    assert (s["exceptions"], s["aborts"], s["commits"]) == (1, 1, 0)
    assert d.snapshot() == {"a": 1} and items.snapshot() == [1, 2]
    assert not px.in_transaction()


def test_a_swallowed_conflict_still_retries() -> None:
    v = px.tvar(0)
    hold, go = threading.Event(), threading.Event()
    runs = [0]

    def body() -> None:
        runs[0] += 1
        first = v.get()
        if runs[0] == 1:
            hold.set()
            assert go.wait(10)
        try:
            px.atomic(lambda: v.get())   # the conflict surfaces here
        except BaseException:            # and this code swallows it
            pass
        v.set(first + 1)

    t = threading.Thread(target=px.atomic, args=(body,))
    t.start()
    assert hold.wait(10)
    px.atomic(lambda: v.set(100))
    # v.get() above only conflicts when the snapshot has to move; make it so.
    go.set()
    t.join(10)
    assert v.get() == 101 and runs[0] == 2


# ---- I/O inside a transaction ------------------------------------------------------

def test_io_inside_a_transaction_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    readable = tmp_path / "in.txt"
    readable.write_text("data")

    def write_file() -> None:
        with open(target, "w") as f:
            f.write("x")

    with pytest.raises(px.IOInTransactionError, match="inside an atomic transaction"):
        px.atomic(write_file)
    assert not target.exists()
    with pytest.raises(px.IOInTransactionError):
        px.atomic(os.open, str(target), os.O_WRONLY | os.O_CREAT)
    with pytest.raises(px.IOInTransactionError):
        px.atomic(os.remove, str(readable))
    assert px.atomic(readable.read_text) == "data"   # reading is allowed

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        def connect_out() -> None:
            with socket.socket() as s:
                s.connect(listener.getsockname())

        with pytest.raises(px.IOInTransactionError, match="socket.connect"):
            px.atomic(connect_out)
    finally:
        listener.close()
    with pytest.raises(px.IOInTransactionError, match="register"):
        px.atomic(px.register, px.client("127.0.0.1", 9), object)
    with pytest.raises(px.IOInTransactionError, match="my_io"):
        px.atomic(stm.refuse_in_transaction, "my_io")
    stm.refuse_in_transaction("my_io")   # outside: nothing happens
    assert issubclass(px.IOInTransactionError, px.TransactionError)
    # Outside transactions the same calls work.
    write_file()
    assert target.read_text() == "x"


def test_transport_io_inside_a_transaction_is_refused(spawn: Any, backend: str) -> None:
    srv = spawn("stm.py", backend=backend)
    with connect(srv.ports["io"]) as s:
        for _ in range(2):
            s.sendall(b"go\n")
            assert recv_until_line(s) == b"IOInTransactionError IOInTransactionError\n"


def test_transactions_on_the_engine_workers(spawn: Any, backend: str) -> None:
    srv = spawn("stm.py", backend=backend)
    clients, lines = 4, 300
    answers: list[list[int]] = [[] for _ in range(clients)]

    def client(i: int) -> None:
        with connect(srv.ports["count"]) as s:
            for _ in range(lines):
                s.sendall(b"+\n")
                answers[i].append(int(recv_until_line(s)))

    run_threads([functools.partial(client, i) for i in range(clients)])
    every = sorted(n for a in answers for n in a)
    assert every == list(range(1, clients * lines + 1))   # no increment lost
    assert all(a == sorted(a) for a in answers)


# ---- statistics ------------------------------------------------------------------

def test_stm_stats_fields_and_reset() -> None:
    v = px.tvar(0, name="s")
    px.atomic(lambda: v.set(1))
    px.atomic(lambda: v.get())
    s = px.stm_stats()
    assert set(s) == {"commits", "read_only", "aborts", "retries", "serial_fallbacks",
                      "exceptions", "conflicts", "max_retries", "aborts_by_cause",
                      "snapshot_extensions"}
    assert s["aborts_by_cause"] == {"read_locked": 0, "stale_read": 0, "commit_locked": 0,
                                    "exception": 0}
    assert (s["commits"], s["read_only"]) == (2, 1)
    assert s["max_retries"] == px.stm_config()["max_retries"]
    assert px.stm_stats(reset=True)["commits"] == 2
    assert px.stm_stats()["commits"] == 0
    px.atomic(lambda: v.get())
    assert px.stm_stats()["commits"] == 1


def test_stm_stats_ranks_the_most_conflicted_locations() -> None:
    d: px.tdict[str, int] = px.tdict({"hot": 0, "warm": 0}, name="ranked")

    def conflict_once(key: str) -> None:
        # A transaction reads d[key]; a plain write to it lands before the commit.
        hold, go = threading.Event(), threading.Event()
        runs = [0]

        def body() -> None:
            runs[0] += 1
            value = d[key]
            if runs[0] == 1:
                hold.set()
                assert go.wait(10)
            d[key] = value + 1

        t = threading.Thread(target=px.atomic, args=(body,))
        t.start()
        assert hold.wait(10)
        d[key] = d[key] + 100
        go.set()
        t.join(10)

    for key, times in (("hot", 3), ("warm", 1)):
        for _ in range(times):
            conflict_once(key)
    conflicts = px.stm_stats(top=1)["conflicts"]
    assert conflicts == [{"container": "ranked", "key": "hot", "count": 3}]
    assert [c["key"] for c in px.stm_stats()["conflicts"]] == ["hot", "warm"]


def test_a_length_conflict_is_reported_as_such() -> None:
    d: px.tdict[str, int] = px.tdict({"a": 1}, name="sized")
    hold, go = threading.Event(), threading.Event()
    runs = [0]

    def body() -> None:
        runs[0] += 1
        n = len(d)
        if runs[0] == 1:
            hold.set()
            assert go.wait(10)
        d["count"] = n

    t = threading.Thread(target=px.atomic, args=(body,))
    t.start()
    assert hold.wait(10)
    d["b"] = 2          # a new key: the length changes
    go.set()
    t.join(10)
    assert d["count"] == 2 and runs[0] == 2
    assert px.stm_stats()["conflicts"] == [{"container": "sized", "key": "<length>", "count": 1}]


def test_stm_config_validates() -> None:
    with pytest.raises(ValueError):
        px.stm_config(max_retries=-1)
    assert px.stm_config(max_retries=5) == {"max_retries": 5}


# ---- the containers behave like dict and list -------------------------------------

list_ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 99)),
    st.tuples(st.just("insert"), st.integers(-6, 6), st.integers(0, 99)),
    st.tuples(st.just("pop"), st.integers(-6, 6)),
    st.tuples(st.just("set"), st.integers(-6, 6), st.integers(0, 99)),
    st.tuples(st.just("get"), st.integers(-6, 6)),
    st.tuples(st.just("len"),),
    st.tuples(st.just("extend"), st.lists(st.integers(0, 99), max_size=3)),
    st.tuples(st.just("remove"), st.integers(0, 99)),
    st.tuples(st.just("slice"), st.integers(-4, 4), st.integers(-4, 4)),
    st.tuples(st.just("clear"),),
), max_size=30)


def apply_list_op(target: Any, op: tuple[Any, ...]) -> Any:
    name = op[0]
    try:
        if name == "append":
            return target.append(op[1])
        if name == "insert":
            return target.insert(op[1], op[2])
        if name == "pop":
            return target.pop(op[1])
        if name == "set":
            target[op[1]] = op[2]
            return None
        if name == "get":
            return target[op[1]]
        if name == "len":
            return len(target)
        if name == "extend":
            return target.extend(op[1])
        if name == "remove":
            return target.remove(op[1])
        if name == "slice":
            return list(target[op[1]:op[2]])
        return target.clear()
    except (IndexError, ValueError) as exc:
        return type(exc).__name__


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 99), max_size=6), list_ops, st.booleans())
def test_tlist_behaves_like_list(initial: list[int], ops: list[tuple[Any, ...]],
                                 one_transaction: bool) -> None:
    model = list(initial)
    tl = px.tlist(initial)
    expected = [apply_list_op(model, op) for op in ops]
    if one_transaction:
        got = px.atomic(lambda: [apply_list_op(tl, op) for op in ops])
    else:
        got = [apply_list_op(tl, op) for op in ops]
    assert got == expected
    assert tl.snapshot() == model and len(tl) == len(model)


dict_ops = st.lists(st.one_of(
    st.tuples(st.just("set"), st.integers(0, 5), st.integers()),
    st.tuples(st.just("get"), st.integers(0, 5)),
    st.tuples(st.just("del"), st.integers(0, 5)),
    st.tuples(st.just("pop"), st.integers(0, 5)),
    st.tuples(st.just("setdefault"), st.integers(0, 5), st.integers()),
    st.tuples(st.just("contains"), st.integers(0, 5)),
    st.tuples(st.just("len"),),
    st.tuples(st.just("items"),),
    st.tuples(st.just("update"), st.dictionaries(st.integers(0, 5), st.integers(), max_size=3)),
    st.tuples(st.just("clear"),),
), max_size=30)


def apply_dict_op(target: Any, op: tuple[Any, ...]) -> Any:
    name = op[0]
    try:
        if name == "set":
            target[op[1]] = op[2]
            return None
        if name == "get":
            return target[op[1]]
        if name == "del":
            del target[op[1]]
            return None
        if name == "pop":
            return target.pop(op[1], "dflt")
        if name == "setdefault":
            return target.setdefault(op[1], op[2])
        if name == "contains":
            return op[1] in target
        if name == "len":
            return len(target)
        if name == "items":
            return sorted(target.items())
        if name == "update":
            return target.update(op[1])
        return target.clear()
    except KeyError:
        return "KeyError"


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 5), st.integers(), max_size=4), dict_ops, st.booleans())
def test_tdict_behaves_like_dict(initial: dict[int, int], ops: list[tuple[Any, ...]],
                                 one_transaction: bool) -> None:
    model = dict(initial)
    td = px.tdict(initial)
    expected = [apply_dict_op(model, op) for op in ops]
    if one_transaction:
        got = px.atomic(lambda: [apply_dict_op(td, op) for op in ops])
    else:
        got = [apply_dict_op(td, op) for op in ops]
    assert got == expected
    assert td.snapshot() == model and len(td) == len(model)
    assert sorted(td) == sorted(model)


def test_tvar_value_property_and_outside_use() -> None:
    v = px.tvar([1])
    assert v.value == [1]
    v.value = [2]
    assert v.get() == [2]
    assert px.atomic(lambda: (v.set(3), v.get(), v.value)[1:]) == (3, 3)
    assert repr(v) == "tvar(3)"


def test_concurrent_appends_outside_transactions_all_land() -> None:
    items: px.tlist[int] = px.tlist()

    def add(base: int) -> None:
        for i in range(1000):
            items.append(base + i)

    run_threads([functools.partial(add, b * 10_000) for b in range(4)])
    got = items.snapshot()
    assert sorted(got) == sorted(b * 10_000 + i for b in range(4) for i in range(1000))
    for b in range(4):   # each thread's appends keep their own order
        mine = [x for x in got if b * 10_000 <= x < (b + 1) * 10_000]
        assert mine == sorted(mine)
