"""The transaction machinery (TL2 with snapshot extension): locations, the
running transaction's snapshot, read set and buffered writes, commit, and the
irrevocable variant; plus the settings (:func:`stm_config`)."""

from __future__ import annotations

import os
import threading
from typing import Any

from .. import _core

__all__ = ["stm_config"]

_now = _core._stm_now
_tick = _core._stm_tick

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
                return cell
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
