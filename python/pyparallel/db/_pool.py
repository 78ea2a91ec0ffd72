"""Connections kept per engine worker: no lock is shared between workers.

Each worker (``pyparallel._core.worker_index()``) has its own idle list and
counters; threads that are not workers (the main thread, the package's I/O
threads) share one more. Within a worker two threads may meet — the thread
whose callback blocked and was handed off, and the spare that took the
worker's ring over — so a worker's pool has a lock of its own, uncontended
in the common case and never touched by another worker.

A connection that broke (the server went away, the socket reset) is closed
and forgotten; the next checkout opens a fresh one. While the server cannot
be reached the worker answers at once with :class:`DatabaseUnavailable` for
``retry_interval`` seconds rather than making every request wait for a
refused connect, then tries again: recovery needs nothing from anybody.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg

from .. import _core
from ._errors import DatabaseUnavailable, PoolTimeout

__all__ = ["WorkerPool", "PoolSet"]

log = logging.getLogger("pyparallel.db")


class WorkerPool:
    """The connections of one worker."""

    def __init__(self, owner: PoolSet, index: int) -> None:
        self.owner = owner
        self.index = index
        self.idle: list[psycopg.Connection[Any]] = []
        self.opened = 0          # connections open now (idle + lent)
        self.down_until = 0.0    # monotonic time before which connects are not tried
        self.down = False        # an outage was logged and its end not yet
        self.opening = False     # a spare connection is being opened
        self.full_until = 0.0    # before it, no connect while some are open (server full)
        self.cond = threading.Condition(threading.Lock())

    # -- lending ---------------------------------------------------------------
    def take(self) -> psycopg.Connection[Any]:
        """An open connection for this thread's exclusive use until give()."""
        idle = self.idle
        try:
            conn = idle.pop()  # lock-free fast path: list.pop is atomic
        except IndexError:
            pass
        else:
            if not idle:
                self._open_spare()
            return conn
        owner = self.owner
        deadline = time.monotonic() + owner.pool_timeout
        while True:
            with self.cond:
                while True:
                    try:
                        return idle.pop()  # the fast path pops without the lock
                    except IndexError:
                        pass
                    now = time.monotonic()
                    if self.opened < owner.max_per_worker and (
                            self.opened == 0 or now >= self.full_until):
                        self.opened += 1
                        break
                    left = deadline - now
                    if left <= 0:
                        raise PoolTimeout(
                            f"database: all {self.opened} connections of worker "
                            f"{self.index} stayed busy for {owner.pool_timeout} s")
                    if now < self.full_until:  # try a connect again when it ends
                        left = min(left, self.full_until - now)
                    self.cond.wait(left)
            try:
                return self._connect()
            except _NoRoom:
                with self.cond:
                    self.opened -= 1
                    self.cond.notify()
                    if self.opened == 0:
                        raise
                # Wait for a lent connection instead (the cap is lowered).
            except BaseException:
                with self.cond:
                    self.opened -= 1
                    self.cond.notify()
                raise

    def _open_spare(self) -> None:
        """Open one more connection in the background when the last idle one
        was just lent: the thread that takes this worker over when a query
        blocks it (the hand-off) then finds one ready instead of waiting for
        a connect, and a burst after a quiet spell waits for none."""
        now = time.monotonic()
        if self.opening or now < self.down_until or now < self.full_until:
            return
        with self.cond:
            if self.opening or self.opened >= self.owner.max_per_worker:
                return
            self.opening = True
            self.opened += 1
        threading.Thread(target=self._spare, name="pyparallel.db connect", daemon=True).start()

    def _spare(self) -> None:
        try:
            conn = self._connect(spare=True)
        except Exception:  # nobody waits for it: no outage is declared
            with self.cond:
                self.opened -= 1
                self.opening = False
                self.cond.notify()
            return
        self.give(conn)  # first: a take between the two must not start another
        self.opening = False
        with self.cond:
            self.cond.notify()

    def give(self, conn: psycopg.Connection[Any]) -> None:
        """Return a connection; a broken or mid-transaction one is closed, and
        every one once the pools are closed."""
        if (conn.closed or conn.broken or conn.info.transaction_status != 0
                or self.owner.closed):
            self.discard(conn)
            return
        self.idle.append(conn)
        if self.opened >= self.owner.max_per_worker:
            with self.cond:
                self.cond.notify()

    def discard(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.close()
        except Exception:  # a broken socket may refuse even a close
            pass
        with self.cond:
            self.opened -= 1
            self.cond.notify()

    def lost(self, conn: psycopg.Connection[Any], exc: BaseException) -> None:
        """conn broke mid-use: drop it and the idle ones (the same outage
        most likely took them too), and log the loss once per outage."""
        self.discard(conn)
        self.drop_idle()
        self._outage(f"database connection lost on worker {self.index}: "
                     f"{_one_line(exc)}; answering 503 until it is back")

    def drop_idle(self) -> None:
        while True:
            try:
                conn = self.idle.pop()
            except IndexError:
                return
            self.discard(conn)

    def close(self) -> None:
        self.drop_idle()

    # -- connecting ------------------------------------------------------------
    def _connect(self, spare: bool = False) -> psycopg.Connection[Any]:
        """A new connection. A refused connect marks this worker down for
        retry_interval — unless the server is only full (SQLSTATE 53300),
        this worker still has connections open (the lent ones come back:
        _NoRoom lowers the cap for a while), or it was the background spare
        that failed (nobody waited for it)."""
        owner = self.owner
        now = time.monotonic()
        if now < self.down_until:
            raise DatabaseUnavailable("database unavailable (reconnecting; the last "
                                      "attempt failed less than "
                                      f"{owner.retry_interval} s ago)")
        try:
            conn = psycopg.Connection.connect(
                owner.dsn, autocommit=True, prepare_threshold=owner.prepare_threshold,
                connect_timeout=owner.connect_timeout, **owner.connect_kwargs)
        except psycopg.OperationalError as e:
            detail = f"database unavailable: {_one_line(e)}"
            if spare:
                log.debug("spare connection of worker %d: %s", self.index, detail)
                raise DatabaseUnavailable(detail) from e
            if _server_full(e) or self.opened > 1:
                self.full_until = time.monotonic() + owner.retry_interval
                raise _NoRoom(detail) from e
            self.down_until = time.monotonic() + owner.retry_interval
            self._outage(f"database unreachable from worker {self.index}: {_one_line(e)}; "
                         f"answering 503, retrying every {owner.retry_interval} s")
            raise DatabaseUnavailable(detail) from e
        if self.down:
            self.down = False
            log.warning("database reachable again from worker %d", self.index)
        return conn

    def _outage(self, message: str) -> None:
        if not self.down:
            self.down = True
            log.error("%s", message)


class PoolSet:
    """One WorkerPool per worker, plus one for threads that are not workers."""

    def __init__(self, dsn: str, *, max_per_worker: int, pool_timeout: float,
                 connect_timeout: float, retry_interval: float,
                 prepare_threshold: int | None, connect_kwargs: dict[str, Any]) -> None:
        self.dsn = dsn
        self.max_per_worker = max_per_worker
        self.pool_timeout = pool_timeout
        self.connect_timeout = max(1, round(connect_timeout))
        self.retry_interval = retry_interval
        self.prepare_threshold = prepare_threshold
        self.connect_kwargs = connect_kwargs
        self._pools: dict[int, WorkerPool] = {}
        self._other = WorkerPool(self, -1)
        self._lock = threading.Lock()  # only to create a worker's pool, once
        self.closed = False

    def current(self) -> WorkerPool:
        """The pool of the worker this thread serves."""
        index = _core.worker_index()
        if index is None:
            return self._other
        pool = self._pools.get(index)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(index, WorkerPool(self, index))
        return pool

    def all(self) -> list[WorkerPool]:
        with self._lock:
            return [self._other, *self._pools.values()]

    def stats(self) -> dict[str, int]:
        pools = self.all()
        return {"open": sum(p.opened for p in pools), "idle": sum(len(p.idle) for p in pools)}


class _NoRoom(DatabaseUnavailable):
    """A connect refused while this worker can wait for a lent connection,
    or the server is full: no outage."""


def _server_full(exc: psycopg.OperationalError) -> bool:
    # Errors at connect carry no SQLSTATE in psycopg: the server's message
    # (English unless lc_messages says otherwise) tells 53300 apart.
    if exc.sqlstate == "53300":
        return True
    text = str(exc)
    return "too many clients" in text or "connection slots are reserved" in text


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
