"""Atomic blocks over transactional containers (AME: automatic mutual exclusion).

``atomic(func, *args)`` runs ``func`` as a transaction over :class:`tvar`,
:class:`tdict` and :class:`tlist` objects. Transactions appear to run one at a
time, in one global order, while they actually run in parallel on
free-threaded CPython; a transaction that met a conflicting commit runs again.

The algorithm is TL2 (transactional locking II) with snapshot extension:

* every *location* — a tvar, one key of a tdict, one index of a tlist, and the
  length of a tdict or tlist — holds an immutable ``(version, value)`` cell
  and a lock of its own;
* a transaction samples the global version clock when it starts (its read
  version ``rv``); each read checks that the location is unlocked and not
  newer than ``rv`` (when it is newer, the transaction tries to move its
  snapshot forward by revalidating what it read so far), so a running
  transaction only ever sees one consistent snapshot (opacity): a doomed
  transaction cannot loop or fail on a state that never existed;
* writes are buffered in the transaction; at commit it locks the locations it
  writes, advances the clock (its write version), revalidates its reads, then
  publishes the new cells and unlocks. Read-only transactions commit without
  locking anything or touching the clock;
* a transaction that has lost more than ``max_retries`` times runs
  *irrevocably*: only one such transaction at a time; it locks every location
  it touches as it goes (two-phase locking), transactions that start
  meanwhile wait for it, and those that run into its locks abort and wait, so
  it always finishes.

Locations are locked one by one, never all at once: transactions over
disjoint keys commit in parallel. Appends to a tlist that do not read its
length are resolved at commit, so concurrent appenders do not conflict.

The thread-local "current transaction", the version clock and the I/O guard
are in C (``_core._stm_*``): the guard is an audit hook that refuses I/O a
retry would repeat (opening files for writing, socket connect/bind/sendto,
processes, file-system changes) and ``Transport.send``/``close``/``abort``
refuse too, with :class:`IOInTransactionError`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from . import _core

__all__ = [
    "tvar", "tdict", "tlist", "atomic", "parallel_for", "stm_stats", "stm_config",
    "in_transaction", "refuse_in_transaction", "TransactionError", "IOInTransactionError",
]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

TransactionError = _core.TransactionError
IOInTransactionError = _core.IOInTransactionError

_now = _core._stm_now
_tick = _core._stm_tick
_current = _core._stm_current
_set_current = _core._stm_set_current

# How long a committer waits for a location another committer holds before it
# gives up (aborts): commit windows are short, a retry costs a whole run.
_LOCK_WAIT = 0.0002
# How many times a reader re-reads a location locked by a committer (yielding
# in between) before it aborts.
_READ_SPINS = 8


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


_ABSENT: Any = _Marker("<absent>")     # the value of a missing key or index
_NOWRITE: Any = _Marker("<no write>")
_SIZE: Any = _Marker("<length>")       # the key of a container's length location
_ABSENT_CELL = (0, _ABSENT)


class _Loc:
    """One location: its committed cell, or the transaction holding it locked.

    ``cell`` is a ``(version, value)`` tuple, or the committing (or
    irrevocable) transaction that holds ``lock``: readers tell the two apart
    by type, in one load.
    """

    __slots__ = ("cell", "lock", "home", "key")

    def __init__(self, home: Any, key: Any, cell: tuple[int, Any] = _ABSENT_CELL) -> None:
        self.cell: Any = cell
        self.lock = threading.Lock()
        self.home = home
        self.key = key


class _Conflict(BaseException):
    """Unwinds a doomed transaction; atomic() catches it and runs the transaction
    again. A BaseException so that ``except Exception`` in user code lets it
    through (and the transaction stays doomed if something swallows it)."""

    def __init__(self, home: Any, key: Any, serial: bool) -> None:
        super().__init__()
        self.home = home
        self.key = key
        self.serial = serial   # lost to the irrevocable transaction: wait for it


# The irrevocable mode: one transaction at a time holds the mutex; the flag
# (read by every transaction's start, written only by the holder) tells others
# to wait for it.
_serial_mutex = threading.Lock()
_serial_active = False


def _wait_for_serial() -> None:
    _serial_mutex.acquire()
    _serial_mutex.release()


class _Tx:
    """A transaction's state: its snapshot, read set, buffered writes."""

    __slots__ = ("rv", "reads", "missing", "writes", "appends", "lengths", "locked", "doomed")
    irrevocable = False

    def __init__(self, rv: int) -> None:
        # The rarely used parts are created on first use: a transaction's
        # start is on every caller's path.
        self.rv = rv
        self.reads: dict[_Loc, int] = {}            # location -> version read
        self.writes: dict[Any, dict[Any, Any]] = {}  # container -> key -> value
        self.missing: list[tuple[Any, Any]] | None = None  # (container, key) read, no location
        self.appends: dict[Any, list[Any]] | None = None   # tlist -> blind appends
        self.lengths: dict[Any, int] | None = None  # tlist -> its length as this tx sees it
        self.locked: dict[_Loc, tuple[int, Any]] | None = None  # location -> cell before lock
        self.doomed: _Conflict | None = None

    # -- reads ---------------------------------------------------------------

    def read(self, loc: _Loc) -> Any:
        """The value of loc in this transaction's snapshot (own writes excluded)."""
        cell = loc.cell
        if cell.__class__ is not tuple or cell[0] > self.rv:
            cell = self._read_slow(loc, cell)
        self.reads[loc] = cell[0]
        return cell[1]

    def _read_slow(self, loc: _Loc, cell: Any) -> tuple[int, Any]:
        spins = 0
        while True:
            if cell.__class__ is not tuple:
                if cell.irrevocable or spins >= _READ_SPINS:
                    self.fail(loc.home, loc.key, cell.irrevocable)
                spins += 1
                os.sched_yield()
            elif cell[0] <= self.rv:
                return cell  # type: ignore[no-any-return]
            else:
                self._extend(loc)
            cell = loc.cell

    def read_missing(self, home: Any, key: Any) -> Any:
        """A key that has no location yet: absent in every snapshot so far."""
        if self.missing is None:
            self.missing = []
        self.missing.append((home, key))
        return _ABSENT

    def _extend(self, loc: _Loc) -> None:
        """Move the snapshot to now if nothing read so far has changed."""
        rv = _now()
        bad = self.invalid()
        if bad is not None:
            self.fail(bad[0], bad[1], False)
        self.rv = rv

    def invalid(self) -> tuple[Any, Any] | None:
        """The first location read that changed since it was read, else None."""
        locked = self.locked or {}
        for loc, ver in self.reads.items():
            cell = loc.cell
            if cell.__class__ is not tuple:
                if cell is not self:
                    return loc.home, loc.key
                cell = locked[loc]
            if cell[0] != ver:
                return loc.home, loc.key
        rv = self.rv
        for home, key in self.missing or ():
            loc = home._find(key)
            if loc is None:
                continue
            cell = loc.cell
            if cell.__class__ is not tuple:
                if cell is not self:
                    return home, key
                cell = locked[loc]
            if cell[0] > rv or cell[1] is not _ABSENT:
                return home, key
        return None

    def fail(self, home: Any, key: Any, serial: bool) -> None:
        """Doom this transaction and unwind it."""
        self.doomed = _Conflict(home, key, serial)
        raise self.doomed

    # -- writes --------------------------------------------------------------

    def write(self, home: Any, key: Any, value: Any) -> None:
        w = self.writes.get(home)
        if w is None:
            w = self.writes[home] = {}
        w[key] = value

    def lock(self, loc: _Loc) -> tuple[int, Any]:
        """Lock loc for commit; its committed cell. Aborts if it stays taken."""
        locked = self.locked
        if locked is None:
            locked = self.locked = {}
        else:
            prev = locked.get(loc)
            if prev is not None:
                return prev
        self.acquire(loc)
        prev = loc.cell
        loc.cell = self
        locked[loc] = prev
        return prev  # type: ignore[no-any-return]

    def acquire(self, loc: _Loc) -> None:
        """Take loc's lock; abort if it stays taken."""
        lk = loc.lock
        if not lk.acquire(False) and not lk.acquire(True, _LOCK_WAIT):
            holder = loc.cell
            self.fail(loc.home, loc.key, holder.__class__ is not tuple and holder.irrevocable)

    # -- savepoints (nested atomic blocks) -------------------------------------

    def savepoint(self) -> tuple[Any, ...]:
        return ({h: dict(w) for h, w in self.writes.items()},
                {h: list(a) for h, a in self.appends.items()} if self.appends else None,
                dict(self.lengths) if self.lengths else None)

    def rollback_to(self, sp: tuple[Any, ...]) -> None:
        self.writes, self.appends, self.lengths = sp

    # -- commit --------------------------------------------------------------

    def commit(self) -> bool:
        """Publish the writes atomically; False for a read-only transaction."""
        if not self.writes and not self.appends:
            return False
        updates: list[tuple[_Loc, Any]] = []
        for home, w in self.writes.items():
            home._prepare(self, w, updates)
        for home in self.appends or ():
            if home not in self.writes:
                home._prepare(self, {}, updates)
        wv = _tick()
        if wv != self.rv + 1 and not self.irrevocable:
            bad = self.invalid()
            if bad is not None:
                self.fail(bad[0], bad[1], False)
        _publish(updates, wv)
        return True

    def release(self) -> None:
        """Unlock everything: what was published keeps its new cell, the rest
        gets its old one back."""
        locked = self.locked
        if locked:
            for loc, prev in locked.items():
                if loc.cell is self:
                    loc.cell = prev
                loc.lock.release()
            self.locked = None


def _publish(updates: list[tuple[_Loc, Any]], wv: int) -> None:
    # An exception arriving between two stores (a signal handler's) must not
    # leave half a commit: finish the stores before letting it through.
    i = 0
    try:
        for loc, value in updates:
            loc.cell = (wv, value)
            i += 1
    finally:
        while i < len(updates):
            loc, value = updates[i]
            loc.cell = (wv, value)
            i += 1


class _SerialTx(_Tx):
    """An irrevocable transaction: locks what it touches, so it never aborts."""

    __slots__ = ()
    irrevocable = True

    def read(self, loc: _Loc) -> Any:
        return self.lock(loc)[1]

    def read_missing(self, home: Any, key: Any) -> Any:
        loc = home._loc_for_lock(self, key)
        return _ABSENT if loc is None else self.lock(loc)[1]

    def acquire(self, loc: _Loc) -> None:
        # Other holders are committers: they hold locks only while they
        # commit, and give up any they wait for within _LOCK_WAIT.
        loc.lock.acquire()


# -- statistics: per-thread counters, merged on demand -------------------------

class _Stats:
    __slots__ = ("epoch", "commits", "read_only", "aborts", "retries", "serial",
                 "exceptions", "conflicts")

    def __init__(self, epoch: int) -> None:
        self.reset(epoch)

    def reset(self, epoch: int) -> None:
        self.epoch = epoch
        self.commits = self.read_only = self.aborts = self.retries = 0
        self.serial = self.exceptions = 0
        self.conflicts: dict[tuple[str, Any], int] = {}


# Counters per thread identifier (a thread that reuses a dead one's
# identifier carries on with its counters; totals stay right).
_stats_by_thread: dict[int, _Stats] = {}
_stats_lock = threading.Lock()   # registration and merging only
_stats_epoch = 0
_get_ident = threading.get_ident


def _thread_stats() -> _Stats:
    try:
        st = _stats_by_thread[_get_ident()]
    except KeyError:
        st = None
    if st is None:
        st = _Stats(_stats_epoch)
        with _stats_lock:
            _stats_by_thread[_get_ident()] = st
    elif st.epoch != _stats_epoch:
        st.reset(_stats_epoch)
    return st


def _label(home: Any) -> str:
    return getattr(home, "name", None) or f"{type(home).__name__}@{id(home):x}"


class _Config:
    max_retries = 32


def stm_config(max_retries: int | None = None) -> dict[str, int]:
    """Set (when given) and return the STM settings.

    ``max_retries``: conflicts a transaction may lose before it runs
    irrevocably (alone, so it always finishes)."""
    if max_retries is not None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        _Config.max_retries = int(max_retries)
    return {"max_retries": _Config.max_retries}


def stm_stats(reset: bool = False, top: int = 10) -> dict[str, Any]:
    """Counters of all transactions since the start (or the last reset).

    ``commits`` (successful transactions, read-only ones included),
    ``read_only``, ``aborts`` (runs rolled back: conflicts and exceptions),
    ``retries`` (runs started again after a conflict), ``serial_fallbacks``
    (transactions that ran irrevocably), ``exceptions`` (transactions ended by
    an exception from their function), and ``conflicts``: the ``top`` most
    conflicted locations as ``{"container", "key", "count"}`` dicts (``key`` is
    None for a tvar and ``<length>`` for a container's length).
    ``reset=True`` starts the counters again after reading them."""
    global _stats_epoch
    total = {"commits": 0, "read_only": 0, "aborts": 0, "retries": 0,
             "serial_fallbacks": 0, "exceptions": 0}
    conflicts: dict[tuple[str, Any], int] = {}
    with _stats_lock:
        epoch = _stats_epoch
        for st in list(_stats_by_thread.values()):
            if st.epoch != epoch:
                continue
            total["commits"] += st.commits
            total["read_only"] += st.read_only
            total["aborts"] += st.aborts
            total["retries"] += st.retries
            total["serial_fallbacks"] += st.serial
            total["exceptions"] += st.exceptions
            for where, n in dict(st.conflicts).items():
                conflicts[where] = conflicts.get(where, 0) + n
        if reset:
            _stats_epoch += 1   # each thread zeroes its counters when it next runs
    ranked = sorted(conflicts.items(), key=lambda kv: kv[1], reverse=True)[:max(0, top)]
    result: dict[str, Any] = dict(total)
    result["conflicts"] = [{"container": c, "key": k, "count": n} for (c, k), n in ranked]
    result["max_retries"] = _Config.max_retries
    return result


# -- running transactions ----------------------------------------------------

def in_transaction() -> bool:
    """True while the calling thread runs inside :func:`atomic`."""
    return _current() is not None


def refuse_in_transaction(what: str) -> None:
    """Raise :class:`IOInTransactionError` naming ``what`` if the calling thread
    is inside a transaction; for APIs with effects a retry would repeat."""
    _core._stm_refuse(what)


def atomic(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` as one transaction and return its result.

    Its reads and writes of tvar/tdict/tlist objects take effect as if no
    other transaction ran at the same time; it may run several times (after
    conflicts), so it must not perform I/O (refused with
    :class:`IOInTransactionError`) or change non-transactional state it
    depends on. An exception from ``func`` discards its writes and propagates.
    Inside a transaction, ``atomic`` joins the running one (flat nesting):
    the inner block commits with the outer, and an exception leaving the inner
    block undoes the inner block's writes only."""
    tx = _current()
    if tx is not None:
        if tx.doomed is not None:
            raise tx.doomed
        sp = tx.savepoint()
        try:
            return func(*args, **kwargs)
        except _Conflict:
            raise
        except BaseException:
            tx.rollback_to(sp)
            raise
    return _run(func, args, kwargs)


_guard_installed = False


def _run(func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    global _guard_installed, _serial_active
    if not _guard_installed:
        _core._stm_guard_io()
        _guard_installed = True
    try:   # _thread_stats(), inlined
        st = _stats_by_thread[_get_ident()]
        if st.epoch != _stats_epoch:
            st.reset(_stats_epoch)
    except KeyError:
        st = _thread_stats()
    attempt = 0
    max_retries = _Config.max_retries
    while True:
        serial = attempt > max_retries
        if serial:
            _serial_mutex.acquire()
            _serial_active = True
            tx: _Tx = _SerialTx(_now())
            st.serial += 1
        else:
            if _serial_active:   # let the irrevocable transaction run alone
                _wait_for_serial()
            tx = _Tx(_now())
        _set_current(tx)
        try:
            result = func(*args, **kwargs)
            if tx.doomed is not None:   # a conflict was swallowed by func
                raise tx.doomed
            wrote = (tx.writes or tx.appends) and tx.commit()
        except BaseException as e:
            st.aborts += 1
            # An exception that func raised while unwinding a conflict (or after
            # swallowing one) belongs to a run that never counted: run again.
            c = e if isinstance(e, _Conflict) else (
                tx.doomed if isinstance(e, Exception) else None)
            if c is None:
                st.exceptions += 1
                raise
            st.retries += 1
            c.__traceback__ = None   # its frames refer to the transaction: no cycle
            where = (_label(c.home), "<length>" if c.key is _SIZE else c.key)
            st.conflicts[where] = st.conflicts.get(where, 0) + 1
            attempt += 1
            lost_to_serial = c.serial
        else:
            st.commits += 1
            if not wrote:
                st.read_only += 1
            return result
        finally:
            _set_current(None)
            if tx.locked:
                tx.release()
            if serial:
                _serial_active = False
                _serial_mutex.release()
        _backoff(attempt, lost_to_serial)


def _backoff(attempt: int, lost_to_serial: bool) -> None:
    if lost_to_serial:
        _wait_for_serial()
    elif attempt <= 2:
        os.sched_yield()
    else:
        # Randomised exponential backoff, up to 1 ms; the jitter comes from the
        # clock so that no shared random generator is touched.
        cap = min(1e-3, 2e-6 * (1 << min(attempt, 10)))
        time.sleep(cap * ((time.perf_counter_ns() >> 4) % 1024) / 1024)


def _peek(loc: _Loc) -> Any:
    """The committed value of one location, outside any transaction."""
    cell = loc.cell
    while cell.__class__ is not tuple:
        if cell.irrevocable:
            _wait_for_serial()
        else:
            os.sched_yield()
        cell = loc.cell
    return cell[1]


# -- containers ---------------------------------------------------------------

class tvar(_Loc, Generic[T]):
    """One transactional value: ``v.get()``, ``v.set(x)`` or ``v.value``.

    Outside :func:`atomic`, ``get`` reads the last committed value and ``set``
    is a transaction of its own."""

    __slots__ = ("name", "__weakref__")

    def __init__(self, value: T = None, name: str | None = None) -> None:  # type: ignore[assignment]
        super().__init__(self, None, (0, value))
        self.name = name

    def get(self) -> T:
        tx = _current()
        if tx is None:
            return _peek(self)  # type: ignore[no-any-return]
        w = tx.writes.get(self)
        if w is not None:
            return w[None]  # type: ignore[no-any-return]
        return tx.read(self)  # type: ignore[no-any-return]

    def set(self, value: T) -> None:
        tx = _current()
        if tx is None:
            atomic(self.set, value)
        else:
            tx.write(self, None, value)

    value = property(get, set, doc="The value (get/set).")

    def _prepare(self, tx: _Tx, w: dict[Any, Any], updates: list[tuple[_Loc, Any]]) -> None:
        tx.lock(self)
        updates.append((self, w[None]))

    def _find(self, key: Any) -> _Loc:
        return self

    def __repr__(self) -> str:
        return f"tvar({self.get()!r})"


class tdict(Generic[K, V]):
    """A transactional dict: conflicts are tracked per key, and its length (and
    so the set of keys, for iteration) is a location of its own.

    Keys must be hashable the way dict keys are. Outside :func:`atomic` every
    operation is a transaction of its own. A tdict keeps a small slot for every
    key ever written, including deleted ones (their versions are what makes a
    later re-insertion visible to running transactions)."""

    __slots__ = ("_locs", "_size", "name", "__weakref__")

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = (),
                 name: str | None = None) -> None:
        self.name = name
        self._locs: dict[Any, _Loc] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for k, v in pairs:
            self._locs[k] = _Loc(self, k, (0, v))
        self._size = _Loc(self, _SIZE, (0, len(self._locs)))

    # internal: locations. Lookups in _locs use d[key], not d.get(key): on
    # CPython 3.13t, dict.get from a thread that does not own the dict can fall
    # into a slow path that spins on the dict's own lock (fixed in 3.14).
    def _find(self, key: Any) -> _Loc | None:
        if key is _SIZE:
            return self._size
        try:
            return self._locs[key]
        except KeyError:
            return None

    def _loc_for_lock(self, tx: _Tx, key: Any) -> _Loc:
        loc = self._find(key)
        if loc is None:
            loc = self._locs.setdefault(key, _Loc(self, key))
        return loc

    def _get(self, tx: _Tx, key: Any) -> Any:
        w = tx.writes.get(self)
        if w is not None:
            v = w.get(key, _NOWRITE)
            if v is not _NOWRITE:
                return v
        loc = self._find(key)
        if loc is None:
            return tx.read_missing(self, key)
        return tx.read(loc)

    def _prepare(self, tx: _Tx, w: dict[Any, Any], updates: list[tuple[_Loc, Any]]) -> None:
        delta = 0
        locs = self._locs
        lock = tx.lock
        for key, value in w.items():
            try:
                loc = locs[key]
            except KeyError:
                loc = locs.setdefault(key, _Loc(self, key))
            before = lock(loc)[1]
            delta += (value is not _ABSENT) - (before is not _ABSENT)
            updates.append((loc, value))
        if delta:
            n = tx.lock(self._size)[1]
            updates.append((self._size, n + delta))

    # mapping API
    def __getitem__(self, key: K) -> V:
        tx = _current()
        if tx is None:
            loc = self._find(key)
            v = _ABSENT if loc is None else _peek(loc)
        else:   # _get, inlined: the hot path
            w = tx.writes.get(self)
            v = _NOWRITE if w is None else w.get(key, _NOWRITE)
            if v is _NOWRITE:
                try:
                    v = tx.read(self._locs[key])
                except KeyError:
                    v = tx.read_missing(self, key)
        if v is _ABSENT:
            raise KeyError(key)
        return v  # type: ignore[no-any-return]

    def get(self, key: K, default: Any = None) -> Any:
        """d[key] if key is present, else default."""
        tx = _current()
        if tx is None:
            loc = self._find(key)
            v = _ABSENT if loc is None else _peek(loc)
        else:
            v = self._get(tx, key)
        return default if v is _ABSENT else v

    def __contains__(self, key: object) -> bool:
        return self.get(key, _ABSENT) is not _ABSENT  # type: ignore[arg-type]

    def __setitem__(self, key: K, value: V) -> None:
        tx = _current()
        if tx is None:
            atomic(self.__setitem__, key, value)
            return
        w = tx.writes.get(self)   # tx.write, inlined: the hot path
        if w is None:
            w = tx.writes[self] = {}
        w[key] = value

    def __delitem__(self, key: K) -> None:
        tx = _current()
        if tx is None:
            atomic(self.__delitem__, key)
            return
        if self._get(tx, key) is _ABSENT:
            raise KeyError(key)
        tx.write(self, key, _ABSENT)

    def pop(self, key: K, default: Any = _NOWRITE) -> Any:
        """Remove key and return its value (or default; KeyError without one)."""
        tx = _current()
        if tx is None:
            return atomic(self.pop, key, default)
        v = self._get(tx, key)
        if v is _ABSENT:
            if default is _NOWRITE:
                raise KeyError(key)
            return default
        tx.write(self, key, _ABSENT)
        return v

    def setdefault(self, key: K, default: V) -> V:
        """d[key], storing default first if key is missing."""
        tx = _current()
        if tx is None:
            return atomic(self.setdefault, key, default)
        v = self._get(tx, key)
        if v is _ABSENT:
            tx.write(self, key, default)
            return default
        return v  # type: ignore[no-any-return]

    def update(self, other: Mapping[K, V] | Iterable[tuple[K, V]] = (), **kw: V) -> None:
        """Like dict.update, as one transaction."""
        tx = _current()
        if tx is None:
            atomic(self.update, other, **kw)
            return
        pairs = other.items() if isinstance(other, Mapping) else other
        for k, v in pairs:
            self[k] = v
        for k, v in kw.items():
            self[k] = v  # type: ignore[index]

    def clear(self) -> None:
        """Remove every key, as one transaction."""
        tx = _current()
        if tx is None:
            atomic(self.clear)
            return
        for k, _ in self._items(tx):
            tx.write(self, k, _ABSENT)

    def _items(self, tx: _Tx) -> list[tuple[Any, Any]]:
        """The items in this transaction's view (reads every key and the length)."""
        tx.read(self._size)
        out = []
        seen = set()
        w = tx.writes.get(self, {})
        for key, loc in self._locs.copy().items():
            v = w.get(key, _NOWRITE)
            if v is _NOWRITE:
                v = tx.read(loc)
            seen.add(key)
            if v is not _ABSENT:
                out.append((key, v))
        for key, v in w.items():
            if key not in seen and v is not _ABSENT:
                out.append((key, v))
        return out

    def items(self) -> list[tuple[K, V]]:
        """The (key, value) pairs, as a list (one snapshot)."""
        tx = _current()
        return self._items(tx) if tx is not None else atomic(self._items_now)

    def _items_now(self) -> list[tuple[Any, Any]]:
        return self._items(_current())

    def keys(self) -> list[K]:
        """The keys, as a list (one snapshot)."""
        return [k for k, _ in self.items()]

    def values(self) -> list[V]:
        """The values, as a list (one snapshot)."""
        return [v for _, v in self.items()]

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())

    def __len__(self) -> int:
        tx = _current()
        if tx is None:
            return _peek(self._size)  # type: ignore[no-any-return]
        n: int = tx.read(self._size)
        for key, value in tx.writes.get(self, {}).items():
            loc = self._find(key)
            before = tx.read_missing(self, key) if loc is None else tx.read(loc)
            n += (value is not _ABSENT) - (before is not _ABSENT)
        return n

    def snapshot(self) -> dict[K, V]:
        """A plain dict of the contents (one consistent snapshot)."""
        return dict(self.items())

    def __repr__(self) -> str:
        return f"tdict({self.snapshot()!r})"


class tlist(Generic[T]):
    """A transactional list: conflicts are tracked per index, and its length is
    a location of its own. ``append`` without reading the length is resolved
    at commit, so concurrent appenders do not conflict; ``insert``, ``pop`` and
    ``del`` in the middle shift, and so write, every later index.

    Outside :func:`atomic` every operation is a transaction of its own."""

    __slots__ = ("_locs", "_size", "name", "__weakref__")

    def __init__(self, items: Iterable[T] = (), name: str | None = None) -> None:
        self.name = name
        self._locs: list[_Loc] = [_Loc(self, i, (0, v)) for i, v in enumerate(items)]
        self._size = _Loc(self, _SIZE, (0, len(self._locs)))

    # internal: locations. The physical list only grows, and only while its
    # length location is locked, so it never changes under a committer.
    def _find(self, key: Any) -> _Loc | None:
        if key is _SIZE:
            return self._size
        locs = self._locs
        return locs[key] if key < len(locs) else None

    def _loc_for_lock(self, tx: _Tx, key: Any) -> _Loc | None:
        tx.lock(self._size)   # nothing can appear at key while we hold it
        locs = self._locs
        return locs[key] if key < len(locs) else None

    def _grow_to(self, i: int) -> _Loc:
        locs = self._locs
        while len(locs) <= i:
            locs.append(_Loc(self, len(locs)))
        return locs[i]

    def _prepare(self, tx: _Tx, w: dict[Any, Any], updates: list[tuple[_Loc, Any]]) -> None:
        appends = tx.appends.get(self) if tx.appends else None
        n = tx.lock(self._size)[1] if (_SIZE in w or appends) else None
        for key, value in w.items():
            if key is _SIZE:
                updates.append((self._size, value))
                continue
            loc = self._grow_to(key) if n is not None else self._locs[key]
            tx.lock(loc)
            updates.append((loc, value))
        if appends:
            assert n is not None and _SIZE not in w
            for j, value in enumerate(appends):
                loc = self._grow_to(n + j)
                tx.lock(loc)
                updates.append((loc, value))
            updates.append((self._size, n + len(appends)))

    def _len(self, tx: _Tx) -> int:
        lengths = tx.lengths
        if lengths is None:
            lengths = tx.lengths = {}
        n = lengths.get(self)
        if n is None:
            n = tx.read(self._size)
            pending = tx.appends.pop(self, None) if tx.appends else None
            if pending:
                for value in pending:
                    tx.write(self, n, value)
                    n += 1
                tx.write(self, _SIZE, n)
            lengths[self] = n
        return n

    def _set_len(self, tx: _Tx, n: int) -> None:
        tx.write(self, _SIZE, n)
        tx.lengths[self] = n  # type: ignore[index]

    def _get(self, tx: _Tx, i: int) -> Any:
        n = tx.lengths.get(self) if tx.lengths else None
        if n is not None and i >= n:
            raise IndexError("tlist index out of range")
        w = tx.writes.get(self)
        if w is not None:
            v = w.get(i, _NOWRITE)
            if v is not _NOWRITE and v is not _ABSENT:
                return v
        locs = self._locs
        v = tx.read(locs[i]) if i < len(locs) else tx.read_missing(self, i)
        if v is _ABSENT:
            if n is None and tx.appends and tx.appends.get(self):
                self._len(tx)
                return self._get(tx, i)
            raise IndexError("tlist index out of range")
        return v

    def _index(self, tx: _Tx, i: int) -> int:
        i = i.__index__()
        if i < 0:
            i += self._len(tx)
            if i < 0:
                raise IndexError("tlist index out of range")
        return i

    def __getitem__(self, i: Any) -> Any:
        tx = _current()
        if tx is None:
            return atomic(self.__getitem__, i)
        if isinstance(i, slice):
            return self._items(tx)[i]
        return self._get(tx, self._index(tx, i))

    def __setitem__(self, i: int, value: T) -> None:
        tx = _current()
        if tx is None:
            atomic(self.__setitem__, i, value)
            return
        i = self._index(tx, i)
        self._get(tx, i)   # IndexError past the end, as for list
        tx.write(self, i, value)

    def append(self, value: T) -> None:
        """Add value at the end."""
        tx = _current()
        if tx is None:
            atomic(self.append, value)
            return
        n = tx.lengths.get(self) if tx.lengths else None
        if n is None:
            appends = tx.appends
            if appends is None:
                appends = tx.appends = {}
            pending = appends.get(self)
            if pending is None:
                pending = appends[self] = []
            pending.append(value)
        else:
            tx.write(self, n, value)
            self._set_len(tx, n + 1)

    def extend(self, values: Iterable[T]) -> None:
        """Append every value, as one transaction."""
        tx = _current()
        if tx is None:
            atomic(self.extend, list(values))
            return
        for v in values:
            self.append(v)

    def insert(self, i: int, value: T) -> None:
        """Insert value before index i (clamped like list.insert)."""
        tx = _current()
        if tx is None:
            atomic(self.insert, i, value)
            return
        n = self._len(tx)
        i = i.__index__()
        i = max(0, i + n) if i < 0 else min(i, n)
        for j in range(n, i, -1):
            tx.write(self, j, self._get(tx, j - 1))
        tx.write(self, i, value)
        self._set_len(tx, n + 1)

    def pop(self, i: int = -1) -> T:
        """Remove and return the item at index i (the last by default)."""
        tx = _current()
        if tx is None:
            return atomic(self.pop, i)
        n = self._len(tx)
        if n == 0:
            raise IndexError("pop from empty tlist")
        i = self._index(tx, i)
        value = self._get(tx, i)
        for j in range(i, n - 1):
            tx.write(self, j, self._get(tx, j + 1))
        tx.write(self, n - 1, _ABSENT)
        self._set_len(tx, n - 1)
        return value  # type: ignore[no-any-return]

    def __delitem__(self, i: int) -> None:
        self.pop(i)

    def remove(self, value: T) -> None:
        """Remove the first item equal to value (ValueError if none)."""
        tx = _current()
        if tx is None:
            atomic(self.remove, value)
            return
        self.pop(self.index(value))

    def clear(self) -> None:
        """Remove every item, as one transaction."""
        tx = _current()
        if tx is None:
            atomic(self.clear)
            return
        n = self._len(tx)
        for j in range(n):
            tx.write(self, j, _ABSENT)
        self._set_len(tx, 0)

    def _items(self, tx: _Tx) -> list[Any]:
        return [self._get(tx, j) for j in range(self._len(tx))]

    def snapshot(self) -> list[T]:
        """A plain list of the contents (one consistent snapshot)."""
        tx = _current()
        return self._items(tx) if tx is not None else atomic(self.snapshot)

    def index(self, value: T) -> int:
        """Index of the first item equal to value (ValueError if none)."""
        return self.snapshot().index(value)

    def count(self, value: T) -> int:
        """Number of items equal to value."""
        return self.snapshot().count(value)

    def __contains__(self, value: object) -> bool:
        return value in self.snapshot()

    def __iter__(self) -> Iterator[T]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        tx = _current()
        if tx is None:
            return _peek(self._size)  # type: ignore[no-any-return]
        return self._len(tx)

    def __repr__(self) -> str:
        return f"tlist({self.snapshot()!r})"


# -- parallel loops -----------------------------------------------------------

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _thread_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="pyparallel-stm")
        return _pool


def _iteration(func: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    """One iteration as a transaction: (True, result) or (False, exception), so
    that one failing iteration does not stop the others."""
    try:
        return True, atomic(func, item)
    except Exception as exc:
        return False, exc


def _run_chunk(func: Callable[[Any], Any], chunk: list[Any]) -> list[tuple[bool, Any]]:
    return [_iteration(func, item) for item in chunk]


def _pool_map(func: Callable[[Any], Any], items: list[Any],
              chunksize: int | None) -> list[tuple[bool, Any]]:
    pool = _thread_pool()
    workers = os.cpu_count() or 1
    size = chunksize or max(1, len(items) // (4 * workers))
    futures = [pool.submit(_run_chunk, func, items[i:i + size])
               for i in range(0, len(items), size)]
    out: list[tuple[bool, Any]] = []
    for f in futures:
        out.extend(f.result())
    return out


def parallel_for(iterable: Iterable[T], func: Callable[[T], Any],
                 chunksize: int | None = None) -> list[Any]:
    """Run ``atomic(func, item)`` for every item, in parallel; the results in
    input order.

    The iterations appear to run one at a time in some order (each is one
    transaction). An exception from an iteration is raised after all of them
    have ended; the other iterations' effects stay committed."""
    if _current() is not None:
        raise TransactionError("parallel_for() inside a transaction")
    items = list(iterable)
    pkg = sys.modules.get(__package__ or "pyparallel")
    pxmap = getattr(pkg, "map", None)
    if callable(pxmap):
        outcomes = list(pxmap(functools.partial(_iteration, func), items, chunksize=chunksize))
    else:
        outcomes = _pool_map(func, items, chunksize)
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]
