"""Readers-writer locks for shared objects: :func:`protect`, :func:`read_lock`,
:func:`write_lock`."""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any, TypeVar

from .. import _core
from ._containers import ProtectedDict, ProtectedList

__all__ = ["RWLock", "protect", "unprotect", "protected", "read_lock", "write_lock",
           "try_read_lock", "try_write_lock", "read_unlock", "write_unlock"]

_T = TypeVar("_T")

RWLock = _core.RWLock


class _Entry:
    """The lock of a protect()ed object, and how the side table refers to it:
    weakly when the object allows it (the entry goes when the object does),
    else strongly (the object lives until unprotect())."""

    __slots__ = ("lock", "ref", "strong")

    def __init__(self, lock: RWLock, ref: weakref.ref[Any] | None, strong: Any) -> None:
        self.lock = lock
        self.ref = ref
        self.strong = strong

    def target(self) -> Any:
        return self.ref() if self.ref is not None else self.strong


_protected: dict[int, _Entry] = {}
_protected_lock = threading.Lock()


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _protected_lock:
        entry = _protected.get(key)
        if entry is not None and entry.ref is ref:
            del _protected[key]


def _lock_of(obj: Any) -> RWLock | None:
    cls = type(obj)
    if cls is ProtectedDict or cls is ProtectedList:
        lock: RWLock = obj._px_lock
        return lock
    entry = _protected.get(id(obj))
    if entry is not None:
        ref = entry.ref
        if (ref() if ref is not None else entry.strong) is obj:
            return entry.lock
    if isinstance(obj, (ProtectedDict, ProtectedList)):  # subclasses of them
        return obj._px_lock
    return None


def protect(obj: _T) -> _T:
    """Give obj a readers-writer lock for :func:`read_lock` / :func:`write_lock`;
    returns obj. Idempotent.

    The lock lives in a side table keyed by the object's identity: objects
    that support weak references leave it when they die; others (a builtin
    dict, list, ...) are kept alive by it until :func:`unprotect`. Plain
    objects are not locked automatically: code that shares them takes
    ``read_lock``/``write_lock`` around its accesses. (:func:`dict` and
    :func:`list` make containers that lock every operation themselves.)
    """
    if isinstance(obj, (ProtectedDict, ProtectedList)):
        return obj
    key = id(obj)
    with _protected_lock:
        entry = _protected.get(key)
        if entry is not None and entry.target() is obj:
            return obj
        try:
            ref: weakref.ref[Any] | None = weakref.ref(obj, functools.partial(_forget, key))
            strong = None
        except TypeError:
            ref, strong = None, obj
        _protected[key] = _Entry(RWLock(), ref, strong)
    return obj


def unprotect(obj: _T) -> _T:
    """Remove what :func:`protect` added; returns obj. Holders of its lock keep
    it until they release it. :func:`dict` and :func:`list` objects are
    protected for life (ValueError)."""
    if isinstance(obj, (ProtectedDict, ProtectedList)):
        raise ValueError(f"a pyparallel.{type(obj).__name__} is always protected; "
                         "copy it into a plain container instead")
    with _protected_lock:
        entry = _protected.get(id(obj))
        if entry is not None and entry.target() is obj:
            del _protected[id(obj)]
    return obj


def protected(obj: Any) -> bool:
    """True when obj has a lock from :func:`protect`, :func:`dict` or :func:`list`."""
    return _lock_of(obj) is not None


def _lock_or_raise(obj: Any) -> RWLock:
    if isinstance(obj, RWLock):
        return obj
    lock = _lock_of(obj)
    if lock is None:
        raise ValueError(f"this {type(obj).__name__} object is not protected: "
                         "call pyparallel.protect() on it first")
    return lock


def read_lock(obj: Any) -> Any:
    """Context manager holding obj's lock for reading: readers run in parallel,
    writers wait (and a waiting writer holds back new readers).

    Re-entrant: a thread that holds obj's read or write lock may take the read
    lock again. ValueError if obj is not protected."""
    cls = type(obj)
    if cls is ProtectedDict or cls is ProtectedList:
        return obj._px_r
    return _lock_or_raise(obj).reader


def write_lock(obj: Any) -> Any:
    """Context manager holding obj's lock for writing: alone, no reader inside.

    Re-entrant for the writer; a thread holding only the read lock gets
    RuntimeError (the upgrade would wait for itself: release the read lock,
    then take the write lock). ValueError if obj is not protected."""
    cls = type(obj)
    if cls is ProtectedDict or cls is ProtectedList:
        return obj._px_w
    return _lock_or_raise(obj).writer


def try_read_lock(obj: Any) -> bool:
    """Take obj's read lock if that needs no wait: True when taken (release it
    with :func:`read_unlock`), False when a writer holds or awaits it.
    ValueError if obj is not protected."""
    return bool(_lock_or_raise(obj).acquire_read(False))


def try_write_lock(obj: Any) -> bool:
    """Take obj's write lock if that needs no wait: True when taken (release it
    with :func:`write_unlock`), False when anyone else holds it. A thread
    holding only the read lock gets RuntimeError, as :func:`write_lock` does.
    ValueError if obj is not protected."""
    return bool(_lock_or_raise(obj).acquire_write(False))


def read_unlock(obj: Any) -> None:
    """Release a read lock of obj this thread took with :func:`try_read_lock`
    (RuntimeError if it holds none)."""
    _lock_or_raise(obj).release_read()


def write_unlock(obj: Any) -> None:
    """Release the write lock of obj this thread took with :func:`try_write_lock`
    (RuntimeError if it holds none)."""
    _lock_or_raise(obj).release_write()
