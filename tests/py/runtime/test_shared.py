"""Shared state: the readers-writer lock (readers together, writers alone,
writers preferred, re-entrancy, upgrades refused, waits that detach the thread
state and give way to signals), protect()/unprotect()/protected() with their
side table, and the protected containers px.dict() and px.list() under
concurrent writers. Runs in this process, on both interpreters."""

from __future__ import annotations

import copy
import gc
import json
import pickle
import signal
import threading
import time
import weakref

import pytest

import pyparallel as px

T = 10.0  # seconds any wait in these tests may take before it counts as a hang


def start(fn, *args) -> threading.Thread:
    th = threading.Thread(target=fn, args=args, daemon=True)
    th.start()
    return th


def wait_for(pred, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


# ---- the lock ----------------------------------------------------------------

def test_two_readers_hold_the_lock_at_once() -> None:
    lock = px.RWLock()
    both_inside = threading.Barrier(3, timeout=T)
    seen = []

    def reader() -> None:
        with lock.reader:
            both_inside.wait()  # passes only if the other reader is inside too
            seen.append(lock.readers)
            both_inside.wait()

    threads = [start(reader), start(reader)]
    both_inside.wait()
    both_inside.wait()
    for th in threads:
        th.join(T)
    assert seen == [2, 2]
    assert lock.readers == 0 and not lock.write_locked


def test_writers_are_alone_and_no_update_is_lost() -> None:
    lock = px.RWLock()
    state = {"writers": 0, "readers": 0, "value": 0, "bad": 0}
    n_threads, rounds = 4, 2000

    def writer() -> None:
        for _ in range(rounds):
            with lock.writer:
                state["writers"] += 1
                if state["writers"] != 1 or state["readers"]:
                    state["bad"] += 1
                v = state["value"]
                time.sleep(0) if _ % 97 == 0 else None  # give others a chance to interfere
                state["value"] = v + 1
                state["writers"] -= 1

    def reader() -> None:
        for _ in range(rounds):
            with lock.reader:
                if state["writers"]:
                    state["bad"] += 1

    threads = [start(writer) for _ in range(n_threads)] + [start(reader) for _ in range(2)]
    for th in threads:
        th.join(60)
        assert not th.is_alive()
    assert state["bad"] == 0
    assert state["value"] == n_threads * rounds


def test_a_waiting_writer_holds_back_new_readers() -> None:
    lock = px.RWLock()
    order = []
    lock.acquire_read()  # this thread reads

    def writer() -> None:
        with lock.writer:
            order.append("writer")

    def late_reader() -> None:
        with lock.reader:
            order.append("late reader")

    w = start(writer)
    wait_for(lambda: lock.writers_waiting == 1)
    probe = []
    start(lambda: probe.append(lock.acquire_read(blocking=False))).join(T)
    assert probe == [False]  # a new reader may not jump the waiting writer
    r = start(late_reader)
    time.sleep(0.05)
    assert order == []
    # This thread still reads, and may read again although a writer waits.
    assert lock.acquire_read(blocking=False) is True
    lock.release_read()
    lock.release_read()
    w.join(T)
    r.join(T)
    assert order == ["writer", "late reader"]


def test_reentrancy_rules() -> None:
    lock = px.RWLock()
    with lock.reader:
        with lock.reader:
            assert lock.held() == "read" and lock.readers == 1
        with pytest.raises(RuntimeError, match="upgrade"):
            lock.acquire_write()
        with pytest.raises(RuntimeError, match="upgrade"):
            with lock.writer:
                pass
        assert lock.held() == "read"
    assert lock.held() is None
    with lock.writer:
        with lock.writer:
            with lock.reader:
                assert lock.held() == "write" and lock.write_locked
    assert lock.held() is None and not lock.write_locked
    # An exception inside releases, as the with statement promises.
    with pytest.raises(KeyError):
        with lock.writer:
            raise KeyError("x")
    assert not lock.write_locked and lock.acquire_read(blocking=False)
    lock.release_read()


def test_release_by_a_thread_that_does_not_hold_it() -> None:
    lock = px.RWLock()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release_read()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release_write()
    lock.acquire_write()
    errors = []

    def other() -> None:
        try:
            lock.release_write()
        except RuntimeError as exc:
            errors.append(str(exc))

    start(other).join(T)
    assert errors and "does not hold" in errors[0]
    assert lock.write_locked
    lock.release_write()


def test_non_blocking_attempts() -> None:
    lock = px.RWLock()
    got = []
    holding = threading.Event()
    done = threading.Event()

    def hold_read() -> None:
        with lock.reader:
            holding.set()
            done.wait(T)

    th = start(hold_read)
    holding.wait(T)
    assert lock.acquire_write(blocking=False) is False
    assert lock.acquire_read(blocking=False) is True
    lock.release_read()
    done.set()
    th.join(T)
    got.append(lock.acquire_write(blocking=False))
    assert got == [True]
    lock.release_write()


def test_blocked_waiters_let_others_run_python_and_collect() -> None:
    """A thread blocked on the lock has detached its thread state: the holder
    keeps running Python (under a GIL too) and even a stop-the-world garbage
    collection (free-threaded) completes while it waits."""
    lock = px.RWLock()
    got_in = threading.Event()

    def blocked_reader() -> None:
        with lock.reader:
            got_in.set()

    with lock.writer:
        th = start(blocked_reader)
        time.sleep(0.1)
        total = sum(i * i for i in range(200_000))  # Python, while the other waits
        assert gc.collect() >= 0
        assert not got_in.is_set()
    th.join(T)
    assert got_in.is_set() and total > 0


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_a_signal_handler_interrupts_a_wait_on_the_main_thread() -> None:
    lock = px.RWLock()
    holding = threading.Event()
    release = threading.Event()

    class Alarm(Exception):
        pass

    def hold() -> None:
        with lock.reader:
            holding.set()
            release.wait(T)

    def on_alarm(signum, frame):
        raise Alarm()

    th = start(hold)
    holding.wait(T)
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        started = time.monotonic()
        with pytest.raises(Alarm):
            lock.acquire_write()
        assert time.monotonic() - started < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    # The abandoned wait left nothing behind: readers may enter again.
    assert lock.writers_waiting == 0 and not lock.write_locked
    assert lock.acquire_read(blocking=False) is True
    lock.release_read()
    release.set()
    th.join(T)
    assert lock.acquire_write(blocking=False) is True
    lock.release_write()


# ---- protect -----------------------------------------------------------------

class Thing:
    pass


def test_protect_unprotect_protected() -> None:
    thing = Thing()
    assert not px.protected(thing)
    with pytest.raises(ValueError, match="not protected"):
        px.read_lock(thing)
    assert px.protect(thing) is thing
    assert px.protect(thing) is thing  # idempotent
    assert px.protected(thing)
    with px.read_lock(thing):
        with px.read_lock(thing):
            pass
    with px.write_lock(thing):
        pass
    assert px.unprotect(thing) is thing
    assert not px.protected(thing)
    with pytest.raises(ValueError):
        px.write_lock(thing)


def test_side_table_forgets_dead_objects_and_keeps_unreferenceable_ones() -> None:
    table = px.runtime._protect._protected
    thing = px.protect(Thing())
    key = id(thing)
    assert key in table
    del thing
    gc.collect()
    assert key not in table  # weakly referenced: gone with the object

    plain = px.protect({"a": 1})  # a builtin dict cannot be weakly referenced
    ref_key = id(plain)
    del plain
    gc.collect()
    kept = table[ref_key].target()
    assert kept == {"a": 1} and px.protected(kept)  # kept alive until unprotect()
    px.unprotect(kept)
    assert ref_key not in table


def test_protected_plain_objects_readers_overlap() -> None:
    data = px.protect([1, 2, 3])
    meet = threading.Barrier(2, timeout=T)

    def reader() -> None:
        with px.read_lock(data):
            meet.wait()

    threads = [start(reader), start(reader)]
    for th in threads:
        th.join(T)
    assert not meet.broken
    px.unprotect(data)


# ---- the protected containers ------------------------------------------------

def test_protected_containers_are_always_protected() -> None:
    d, lst = px.dict(a=1), px.list([1])
    assert px.protected(d) and px.protected(lst)
    assert px.protect(d) is d
    with pytest.raises(ValueError, match="always protected"):
        px.unprotect(d)
    with pytest.raises(ValueError, match="always protected"):
        px.unprotect(lst)
    assert isinstance(d, dict) and isinstance(lst, list)
    assert isinstance(d, px.ProtectedDict) and isinstance(lst, px.ProtectedList)


def test_protected_dict_behaves_like_a_dict() -> None:
    d = px.dict({"a": 1}, b=2)
    d["c"] = 3
    assert d == {"a": 1, "b": 2, "c": 3} and d != {"a": 1}
    assert len(d) == 3 and "a" in d and "z" not in d and d.get("z", 9) == 9
    assert list(d) == ["a", "b", "c"] and list(reversed(d)) == ["c", "b", "a"]
    assert list(d.keys()) == ["a", "b", "c"] and list(d.values()) == [1, 2, 3]
    assert d.keys() & {"a", "q"} == {"a"}
    assert d.setdefault("d", 4) == 4 and d.pop("d") == 4 and d.popitem() == ("c", 3)
    d.update({"x": 10}, y=11)
    d |= {"z": 12}
    assert isinstance(d, px.ProtectedDict)
    assert (d | {"w": 0})["w"] == 0
    del d["x"]
    c = d.copy()
    assert isinstance(c, px.ProtectedDict) and c == d and c is not d
    assert c._px_lock is not d._px_lock
    for clone in (copy.copy(d), copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert isinstance(clone, px.ProtectedDict) and clone == d
    assert json.loads(json.dumps(d)) == d
    assert json.loads(px._core.json_dumps(d)) == d
    assert repr(px.dict(a=1)) == "pyparallel.dict({'a': 1})"
    merged = px.dict(d)  # from another protected dict
    assert merged == d
    d.clear()
    assert d == {} and len(d) == 0


def test_protected_list_behaves_like_a_list() -> None:
    lst = px.list(range(3))
    lst.append(3)
    lst.extend(x for x in (4, 5))
    lst += [6]
    lst.insert(0, -1)
    assert lst == [-1, 0, 1, 2, 3, 4, 5, 6] and len(lst) == 8
    assert lst[0] == -1 and lst[-1] == 6 and lst[1:3] == [0, 1] and 3 in lst
    assert lst.index(3) == 4 and lst.count(3) == 1
    assert lst.pop() == 6 and lst.pop(0) == -1
    lst.remove(0)
    lst[0] = 10
    del lst[1]
    assert lst == [10, 3, 4, 5]
    lst.sort()
    assert lst == [3, 4, 5, 10]
    lst.reverse()
    assert list(lst) == [10, 5, 4, 3] and list(reversed(lst)) == [3, 4, 5, 10]
    assert lst + [1] == [10, 5, 4, 3, 1] and lst * 2 == [10, 5, 4, 3] * 2
    assert lst > [9] and lst <= [10, 5, 4, 3]
    lst *= 2
    assert isinstance(lst, px.ProtectedList) and len(lst) == 8
    c = lst.copy()
    assert isinstance(c, px.ProtectedList) and c == lst
    for clone in (copy.copy(lst), pickle.loads(pickle.dumps(lst))):
        assert isinstance(clone, px.ProtectedList) and clone == lst
    assert json.loads(px._core.json_dumps(lst)) == lst
    assert repr(px.list([1])) == "pyparallel.list([1])"
    lst.clear()
    assert lst == []


def test_protected_dict_no_lost_updates_under_concurrent_writers() -> None:
    d = px.dict()
    n_threads, rounds, keys = 4, 3000, 7

    def bump(tid: int) -> None:
        for i in range(rounds):
            with px.write_lock(d):  # read-modify-write made one operation
                k = i % keys
                d[k] = d.get(k, 0) + 1
            d[(tid, i % 5)] = i  # single operations need no block
            d.pop((tid, (i + 3) % 5), None)

    threads = [start(bump, t) for t in range(n_threads)]
    for th in threads:
        th.join(60)
        assert not th.is_alive()
    assert [d[k] for k in range(keys)] == \
        [n_threads * sum(1 for i in range(rounds) if i % keys == k) for k in range(keys)]


def test_protected_list_no_lost_updates_under_concurrent_writers() -> None:
    lst = px.list([0])
    n_threads, rounds = 4, 2000

    def work(tid: int) -> None:
        for i in range(rounds):
            lst.append((tid, i))
            with px.write_lock(lst):
                lst[0] += 1

    threads = [start(work, t) for t in range(n_threads)]
    for th in threads:
        th.join(60)
        assert not th.is_alive()
    assert lst[0] == n_threads * rounds
    assert len(lst) == 1 + n_threads * rounds
    assert sorted(lst[1:]) == sorted((t, i) for t in range(n_threads) for i in range(rounds))


def test_iterating_while_others_write_never_breaks() -> None:
    d = px.dict((i, i) for i in range(100))
    lst = px.list(range(100))
    stop = threading.Event()
    errors = []

    def writer() -> None:
        i = 100
        while not stop.is_set():
            d[i] = i
            d.pop(i - 50, None)
            with px.write_lock(lst):  # the length stays 100 for readers
                lst.append(i)
                lst.pop(0)
            i += 1

    def reader() -> None:
        try:
            for _ in range(300):
                for _k in d:
                    pass
                for _k, _v in d.items():
                    pass
                assert len(list(lst)) == 100
        except Exception as exc:  # "changed size during iteration", say
            errors.append(repr(exc))

    w = start(writer)
    readers = [start(reader) for _ in range(2)]
    for th in readers:
        th.join(60)
    stop.set()
    w.join(T)
    assert errors == []


def test_weak_references_to_protected_containers() -> None:
    d = px.dict(a=1)
    ref = weakref.ref(d)
    assert ref() is d
    del d
    gc.collect()
    assert ref() is None


def test_protected_containers_release_their_type_and_lock() -> None:
    import sys

    types = (px.ProtectedDict, px.ProtectedList, px._core.LockedDict, px._core.LockedList)
    gc.collect()
    before = [sys.getrefcount(t) for t in types]
    for _ in range(2000):
        d = px.dict(a=1)
        d["self"] = d  # a cycle: the collector frees it
        lst = px.list([1])
        lst.append(lst)
        plain = px._core.LockedDict()
        plain[1] = 2
        plain_list = px._core.LockedList()
        plain_list.append(1)
        del d, lst, plain, plain_list
    gc.collect()
    assert [sys.getrefcount(t) for t in types] == before


def test_star_import_keeps_the_builtins() -> None:
    namespace: dict = {}
    exec("from pyparallel import *", namespace)
    for name in ("dict", "list", "map"):
        assert name not in namespace
    assert "submit_work" in namespace and "read_lock" in namespace
    assert px.dict is px.runtime.dict and px.list is px.runtime.list and px.map is px.runtime.map
    from pyparallel import dict as px_dict  # an explicit import still works
    assert px_dict is px.runtime.dict
