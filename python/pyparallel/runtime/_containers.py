"""Containers that lock every operation: :func:`dict` and :func:`list`
(:class:`ProtectedDict`, :class:`ProtectedList`)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import Any

from .. import _core

# dict and list are public (px.dict, px.list) but served by the package's
# __getattr__: a star import must not shadow the builtins.
__all__ = ["ProtectedDict", "ProtectedList", "dict", "list"]

_builtin_dict = builtins.dict
_builtin_list = builtins.list


def _dict_copy(d: Any) -> _builtin_dict[Any, Any]:
    """A plain dict of d's items, read with dict's own iteration (dict.copy of
    a subclass would go through the overridden methods)."""
    return _builtin_dict(_builtin_dict.items(d))


def _snapshot(obj: Any) -> Any:
    """A plain copy of a protected container taken under its read lock (so that
    code already holding one lock never waits for another); obj otherwise."""
    if isinstance(obj, ProtectedDict):
        with obj._px_r:
            return _dict_copy(obj)
    if isinstance(obj, ProtectedList):
        with obj._px_r:
            return _builtin_list.copy(obj)
    return obj


def _locked(base: type, name: str, write: bool) -> Callable[..., Any]:
    method = getattr(base, name)
    if write:
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._px_w:
                return method(self, *args, **kwargs)
    else:
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._px_r:
                return method(self, *args, **kwargs)
    locked.__name__ = name
    locked.__qualname__ = f"Protected{base.__name__.capitalize()}.{name}"
    locked.__doc__ = method.__doc__
    return locked


def _with_other(base: type, name: str, write: bool) -> Callable[..., Any]:
    """A binary operation: the other operand is snapshotted first."""
    method = getattr(base, name)

    def locked(self: Any, other: Any) -> Any:
        other = _snapshot(other)
        with (self._px_w if write else self._px_r):
            result = method(self, other)
        return self if result is self else result
    locked.__name__ = name
    locked.__doc__ = method.__doc__
    return locked


class ProtectedDict(_core.LockedDict):
    """A dict whose every operation takes its own readers-writer lock (reads
    shared, writes exclusive), made by :func:`pyparallel.dict`.

    Item access and assignment, ``in``, ``len``, ``get`` and iteration are
    locked in C (the base class); the other methods here. Iteration and the
    views (keys/values/items) work on a snapshot taken under the read lock, so
    another thread's writes never break a loop. ``with read_lock(d)`` / ``with
    write_lock(d)`` make several operations one. C code that uses the dict API
    directly (a JSON encoder, say) bypasses the lock.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            self.update(*args, **kwargs)

    def __reversed__(self) -> Any:
        with self._px_r:
            return iter(_builtin_list(_builtin_dict.keys(self))[::-1])

    def keys(self) -> Any:
        with self._px_r:
            return _dict_copy(self).keys()

    def values(self) -> Any:
        with self._px_r:
            return _dict_copy(self).values()

    def items(self) -> Any:
        with self._px_r:
            return _dict_copy(self).items()

    def copy(self) -> ProtectedDict:
        """A new protected dict with the same items."""
        return ProtectedDict(self.copy_plain())

    def copy_plain(self) -> _builtin_dict[Any, Any]:
        """A plain dict with the same items, taken under the read lock."""
        with self._px_r:
            return _dict_copy(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        src = tuple(_snapshot(a) for a in args)
        with self._px_w:
            _builtin_dict.update(self, *src, **kwargs)

    def __reduce__(self) -> Any:
        return (ProtectedDict, (self.copy_plain(),))

    def __repr__(self) -> str:
        with self._px_r:
            return f"pyparallel.dict({_builtin_dict.__repr__(self)})"

    __hash__ = None  # type: ignore[assignment]
    setdefault = _locked(_builtin_dict, "setdefault", True)
    pop = _locked(_builtin_dict, "pop", True)
    popitem = _locked(_builtin_dict, "popitem", True)
    clear = _locked(_builtin_dict, "clear", True)
    __eq__ = _with_other(_builtin_dict, "__eq__", False)
    __ne__ = _with_other(_builtin_dict, "__ne__", False)
    __or__ = _with_other(_builtin_dict, "__or__", False)
    __ror__ = _with_other(_builtin_dict, "__ror__", False)
    __ior__ = _with_other(_builtin_dict, "__ior__", True)


class ProtectedList(_core.LockedList):
    """A list whose every operation takes its own readers-writer lock (reads
    shared, writes exclusive), made by :func:`pyparallel.list`.

    Item access and assignment, ``in``, ``len``, ``append`` and iteration are
    locked in C (the base class); the other methods here. Iteration works on a
    snapshot taken under the read lock. ``with read_lock(l)`` / ``with
    write_lock(l)`` make several operations one.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, iterable: Iterable[Any] = ()) -> None:
        self.extend(iterable)

    def __setitem__(self, index: Any, value: Any) -> None:
        value = _snapshot(value)  # a protected list assigned to a slice
        with self._px_w:
            _builtin_list.__setitem__(self, index, value)

    def __reversed__(self) -> Any:
        with self._px_r:
            return iter(_builtin_list.copy(self)[::-1])

    def extend(self, iterable: Iterable[Any]) -> None:
        src = _snapshot(iterable)
        if not isinstance(src, (_builtin_list, tuple)):
            src = _builtin_list(src)  # consume a generator outside the lock
        with self._px_w:
            _builtin_list.extend(self, src)

    def __iadd__(self, iterable: Iterable[Any]) -> ProtectedList:  # type: ignore[misc]
        self.extend(iterable)
        return self

    def copy(self) -> ProtectedList:
        """A new protected list with the same items."""
        return ProtectedList(self.copy_plain())

    def copy_plain(self) -> _builtin_list[Any]:
        """A plain list with the same items, taken under the read lock."""
        with self._px_r:
            return _builtin_list.copy(self)

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        """Sort in place under the write lock (a key function must not use this list)."""
        with self._px_w:
            _builtin_list.sort(self, key=key, reverse=reverse)

    def __reduce__(self) -> Any:
        return (ProtectedList, (self.copy_plain(),))

    def __repr__(self) -> str:
        with self._px_r:
            return f"pyparallel.list({_builtin_list.__repr__(self)})"

    __hash__ = None  # type: ignore[assignment]
    insert = _locked(_builtin_list, "insert", True)
    pop = _locked(_builtin_list, "pop", True)
    remove = _locked(_builtin_list, "remove", True)
    clear = _locked(_builtin_list, "clear", True)
    reverse = _locked(_builtin_list, "reverse", True)
    index = _locked(_builtin_list, "index", False)
    count = _locked(_builtin_list, "count", False)
    __imul__ = _locked(_builtin_list, "__imul__", True)
    __mul__ = _locked(_builtin_list, "__mul__", False)
    __rmul__ = _locked(_builtin_list, "__rmul__", False)
    __add__ = _with_other(_builtin_list, "__add__", False)
    __eq__ = _with_other(_builtin_list, "__eq__", False)
    __ne__ = _with_other(_builtin_list, "__ne__", False)
    __lt__ = _with_other(_builtin_list, "__lt__", False)
    __le__ = _with_other(_builtin_list, "__le__", False)
    __gt__ = _with_other(_builtin_list, "__gt__", False)
    __ge__ = _with_other(_builtin_list, "__ge__", False)


def dict(*args: Any, **kwargs: Any) -> ProtectedDict:
    """A protected dict (:class:`ProtectedDict`): arguments as for ``dict()``."""
    return ProtectedDict(*args, **kwargs)


def list(iterable: Iterable[Any] = ()) -> ProtectedList:
    """A protected list (:class:`ProtectedList`): arguments as for ``list()``."""
    return ProtectedList(iterable)
