"""What is in flight now, under PyParallel's names: :func:`active_count`,
:func:`active_contexts`, :func:`active_hogs`.

The original counted its parallel contexts: one per connection and one per
piece of submitted work, each with its own heap. Here the same things are
counted from the engine's figures; each call reads them at once (no lock, no
hot-path cost), so a value is a snapshot that may be stale by the time it is
used.
"""

from __future__ import annotations

from . import _core, _lifecycle

__all__ = ["active_count", "active_contexts", "active_hogs"]

# Below this a callback is not a hog even when hand-offs are off (handoff_ms 0).
_DEFAULT_HOG_MS = 2


def active_count() -> int:
    """What keeps :func:`pyparallel.run` serving when no server is
    registered: submitted work, timers, waits and blocking calls not yet
    done, main-thread calls not yet made, and outgoing connections not yet
    closed. 0 with no engine."""
    eng = _lifecycle._running_engine()
    if eng is None:
        return 0
    return int(eng.tasks) + int(eng.clients)


def active_contexts() -> int:
    """The callback contexts alive, as PyParallel counted them: every open
    connection (accepted or outgoing) and every pending piece of work (see
    :func:`active_count`). 0 with no engine."""
    eng = _lifecycle._running_engine()
    if eng is None:
        return 0
    connections = sum(w["connections"] for w in eng.worker_stats())
    return connections + int(eng.tasks)


def active_hogs() -> int:
    """Workers whose running callback has taken longer than the hand-off
    threshold (the engine's ``handoff_ms``; 2 ms when hand-offs are off): the
    callbacks that hog a worker right now. The original counted connections
    whose ``send_complete`` kept streaming; here a stream yields its worker
    between sends (the turn budget), and what can still hog a worker is a
    callback that computes or blocks. The calling callback's own worker is not
    counted. 0 with no engine."""
    eng = _lifecycle._running_engine()
    if eng is None:
        return 0
    limit_ns = (eng.handoff_ms or _DEFAULT_HOG_MS) * 1_000_000
    # The asking callback is not counted: it is busy asking.
    own = _core.worker_index() if _core.current_engine() is eng else None
    return sum(1 for i, r in enumerate(_core.worker_runtime(eng))
               if i != own and r["callback_running_ns"] > limit_ns)
