"""Statistics as plain dicts: the engine's per-worker counters (summed on
demand, never shared on the hot path), latency histograms merged on demand,
and what the process as a whole uses.

Latency, in nanoseconds, comes in two kinds:

``request``
    HTTP only: from the moment a request is complete (head and body in hand)
    to the moment its response is queued on the connection. It measures the
    server (routing, the handler, encoding), not the network or the client;
    the response leaves at the end of the same loop turn.
``callback``
    Every call from the engine into the application (a connection opened,
    data received, output drained, connection closed), whatever the protocol;
    one value per call, so its count equals the ``callbacks`` counter.

Each is summarised as ``count``, ``sum_ns``, ``mean_ns``, ``p50_ns``,
``p90_ns``, ``p99_ns``, ``p999_ns`` and ``max_ns``; quantiles are exact to
within 1/32 of their value (log-linear buckets, 16 per power of two).
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import signal
import sys
import threading
import time
from typing import Any

from . import _core, _lifecycle, sharing

__all__ = [
    "stats", "sys_stats", "memory_stats", "context_stats", "socket_stats",
    "thread_seq_id", "rdtsc", "debug", "set_debug", "debug_enabled",
    "cpu_count", "gmtime", "debugbreak",
]

# Counters of the engine that are levels, not running totals.
_LEVELS = frozenset({"connections", "pool_bytes", "pool_in_use", "budget_held"})

thread_seq_id = _core.thread_seq_id
rdtsc = _core.rdtsc
debug = _core.debug
set_debug = _core.set_debug
debug_enabled = _core.debug_enabled


def socket_stats(transport: Any) -> dict[str, Any]:
    """TCP_INFO of a connection: rtt and its variance (µs), cwnd, ssthresh,
    retransmissions, unacknowledged segments, bytes acked/received/sent, the
    kernel's send and receive queues, and for a Transport the bytes still queued
    in the engine (``engine_unsent``).

    ``transport`` is a :class:`Transport` (from inside its own callbacks only:
    elsewhere its socket may already be closed), a socket, or a descriptor.
    """
    return _core.socket_stats(transport)


def _proc_status() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def _uptime_s() -> float:
    """Seconds since this process started (from /proc: boot-relative times)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22, counted after "pid (comm)"
        with open("/proc/uptime") as f:
            since_boot = float(f.read().split()[0])
        return max(0.0, since_boot - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def _memory() -> dict[str, int]:
    page = os.sysconf("SC_PAGE_SIZE")
    rss = shared = 0
    try:
        with open("/proc/self/statm") as f:
            parts = f.read().split()
        rss, shared = int(parts[1]) * page, int(parts[2]) * page
    except (OSError, ValueError, IndexError):
        pass
    return {
        "rss_bytes": rss,
        "shared_bytes": shared,  # resident pages backed by files (code, mappings)
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


@functools.cache
def _interpreter() -> dict[str, Any]:
    # sys.abiflags carries "t" on free-threading builds (sysconfig would know
    # too, but its first lookup loads the whole build configuration).
    return {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "free_threading_build": "t" in getattr(sys, "abiflags", ""),
    }


def sys_stats() -> dict[str, Any]:
    """The process: uptime, resident memory, user and system CPU time, threads,
    the I/O backend in use, the interpreter and whether the GIL is enabled."""
    eng = _lifecycle._reported_engine()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    threads = _proc_status().get("Threads", "0")
    return {
        "pid": os.getpid(),
        "uptime_s": round(_uptime_s(), 3),
        "time": time.time(),
        **_memory(),
        "cpu_user_s": usage.ru_utime,
        "cpu_system_s": usage.ru_stime,
        "threads": int(threads) if threads.isdigit() else 0,
        "cpus": len(os.sched_getaffinity(0)),
        "workers": eng.workers if eng is not None else 0,
        "backend": eng.backend if eng is not None else None,
        "uring_error": eng.uring_error if eng is not None else None,
        "interpreter": dict(_interpreter()),
        "gil_enabled": _lifecycle.gil_enabled(),
    }


def stats(buckets: bool = False) -> dict[str, Any]:
    """Everything, as plain dicts (JSON-ready).

    ``workers``: one dict per worker: its counters (connections, accepts,
    requests, bytes_in/out, callbacks, errors, hogs, handoffs, pool_in_use, ...),
    ``cpu_ns`` (CPU time of its thread), ``in_callback`` and
    ``callback_running_ns`` (how long the running callback has run), and
    ``latency`` ({"request": summary, "callback": summary}, see the module doc).
    ``total``: the counters and cpu_ns summed, latency merged over workers.
    ``process``: :func:`sys_stats`. ``shared``: :func:`share_stats`. With
    ``buckets=True`` the merged latency summaries in ``total`` also list their
    non-empty buckets as
    ``[lowest_ns, highest_ns, count]`` (what a client needs to compute
    quantiles over a time window by subtracting two snapshots).
    """
    eng = _lifecycle._reported_engine()
    if eng is None:
        return {"backend": None, "workers": [], "total": {},
                "gil_enabled": _lifecycle.gil_enabled(), "uring_error": None,
                "process": sys_stats(), "shared": sharing.share_stats()}
    counters = eng.worker_stats()
    runtime = _core.worker_runtime(eng)
    latency = _core.latency(eng, buckets=buckets)
    workers: list[dict[str, Any]] = []
    total: dict[str, Any] = {}
    # One entry per worker in each list: the same engine counts them.
    for i, (c, r) in enumerate(zip(counters, runtime, strict=True)):
        for key, value in c.items():
            total[key] = total.get(key, 0) + value
        total["cpu_ns"] = total.get("cpu_ns", 0) + r["cpu_ns"]
        workers.append({"worker": i, **c, **r,
                        "latency": {kind: latency[kind]["workers"][i] for kind in latency}})
    total["latency"] = {kind: latency[kind]["total"] for kind in latency}
    return {
        "backend": eng.backend,
        "workers": workers,
        "total": total,
        "gil_enabled": _lifecycle.gil_enabled(),
        "uring_error": eng.uring_error,
        "process": sys_stats(),
        "shared": sharing.share_stats(),  # what px.share() has shared (objects, bytes)
    }


def memory_stats() -> dict[str, Any]:
    """Memory: each worker's pools (bytes reserved, bytes in use, connections
    they hold; refreshed by the worker at least every 100 ms while it runs) and
    what it holds against the memory budget (``budget_held``: request bodies
    and unsent output), their sums, the budget (``memory_budget``), the
    process's resident and shared bytes, and the interpreter's allocated
    blocks."""
    eng = _lifecycle._reported_engine()
    workers = []
    total = {"pool_bytes": 0, "pool_in_use": 0, "connections": 0, "budget_held": 0}
    for i, c in enumerate(eng.worker_stats() if eng is not None else []):
        w = {"worker": i, "pool_bytes": c["pool_bytes"], "pool_in_use": c["pool_in_use"],
             "connections": c["connections"], "budget_held": c["budget_held"]}
        for key in total:
            total[key] += w[key]
        workers.append(w)
    return {"workers": workers, "total": total,
            "memory_budget": eng.memory_budget if eng is not None else 0, **_memory(),
            "python_allocated_blocks": sys.getallocatedblocks()}


def context_stats() -> dict[str, Any]:
    """Per-thread callback contexts (PyParallel's name): for each worker, its
    thread id (:func:`thread_seq_id`), whether a callback runs on it now and
    for how long, callbacks run so far, and the connections it holds; plus the
    number of callbacks running right now and the calling thread's id."""
    eng = _lifecycle._reported_engine()
    workers = []
    if eng is not None:
        # One entry per worker in each list: the same engine counts them.
        per_worker = zip(eng.worker_stats(), _core.worker_runtime(eng), strict=True)
        for i, (c, r) in enumerate(per_worker):
            workers.append({
                "worker": i,
                "thread_seq_id": i + 1,
                "in_callback": r["in_callback"],
                "callback_running_ns": r["callback_running_ns"],
                "callbacks": c["callbacks"],
                "requests": c["requests"],
                "connections": c["connections"],
                "cpu_ns": r["cpu_ns"],
            })
    return {
        "workers": workers,
        "active_callbacks": sum(1 for w in workers if w["in_callback"]),
        "main_thread_seq_id": 0,
        "thread_seq_id": thread_seq_id(),
    }


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, which a container
    or ``taskset`` narrows): what the engine starts one worker per by
    default. The original counted the CPUs online."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache: tuple[int, str] = (-1, "")


def gmtime() -> str:
    """The current time as an HTTP date (RFC 9110 IMF-fixdate, e.g. ``Sun, 06
    Nov 1994 08:49:37 GMT``), made once per second and shared by every
    thread."""
    global _date_cache
    now = int(time.time())
    cached = _date_cache  # one read: a (second, text) pair is never torn
    if cached[0] == now:
        return cached[1]
    t = time.gmtime(now)
    text = (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
    _date_cache = (now, text)
    return text


def _traced() -> bool:
    return _proc_status().get("TracerPid", "0") not in ("", "0")


def debugbreak() -> bool:
    """Stop in the native debugger (gdb, lldb) attached to this process, at
    the calling thread: SIGTRAP to this thread, as the original's ``int 3``.
    Without a debugger the signal would kill the process, so then nothing
    happens unless the program handles SIGTRAP itself; False when no signal
    was sent. Any tracer counts as a debugger (TracerPid): under strace, which
    passes the signal on, an unhandled SIGTRAP kills the process. (For
    Python-level debugging use :func:`breakpoint` on the main thread, or
    :func:`debug` lines from callbacks.)"""
    if not _traced() and signal.getsignal(signal.SIGTRAP) in (signal.SIG_DFL, None):
        return False
    signal.pthread_kill(threading.get_ident(), signal.SIGTRAP)
    return True
