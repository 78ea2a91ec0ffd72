"""Sharing without contention: objects every worker reads, made immortal.

On free-threaded CPython each ``Py_INCREF``/``Py_DECREF`` of an object another
thread owns is an atomic operation on a shared cache line. The handler
functions, their constants, the app and its class, and the data loaded at
start-up are read by every worker on every request, and those atomics make them
a serialisation point. :func:`share` walks an object graph once and makes every
object in it immortal: its reference counting becomes a no-op, the cyclic GC
leaves it alone, and it is never freed. Immortal objects stay mutable where
their type is (a shared dict can still be updated); what a later update
replaces is simply never freed.

What the walk follows: dict, list, tuple, set and frozenset contents; str,
bytes, int, float, complex, bool and None; functions (code, constants,
defaults, keyword defaults, closure cells, function attributes, and the globals
and builtins their code reads, by name: never a whole module); bound methods;
classmethod, staticmethod and property objects; classes made by a class
statement (their ``__dict__``, metaclass and bases, up to the classes defined
in C); instances of such classes (class, ``__dict__``, ``__slots__`` values);
numpy arrays (the array object and the array a view looks into, not the
elements of object arrays). Everything else is left as it is and not looked
into: modules, frames, generators, coroutines, locks, files, sockets, objects
of other types defined in C, and instances whose class defines ``__del__``
(they expect to be finalized).

CPython 3.13t itself makes module-level functions, their code objects and
constants, classes and modules immortal once a thread other than the main one
gets a thread state (the first worker does); :func:`share` adds the data,
instances, closures and bound methods, and does it all before that moment.

The rule: call :func:`share` before serving, or on objects that no other thread
uses while it runs. (It writes reference-count fields, and a concurrent
reference-count change by their owner could overwrite that write.)

Where it writes: on free-threaded CPython 3.13 only, whose object layout the
test suite checks. On builds with the GIL reference counting is not
contended, and on free-threaded versions without such a test (3.14 and later,
for now) writing the fields would be a guess: there :func:`share` walks and
counts the same graph and keeps a reference to every object it accepted (so
shared objects live as long as the process on every interpreter) but writes
nothing; on an untested free-threaded version it warns once.
"""

from __future__ import annotations

import sys
import sysconfig
import types
import warnings
from typing import Any

from . import _core

__all__ = ["share", "share_stats", "share_main"]

_FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
_warned = False
# Protocol classes registered with sharing on: their app instance is shared too
# when the engine creates it.
_protocols: set[int] = set()


def share(*objs: Any) -> dict[str, Any]:
    """Make the object graphs reachable from ``objs`` immortal; return counts.

    ``objects``/``bytes``: the objects the walk accepted (``sys.getsizeof``
    sizes), whether they were shared before or not; ``new_objects``/
    ``new_bytes``: those this call shared; ``skipped``: objects reached but
    left alone; ``immortal``: whether this interpreter's objects are made
    immortal (False: counted and kept alive only, see the module docs).
    """
    info = _core.share_info()
    if not info["immortal"] and _FREE_THREADED_BUILD:
        _warn_once(info["reason"])
    return dict(_core.share(*objs))


def share_stats() -> dict[str, int]:
    """``{"objects": n, "bytes": n}``: what :func:`share` has newly shared in
    this process, counted once per object."""
    return dict(_core.share_stats())


def _warn_once(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"pyparallel.share: objects are kept alive but not made immortal: {reason} "
                      f"(Python {sys.version_info.major}.{sys.version_info.minor})",
                      RuntimeWarning, stacklevel=3)


def _share_protocol(protocol: Any) -> None:
    """Share a protocol or app class (its methods and what their code reads);
    :func:`pyparallel.register` calls it before serving."""
    share(protocol)
    _protocols.add(id(protocol))  # shared classes are never freed: their ids stay theirs


def _wants_sharing(protocol: Any) -> bool:
    """True when ``protocol`` was registered with sharing on."""
    return id(protocol) in _protocols


def share_main() -> dict[str, Any]:
    """Share the values of ``__main__``'s globals (not the module, not its
    namespace, not its ``__dunder__`` names, never other modules)."""
    main = sys.modules.get("__main__")
    if main is None:
        return share()
    values = [v for k, v in list(vars(main).items())
              if not (k.startswith("__") and k.endswith("__"))
              and not isinstance(v, types.ModuleType)]
    return share(*values)
