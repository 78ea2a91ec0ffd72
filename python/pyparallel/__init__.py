"""pyparallel: one Python process serving many network clients on all cores.

A completion engine in C (io_uring, or epoll where io_uring is refused) runs one
worker thread per CPU; protocol callbacks run on those workers, in parallel on
free-threaded CPython. The names follow PyParallel's ``async`` module::

    import pyparallel as px

    class Echo:
        def data_received(self, transport, data):
            return data

    server = px.server("127.0.0.1", 8007)
    px.register(transport=server, protocol=Echo)
    px.run()

This module only gathers the API; each part lives in the module that owns it
(the engine's life in ``_lifecycle``, statistics in ``_stats``, what is in
flight in ``_activity``, work, timers
and locks in :mod:`pyparallel.runtime`, transactions in :mod:`pyparallel.stm`,
sharing in :mod:`pyparallel.sharing`).
"""

from __future__ import annotations

from typing import Any

from . import _core
from ._activity import active_contexts, active_count, active_hogs
from ._core import Engine, EngineError, Transport, sendfile
from ._lifecycle import (
    Client,
    Server,
    client,
    engine,
    gil_enabled,
    register,
    run,
    run_once,
    server,
    shutdown,
    transport,
)
from ._metrics import metrics_text
from ._stats import (
    context_stats,
    cpu_count,
    debug,
    debug_enabled,
    debugbreak,
    gmtime,
    memory_stats,
    rdtsc,
    set_debug,
    socket_stats,
    stats,
    sys_stats,
    thread_seq_id,
)
from .runtime import (
    CriticalSection,
    ProtectedDict,
    ProtectedList,
    RWLock,
    Timer,
    Work,
    call_from_main_thread,
    call_from_main_thread_and_wait,
    critical_section,
    protect,
    protected,
    read_lock,
    read_unlock,
    submit_io,
    submit_timer,
    submit_wait,
    submit_work,
    synchronized,
    thread,
    timer,
    try_read_lock,
    try_write_lock,
    unprotect,
    write_lock,
    write_unlock,
)
from .sharing import share, share_stats
from .stm import (
    IOInTransactionError,
    TransactionError,
    atomic,
    in_transaction,
    parallel_for,
    stm_config,
    stm_stats,
    tdict,
    tlist,
    tvar,
)

__all__ = [
    "Engine", "EngineError", "Transport", "Server", "Client", "server", "client", "register", "run",
    "run_once", "shutdown", "transport", "sendfile", "stats", "engine", "gil_enabled",
    "sys_stats", "socket_stats", "memory_stats", "context_stats", "thread_seq_id",
    "rdtsc", "debug", "set_debug", "debug_enabled", "metrics_text",
    "atomic", "tvar", "tdict", "tlist", "parallel_for", "stm_stats", "stm_config",
    "in_transaction", "TransactionError", "IOInTransactionError",
    # runtime: work, timers, main-thread calls, shared state (px.map, px.dict and
    # px.list too, left out here so that a star import cannot shadow the builtins)
    "submit_work", "timer", "call_from_main_thread", "call_from_main_thread_and_wait",
    "protect", "unprotect", "protected", "read_lock", "write_lock",
    "Work", "Timer", "RWLock", "ProtectedDict", "ProtectedList",
    "share", "share_stats",
    # the rest of PyParallel's names (docs/pyparallel-api.md)
    "try_read_lock", "try_write_lock", "read_unlock", "write_unlock",
    "critical_section", "synchronized", "CriticalSection", "thread",
    "submit_timer", "submit_wait", "submit_io",
    "cpu_count", "gmtime", "debugbreak", "active_count", "active_contexts", "active_hogs",
]
__version__ = _core.__version__


def __getattr__(name: str) -> Any:
    # px.dict, px.list and px.map are served from here rather than bound as
    # globals, which would shadow the builtins for the code of this module.
    if name in ("dict", "list", "map"):
        from . import runtime
        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
