"""Statistics of the transactions: per-thread counters, merged on demand
(:func:`stm_stats`)."""

from __future__ import annotations

import threading
from typing import Any

from ._tx import _Config

__all__ = ["stm_stats"]


class _Epoch:
    """Bumped by stm_stats(reset=True): each thread zeroes its counters when it
    next runs a transaction and sees a newer epoch than theirs."""

    now = 0


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
_get_ident = threading.get_ident


def _thread_stats() -> _Stats:
    try:
        st = _stats_by_thread[_get_ident()]
    except KeyError:
        st = None
    if st is None:
        st = _Stats(_Epoch.now)
        with _stats_lock:
            _stats_by_thread[_get_ident()] = st
    elif st.epoch != _Epoch.now:
        st.reset(_Epoch.now)
    return st


def _label(home: Any) -> str:
    return getattr(home, "name", None) or f"{type(home).__name__}@{id(home):x}"


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
    total = {"commits": 0, "read_only": 0, "aborts": 0, "retries": 0,
             "serial_fallbacks": 0, "exceptions": 0}
    conflicts: dict[tuple[str, Any], int] = {}
    with _stats_lock:
        epoch = _Epoch.now
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
            _Epoch.now += 1   # each thread zeroes its counters when it next runs
    ranked = sorted(conflicts.items(), key=lambda kv: kv[1], reverse=True)[:max(0, top)]
    result: dict[str, Any] = dict(total)
    result["conflicts"] = [{"container": c, "key": k, "count": n} for (c, k), n in ranked]
    result["max_retries"] = _Config.max_retries
    return result
