"""Values in transactional containers are read and released by threads other
than the one that made them: on free-threaded CPython a committed value is
handed over to shared reference counting, so that another thread's release
frees it directly instead of queueing it to its maker.

Both interpreters: the objects are freed once nothing holds them, whichever
thread made, replaced or read them.
"""

from __future__ import annotations

import ctypes
import gc
import threading
import time
import weakref

import pytest

import pyparallel as px
from pyparallel import _core


class Payload:
    """An object with a weak reference: tells when it is freed."""

    __slots__ = ("__weakref__", "n")

    def __init__(self, n: int) -> None:
        self.n = n


def owner_of(obj: object) -> int:
    """The owning thread recorded in a free-threaded object's header (0: none)."""
    return ctypes.c_size_t.from_address(id(obj)).value


writes_fields = pytest.mark.skipif(
    not _core.share_info()["immortal"],
    reason="reference counts are only handed over where share() writes the object header "
           "(free-threaded CPython of a tested version)")


@writes_fields
def test_a_value_written_by_a_transaction_has_no_owner_thread() -> None:
    box: px.tvar[object] = px.tvar(None, name="box")
    book: px.tdict[str, object] = px.tdict(name="book")
    cells: px.tlist[object] = px.tlist([None], name="cells")
    made = [Payload(1), Payload(2), Payload(3)]
    assert all(owner_of(p) != 0 for p in made)

    def put() -> None:
        box.set(made[0])
        book["k"] = made[1]
        cells[0] = made[2]

    px.atomic(put)
    assert [owner_of(p) for p in made] == [0, 0, 0]
    assert box.get() is made[0] and book["k"] is made[1] and cells[0] is made[2]


@writes_fields
def test_initial_values_of_a_container_have_no_owner_thread() -> None:
    first, second = Payload(1), Payload(2)
    book = px.tdict({"a": first}, name="book")
    box = px.tvar(second, name="box")
    assert owner_of(first) == 0 and owner_of(second) == 0
    assert book["a"] is first and box.get() is second


def test_values_made_by_one_thread_and_replaced_by_another_are_freed() -> None:
    book: px.tdict[int, Payload] = px.tdict(name="book")
    refs: list[weakref.ref[Payload]] = []
    KEYS, ROUNDS = 16, 50

    def fill(base: int) -> None:
        for r in range(ROUNDS):
            for k in range(KEYS):
                p = Payload(base + r * KEYS + k)
                refs.append(weakref.ref(p))
                px.atomic(book.__setitem__, k, p)
                assert px.atomic(book.__getitem__, k).n >= 0

    threads = [threading.Thread(target=fill, args=(i * 1_000_000,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = {k: book[k] for k in range(KEYS)}
    kept_ids = {id(p) for p in kept.values()}
    book.clear()
    # Replaced values wait in the STM's limbo until no reader can hold them;
    # later transactions move the epochs on and release them.
    deadline = time.monotonic() + 30
    while (left := sum(1 for r in refs if id(r()) not in kept_ids | {id(None)})):
        assert time.monotonic() < deadline, f"{left} replaced values never freed"
        px.atomic(book.__setitem__, -1, 0)
        gc.collect()
    assert sorted(p.n % 1_000_000 % KEYS for p in kept.values()) == list(range(KEYS))
    kept.clear()
    deadline = time.monotonic() + 30
    while (left := sum(1 for r in refs if r() is not None)):
        assert time.monotonic() < deadline, f"{left} last values never freed"
        px.atomic(book.__setitem__, -1, 0)
