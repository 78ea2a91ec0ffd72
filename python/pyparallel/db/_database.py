"""Database: PostgreSQL from every worker through psycopg 3.

Queries block the calling thread while PostgreSQL answers; a callback that
waits longer than the engine's hand-off threshold (``handoff_ms``, 2 ms by
default) has its worker taken over by a spare thread, so one slow query never
stalls the other connections of its worker (tests/py/db/test_db_isolation.py).
"""

from __future__ import annotations

import asyncio
import random
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from . import _aio, _fast
from ._errors import DatabaseUnavailable
from ._pool import PoolSet, WorkerPool, _one_line

__all__ = ["Database", "RETRYABLE"]

T = TypeVar("T")

#: Errors after which a transaction is retried from its start: PostgreSQL
#: rolled it back and asks for exactly that (SQLSTATE 40001 and 40P01).
RETRYABLE: tuple[type[Exception], ...] = (pg_errors.SerializationFailure,
                                          pg_errors.DeadlockDetected)


class Database:
    """A PostgreSQL database used from handlers on every worker.

    ``Database(dsn)`` opens nothing yet: each worker opens its own connections
    (at most ``max_per_worker``) on first use and keeps them for the next
    request. Connections are in autocommit mode; statements are prepared on
    the server from their first execution (``prepare_threshold=0``; ``None``
    turns preparing off, as poolers such as PgBouncer in transaction mode
    need). A database that cannot be reached raises
    :class:`DatabaseUnavailable` (HTTP 503 when raised through a handler).

    Every method may be called from any thread: a worker's callback, a
    handed-off callback, the main thread.
    """

    def __init__(self, dsn: str, *, max_per_worker: int = 16, pool_timeout: float = 5.0,
                 connect_timeout: float = 5.0, retry_interval: float = 0.5,
                 prepare_threshold: int | None = 0, pipelined_per_loop: int = 4,
                 **connect_kwargs: Any) -> None:
        if max_per_worker < 1 or pipelined_per_loop < 1:
            raise ValueError("max_per_worker and pipelined_per_loop must be at least 1")
        self.pipelined_per_loop = pipelined_per_loop
        self._loop_sets: list[_aio.LoopConnections] = []
        self._loop_lock = threading.Lock()  # only to record a loop's set, once
        self.dsn = dsn
        # Statements prepared by pyparallel.db itself (see _fast), unless
        # preparing is off.
        self._fast = prepare_threshold is not None
        self._pools = PoolSet(dsn, max_per_worker=max_per_worker, pool_timeout=pool_timeout,
                              connect_timeout=connect_timeout, retry_interval=retry_interval,
                              prepare_threshold=prepare_threshold,
                              connect_kwargs=connect_kwargs)

    # -- connections -------------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of this worker's pool for the block (autocommit).

        A connection error inside the block becomes DatabaseUnavailable and
        the connection is replaced; other errors pass through unchanged and
        the connection goes back to the pool (rolled back if a transaction
        was left open)."""
        pool = self._pools.current()
        conn = pool.take()
        try:
            yield conn
        except psycopg.Error as e:
            if conn.broken or conn.closed:
                pool.lost(conn, e)
                raise DatabaseUnavailable(f"database connection lost: {_one_line(e)}") from e
            pool.give(conn)
            raise
        except BaseException:
            pool.give(conn)
            raise
        pool.give(conn)

    # -- one statement ------------------------------------------------------------
    def fetchone(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """The first row of a read (a tuple), or None.

        A pooled connection found dead before the query is sent (the server
        restarted since it was last used) is replaced; one lost after it was
        sent raises DatabaseUnavailable (the statement may have run)."""
        return self._read(lambda conn: _fetch(conn, query, params, True, self._fast))

    def fetchall(self, query: str, params: Sequence[Any] | None = None) -> list[Any]:
        """Every row of a read, as tuples (a dead connection replaced like fetchone)."""
        return self._read(lambda conn: _fetch(conn, query, params, False, self._fast))

    def execute(self, query: str, params: Sequence[Any] | None = None, *,
                retries: int = 0) -> int:
        """Run one statement (its own transaction); the number of rows it
        affected. Without parameters the query may hold several statements
        separated by ``;`` (one implicit transaction; the count is the
        first's, as psycopg's rowcount). A lost connection is not retried
        (the statement may have run); a serialization failure or deadlock,
        which PostgreSQL rolled back, is run again up to ``retries`` times."""
        attempt = 0
        while True:
            try:
                with self.connection() as conn:
                    if not params:
                        # not prepared: psycopg then uses the simple query
                        # protocol, the one that takes several statements
                        cur = conn.execute(query, params, prepare=False)
                        return int(cur.rowcount)
                    if self._fast:
                        try:
                            return _fast.execute(conn, query, params)
                        except _fast.Unsupported:
                            pass
                    cur = conn.execute(query, params, prepare=self._prepare)
                    return int(cur.rowcount)
            except RETRYABLE:
                if attempt >= retries:
                    raise
                attempt += 1
                _backoff(attempt)

    # -- batches --------------------------------------------------------------------
    def fetch_many(self, query: str, params_seq: Sequence[Sequence[Any]]) -> list[Any]:
        """Run one read per parameter tuple in pipeline mode — every statement
        sent before the first answer comes back, one round trip for the
        batch — and return each statement's first row (None when it had
        none), in order. A dead connection is replaced like fetchone."""
        def run(conn: psycopg.Connection[Any]) -> list[Any]:
            if self._fast:
                try:
                    return _fast.fetch_batch(conn, query, params_seq)
                except _fast.Unsupported:
                    pass
            cur = conn.cursor()
            cur.executemany(query, params_seq, returning=True)
            rows = []
            while True:
                rows.append(cur.fetchone())
                if not cur.nextset():
                    return rows
        if not params_seq:
            return []
        return self._read(run)

    def execute_many(self, query: str, params_seq: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per parameter tuple, pipelined (one round trip),
        in one transaction: all or nothing."""
        def run(conn: psycopg.Connection[Any]) -> None:
            conn.cursor().executemany(query, params_seq)
        self.transaction(run)

    # -- transactions ---------------------------------------------------------------
    def transaction(self, fn: Callable[[psycopg.Connection[Any]], T], *, retries: int = 5,
                    isolation: psycopg.IsolationLevel | None = None) -> T:
        """fn(conn) inside one transaction, committed when fn returns.

        A serialization failure or a deadlock (PostgreSQL rolled the
        transaction back) runs fn again from the start, up to ``retries`` more
        times, after a short random pause that grows with each attempt; fn must
        therefore be safe to run again. ``isolation`` sets the level for this
        transaction (e.g. ``psycopg.IsolationLevel.SERIALIZABLE``)."""
        attempt = 0
        while True:
            try:
                with self.connection() as conn:
                    try:
                        with conn.transaction():
                            if isolation is not None:
                                conn.execute(_ISOLATION[isolation])
                            return fn(conn)
                    except BaseException:
                        if self._fast:
                            _fast.forget(conn)  # rolled back: psycopg may have deallocated
                        raise
            except RETRYABLE:
                if attempt >= retries:
                    raise
                attempt += 1
                _backoff(attempt)

    # -- from coroutines ---------------------------------------------------------------
    # The same statements, results and errors as the blocking methods, sent
    # from the running asyncio loop (a worker's) through its pipelined
    # connections: no thread waits for the answer (see _aio).
    async def afetchone(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """fetchone from a coroutine."""
        return await self._run_async(query, params, _aio.ONE, self.fetchone)

    async def afetchall(self, query: str, params: Sequence[Any] | None = None) -> list[Any]:
        """fetchall from a coroutine."""
        rows: list[Any] = await self._run_async(query, params, _aio.ALL, self.fetchall)
        return rows

    async def aexecute(self, query: str, params: Sequence[Any] | None = None, *,
                       retries: int = 0) -> int:
        """execute from a coroutine (a serialization failure or deadlock run
        again up to ``retries`` times; without parameters, on the blocking
        path, which takes several statements)."""
        if not params:
            loop = asyncio.get_running_loop()
            count: int = await loop.run_in_executor(
                None, partial(self.execute, query, params, retries=retries))
            return count
        attempt = 0
        while True:
            try:
                count = await self._run_async(query, params, _aio.COUNT,
                                              partial(self.execute, retries=0))
                return count
            except RETRYABLE:
                if attempt >= retries:
                    raise
                attempt += 1
                await asyncio.sleep(random.uniform(0, 0.002 * (1 << attempt)))

    async def afetch_many(self, query: str, params_seq: Sequence[Sequence[Any]]) -> list[Any]:
        """fetch_many from a coroutine: the batch in one round trip."""
        if not params_seq:
            return []
        conns = self._loop_connections()
        c = conns.ready() or await conns.conn()
        try:
            fut = c.send_batch(query, params_seq)
        except _fast.Unsupported:
            loop = asyncio.get_running_loop()
            rows: list[Any] = await loop.run_in_executor(
                None, partial(self.fetch_many, query, params_seq))
            return rows
        rows = await fut
        return rows

    async def _run_async(self, query: str, params: Sequence[Any] | None, mode: int,
                         blocking: Callable[..., Any]) -> Any:
        if self._fast:
            conns = self._loop_connections()
            c = conns.ready() or await conns.conn()
            try:
                fut = c.send(query, params, mode)
            except _fast.Unsupported:
                pass
            else:
                return await fut
        return await asyncio.get_running_loop().run_in_executor(
            None, partial(blocking, query, params))

    def _loop_connections(self) -> _aio.LoopConnections:
        """The running loop's pipelined connections to this database (kept on
        the loop: each worker's loop reads only its own)."""
        loop = asyncio.get_running_loop()
        sets: dict[Database, _aio.LoopConnections] | None = getattr(loop, "_px_db", None)
        if sets is None:
            sets = {}
            setattr(loop, "_px_db", sets)  # noqa: B010 (an attribute of our own on the loop)
        conns = sets.get(self)
        if conns is None:
            conns = sets[self] = _aio.LoopConnections(self, loop, self.pipelined_per_loop)
            with self._loop_lock:
                self._loop_sets.append(conns)
        return conns

    def _connect_async_conn(self) -> psycopg.Connection[Any]:
        """A connection for a loop's pipeline (on an executor thread)."""
        p = self._pools
        return psycopg.Connection.connect(p.dsn, autocommit=True, prepare_threshold=None,
                                          connect_timeout=p.connect_timeout, **p.connect_kwargs)

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Close the connections of every worker (those in use when they come
        back; a loop's pipelined ones on that loop). The Database stays
        usable: a later call opens a connection and closes it after use."""
        self._pools.closed = True
        for pool in self._pools.all():
            pool.close()
        with self._loop_lock:
            sets, self._loop_sets = self._loop_sets, []
        for conns in sets:
            if not conns.loop.is_closed():
                conns.loop.call_soon_threadsafe(conns.close)

    def stats(self) -> dict[str, int]:
        """{"open": connections open now, "idle": of which idle, "pipelined":
        the loops' pipelined connections}, all workers."""
        with self._loop_lock:
            pipelined = sum(len(c.conns) for c in self._loop_sets)
        return {**self._pools.stats(), "pipelined": pipelined}

    # -- internals ----------------------------------------------------------------------
    _prepare: bool | None = None  # psycopg decides by prepare_threshold

    def _read(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        pool = self._pools.current()
        while True:  # each turn closes one dead connection: a bounded number
            conn = pool.take()
            if _died_while_idle(conn):
                _drop_stale(pool, conn)
                continue
            try:
                result = fn(conn)
            except psycopg.Error as e:
                if not (conn.broken or conn.closed):
                    pool.give(conn)
                    raise
                # Lost after the query was sent: it may have written
                # (INSERT ... RETURNING), so it is not run again.
                pool.lost(conn, e)
                raise DatabaseUnavailable(
                    f"database connection lost: {_one_line(e)}") from e
            except BaseException:
                pool.give(conn)
                raise
            pool.give(conn)
            return result


def _backoff(attempt: int) -> None:
    # Random, growing: two transactions that deadlocked should not meet again.
    time.sleep(random.uniform(0, 0.002 * (1 << attempt)))


def _fetch(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | None,
           one: bool, fast: bool) -> Any:
    if fast:
        try:
            return _fast.fetch(conn, query, params, one)
        except _fast.Unsupported:
            pass
    cur = conn.execute(query, params)
    return cur.fetchone() if one else cur.fetchall()


def _died_while_idle(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection was closed by the server (a restart, a
    terminated backend): its socket has something to read — the FATAL
    message and the end of the stream — while nothing was asked."""
    pgconn = conn.pgconn
    wait = 0.0
    try:
        # The FATAL message and the end of the stream may take a read each,
        # and the end may come a moment after the message: once anything
        # came unasked (rare: a NOTIFY, a setting, a shutdown), wait a little.
        for _ in range(4):
            if pgconn.status == pq.ConnStatus.BAD:
                return True
            # poll, not select: a busy server's descriptors pass 1024.
            poller = select.poll()
            poller.register(pgconn.socket, select.POLLIN)
            if not poller.poll(wait * 1000):
                return False
            pgconn.consume_input()
            wait = 0.1
    except (OSError, psycopg.Error):
        return True
    return bool(pgconn.status == pq.ConnStatus.BAD)


def _drop_stale(pool: WorkerPool, conn: psycopg.Connection[Any]) -> None:
    # A pooled connection died while idle (a server restart): its siblings
    # probably did too; the retry opens a fresh one.
    pool.discard(conn)
    pool.drop_idle()


_ISOLATION = {
    psycopg.IsolationLevel.READ_UNCOMMITTED: "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    psycopg.IsolationLevel.READ_COMMITTED: "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
    psycopg.IsolationLevel.REPEATABLE_READ: "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    psycopg.IsolationLevel.SERIALIZABLE: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
}
