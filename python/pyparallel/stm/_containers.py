"""The transactional containers: :class:`tvar`, :class:`tdict`, :class:`tlist`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from .. import _core
from ._atomic import _peek, atomic
from ._tx import _ABSENT, _NOWRITE, _SIZE, _Loc, _Tx

__all__ = ["tvar", "tdict", "tlist"]

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")

_current = _core._stm_current


class tvar(_Loc, Generic[_T]):
    """One transactional value: ``v.get()``, ``v.set(x)`` or ``v.value``.

    Outside :func:`atomic`, ``get`` reads the last committed value and ``set``
    is a transaction of its own."""

    __slots__ = ("name", "__weakref__")

    def __init__(self, value: _T = None, name: str | None = None) -> None:  # type: ignore[assignment]
        super().__init__(self, None, (0, value))
        self.name = name

    def get(self) -> _T:
        tx = _current()
        if tx is None:
            return _peek(self)  # type: ignore[no-any-return]
        w = tx.writes.get(self)
        if w is not None:
            return w[None]  # type: ignore[no-any-return]
        return tx.read(self)  # type: ignore[no-any-return]

    def set(self, value: _T) -> None:
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


class tdict(Generic[_K, _V]):
    """A transactional dict: conflicts are tracked per key, and its length (and
    so the set of keys, for iteration) is a location of its own.

    Keys must be hashable the way dict keys are. Outside :func:`atomic` every
    operation is a transaction of its own. A tdict keeps a small slot for every
    key ever written, including deleted ones (their versions are what makes a
    later re-insertion visible to running transactions)."""

    __slots__ = ("_locs", "_size", "name", "__weakref__")

    def __init__(self, items: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (),
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
    def __getitem__(self, key: _K) -> _V:
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

    def get(self, key: _K, default: Any = None) -> Any:
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

    def __setitem__(self, key: _K, value: _V) -> None:
        tx = _current()
        if tx is None:
            atomic(self.__setitem__, key, value)
            return
        w = tx.writes.get(self)   # tx.write, inlined: the hot path
        if w is None:
            w = tx.writes[self] = {}
        w[key] = value

    def __delitem__(self, key: _K) -> None:
        tx = _current()
        if tx is None:
            atomic(self.__delitem__, key)
            return
        if self._get(tx, key) is _ABSENT:
            raise KeyError(key)
        tx.write(self, key, _ABSENT)

    def pop(self, key: _K, default: Any = _NOWRITE) -> Any:
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

    def setdefault(self, key: _K, default: _V) -> _V:
        """d[key], storing default first if key is missing."""
        tx = _current()
        if tx is None:
            return atomic(self.setdefault, key, default)
        v = self._get(tx, key)
        if v is _ABSENT:
            tx.write(self, key, default)
            return default
        return v  # type: ignore[no-any-return]

    def update(self, other: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (), **kw: _V) -> None:
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

    def items(self) -> list[tuple[_K, _V]]:
        """The (key, value) pairs, as a list (one snapshot)."""
        tx = _current()
        return self._items(tx) if tx is not None else atomic(self._items_now)

    def _items_now(self) -> list[tuple[Any, Any]]:
        return self._items(_current())

    def keys(self) -> list[_K]:
        """The keys, as a list (one snapshot)."""
        return [k for k, _ in self.items()]

    def values(self) -> list[_V]:
        """The values, as a list (one snapshot)."""
        return [v for _, v in self.items()]

    def __iter__(self) -> Iterator[_K]:
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

    def snapshot(self) -> dict[_K, _V]:
        """A plain dict of the contents (one consistent snapshot)."""
        return dict(self.items())

    def __repr__(self) -> str:
        return f"tdict({self.snapshot()!r})"


class tlist(Generic[_T]):
    """A transactional list: conflicts are tracked per index, and its length is
    a location of its own. ``append`` without reading the length is resolved
    at commit, so concurrent appenders do not conflict; ``insert``, ``pop`` and
    ``del`` in the middle shift, and so write, every later index.

    Outside :func:`atomic` every operation is a transaction of its own."""

    __slots__ = ("_locs", "_size", "name", "__weakref__")

    def __init__(self, items: Iterable[_T] = (), name: str | None = None) -> None:
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

    def __setitem__(self, i: int, value: _T) -> None:
        tx = _current()
        if tx is None:
            atomic(self.__setitem__, i, value)
            return
        i = self._index(tx, i)
        self._get(tx, i)   # IndexError past the end, as for list
        tx.write(self, i, value)

    def append(self, value: _T) -> None:
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

    def extend(self, values: Iterable[_T]) -> None:
        """Append every value, as one transaction."""
        tx = _current()
        if tx is None:
            atomic(self.extend, list(values))
            return
        for v in values:
            self.append(v)

    def insert(self, i: int, value: _T) -> None:
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

    def pop(self, i: int = -1) -> _T:
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

    def remove(self, value: _T) -> None:
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

    def snapshot(self) -> list[_T]:
        """A plain list of the contents (one consistent snapshot)."""
        tx = _current()
        return self._items(tx) if tx is not None else atomic(self.snapshot)

    def index(self, value: _T) -> int:
        """Index of the first item equal to value (ValueError if none)."""
        return self.snapshot().index(value)

    def count(self, value: _T) -> int:
        """Number of items equal to value."""
        return self.snapshot().count(value)

    def __contains__(self, value: object) -> bool:
        return value in self.snapshot()

    def __iter__(self) -> Iterator[_T]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        tx = _current()
        if tx is None:
            return _peek(self._size)  # type: ignore[no-any-return]
        return self._len(tx)

    def __repr__(self) -> str:
        return f"tlist({self.snapshot()!r})"
