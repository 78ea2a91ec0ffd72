"""Work on the workers, timers, calls to the main thread, and shared state.

Everything here runs on the engine's worker threads (in parallel on
free-threaded CPython, one at a time under a GIL):

* :func:`submit_work` runs a function on a worker and returns a :class:`Work`
  handle (a :class:`concurrent.futures.Future`);
* :func:`timer` calls a function on a worker after a delay, optionally every
  ``period`` seconds;
* :func:`map` is a data-parallel :func:`map` over the workers;
* :func:`call_from_main_thread` and :func:`call_from_main_thread_and_wait`
  hand a call to the main thread, which runs them while it waits in
  :func:`pyparallel.run` or :func:`pyparallel.run_once`;
* :func:`protect`, :func:`read_lock`, :func:`write_lock`, :func:`dict` and
  :func:`list` give shared objects a readers-writer lock (:func:`try_read_lock`
  and :func:`try_write_lock` take it without waiting);
* :func:`submit_timer`, :func:`submit_wait` and :func:`submit_io` run work after
  a delay, once a descriptor is readable, or off the workers;
* :func:`critical_section` and :func:`synchronized` serialise code;
  :class:`thread` runs a function on a thread of its own.

Exceptions that nobody handles go where a protocol callback's go: they are
re-raised by ``run()`` (or ``run_once()``) in the main thread. Inside an
``atomic()`` transaction, submit_work, timer, map and the main-thread calls
are refused (IOInTransactionError): a retried transaction would repeat them.

One module per concern: ``_main`` (main-thread calls), ``_work`` (work and
timers), ``_submit`` (timed, waiting and blocking work), ``_map``,
``_protect`` (protect and the locks), ``_sync`` (critical sections),
``_thread`` and ``_containers`` (the protected dict and list).
"""

from __future__ import annotations

from typing import Any

from . import _containers, _map
from ._containers import ProtectedDict, ProtectedList
from ._main import call_from_main_thread, call_from_main_thread_and_wait
from ._protect import (
    RWLock,
    protect,
    protected,
    read_lock,
    read_unlock,
    try_read_lock,
    try_write_lock,
    unprotect,
    write_lock,
    write_unlock,
)
from ._submit import submit_io, submit_timer, submit_wait
from ._sync import CriticalSection, critical_section, synchronized
from ._thread import thread
from ._work import Timer, Work, submit_work, timer

# map, dict and list are public too (px.map, px.dict, px.list) but not listed:
# a star import must not shadow the builtins. __getattr__ below serves them.
__all__ = [
    "Work", "Timer", "RWLock", "ProtectedDict", "ProtectedList",
    "submit_work", "timer",
    "call_from_main_thread", "call_from_main_thread_and_wait",
    "protect", "unprotect", "protected", "read_lock", "write_lock",
    "try_read_lock", "try_write_lock", "read_unlock", "write_unlock",
    "submit_timer", "submit_wait", "submit_io", "thread",
    "CriticalSection", "critical_section", "synchronized",
]


def __getattr__(name: str) -> Any:
    # Bound as globals, they would shadow the builtins for this module's code.
    if name == "map":
        return _map.map
    if name in ("dict", "list"):
        return getattr(_containers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
