"""Running transactions: :func:`atomic`, retries, backoff and the
irrevocable mode."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .. import _core
from ._stats import _Epoch, _label, _stats_by_thread, _thread_stats
from ._tx import _SIZE, _Config, _Conflict, _Loc, _now, _SerialTx, _Tx

__all__ = ["atomic", "in_transaction", "refuse_in_transaction", "TransactionError",
           "IOInTransactionError"]

_T = TypeVar("_T")

TransactionError = _core.TransactionError
IOInTransactionError = _core.IOInTransactionError

_current = _core._stm_current
_set_current = _core._stm_set_current
_get_ident = threading.get_ident

# The irrevocable mode: one transaction at a time holds the mutex; the flag
# (read by every transaction's start, written only by the holder) tells others
# to wait for it.
_serial_mutex = threading.Lock()
_serial_active = False


def _wait_for_serial() -> None:
    _serial_mutex.acquire()
    _serial_mutex.release()


def in_transaction() -> bool:
    """True while the calling thread runs inside :func:`atomic`."""
    return _current() is not None


def refuse_in_transaction(what: str) -> None:
    """Raise :class:`IOInTransactionError` naming ``what`` if the calling thread
    is inside a transaction; for APIs with effects a retry would repeat."""
    _core._stm_refuse(what)


def atomic(func: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """Run ``func(*args, **kwargs)`` as one transaction and return its result.

    Its reads and writes of tvar/tdict/tlist objects take effect as if no
    other transaction ran at the same time; it may run several times (after
    conflicts), so it must not perform I/O (refused with
    :class:`IOInTransactionError`) or change non-transactional state it
    depends on. An exception from ``func`` discards its writes and propagates.
    Inside a transaction, ``atomic`` joins the running one (flat nesting):
    the inner block commits with the outer, and an exception leaving the inner
    block undoes the inner block's writes only."""
    tx = _current()
    if tx is not None:
        if tx.doomed is not None:
            raise tx.doomed
        sp = tx.savepoint()
        try:
            return func(*args, **kwargs)
        except _Conflict:
            raise
        except BaseException:
            tx.rollback_to(sp)
            raise
    return _run(func, args, kwargs)


_guard_installed = False


def _run(func: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> _T:
    global _guard_installed, _serial_active
    if not _guard_installed:
        _core._stm_guard_io()
        _guard_installed = True
    try:   # _thread_stats(), inlined
        st = _stats_by_thread[_get_ident()]
        if st.epoch != _Epoch.now:
            st.reset(_Epoch.now)
    except KeyError:
        st = _thread_stats()
    attempt = 0
    max_retries = _Config.max_retries
    while True:
        serial = attempt > max_retries
        if serial:
            _serial_mutex.acquire()
            _serial_active = True
            tx: _Tx = _SerialTx(_now())
            st.serial += 1
        else:
            if _serial_active:   # let the irrevocable transaction run alone
                _wait_for_serial()
            tx = _Tx(_now())
        _set_current(tx)
        try:
            result = func(*args, **kwargs)
            if tx.doomed is not None:   # a conflict was swallowed by func
                raise tx.doomed
            wrote = (tx.writes or tx.appends) and tx.commit()
        except BaseException as e:
            st.aborts += 1
            # An exception that func raised while unwinding a conflict (or after
            # swallowing one) belongs to a run that never counted: run again.
            c = e if isinstance(e, _Conflict) else (
                tx.doomed if isinstance(e, Exception) else None)
            if c is None:
                st.exceptions += 1
                raise
            st.retries += 1
            c.__traceback__ = None   # its frames refer to the transaction: no cycle
            where = (_label(c.home), "<length>" if c.key is _SIZE else c.key)
            st.conflicts[where] = st.conflicts.get(where, 0) + 1
            attempt += 1
            lost_to_serial = c.serial
        else:
            st.commits += 1
            if not wrote:
                st.read_only += 1
            return result
        finally:
            _set_current(None)
            if tx.locked:
                tx.release()
            if serial:
                _serial_active = False
                _serial_mutex.release()
        _backoff(attempt, lost_to_serial)


def _backoff(attempt: int, lost_to_serial: bool) -> None:
    if lost_to_serial:
        _wait_for_serial()
    elif attempt <= 2:
        os.sched_yield()
    else:
        # Randomised exponential backoff, up to 1 ms; the jitter comes from the
        # clock so that no shared random generator is touched.
        cap = min(1e-3, 2e-6 * (1 << min(attempt, 10)))
        time.sleep(cap * ((time.perf_counter_ns() >> 4) % 1024) / 1024)


def _peek(loc: _Loc) -> Any:
    """The committed value of one location, outside any transaction."""
    cell = loc.cell
    while cell.__class__ is not tuple:
        if cell.irrevocable:
            _wait_for_serial()
        else:
            os.sched_yield()
        cell = loc.cell
    return cell[1]
