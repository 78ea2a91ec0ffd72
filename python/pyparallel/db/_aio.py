"""Queries from coroutines, on the worker's own asyncio loop, with no thread
per waiting query.

The blocking methods of :class:`~pyparallel.db.Database` hold their thread
while PostgreSQL answers, and a worker serving 64 clients then runs dozens of
threads that switch on every query. Its ``a``-prefixed methods (``await
db.afetchone(...)``) instead send the query from the worker's loop and return
to it: each worker loop keeps a few libpq connections in pipeline mode, every
query of every request goes out as soon as it is made (the sends of one loop
turn in one write), and the results come back in order to the coroutines
that wait for them. A query waits behind the ones sent before it on its
connection, so the loop picks, for each new query, the connection with the
fewest statements in flight among those whose oldest one has waited less
than STALLED seconds (a slow statement such as ``pg_sleep(1)`` then holds up
only what was sent behind it in that time; when all have waited longer, the
one whose oldest statement is the youngest), and opens another (up to
``pipelined_per_loop``) when every connection has statements in flight.

Each statement is prepared once per connection (in the same round trip as its
first run) and followed by a sync point, so that an error fails only its own
statement. What this path cannot encode (named placeholders, parameters other
than None/bool/int/float/str and lists of ints, several statements in one
string) runs on the blocking path in the loop's executor, with the same
results and errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import Transformer

from . import _fast
from ._errors import DatabaseUnavailable
from ._pool import _one_line

__all__ = ["LoopConnections", "ONE", "ALL", "COUNT"]

log = logging.getLogger("pyparallel.db")

# What a query's future gets: its first row, every row, or its row count.
ONE, ALL, COUNT = 0, 1, 2
# Entries of a connection's queue of results to come.
_PREPARE, _QUERY, _BATCH, _SYNC = 0, 1, 2, 3

_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_ABORTED = pq.ExecStatus.PIPELINE_ABORTED
_FATAL = pq.ExecStatus.FATAL_ERROR
_BAD = pq.ConnStatus.BAD
_SQLSTATE = pq.DiagnosticField.SQLSTATE


def _connection_gone(res: pq.abc.PGresult) -> bool:
    """An error that ends the session: SQLSTATE class 08 (connection
    exception) or 57P01-57P03 (the server shutting down, a terminated backend,
    a server not accepting connections yet)."""
    state = res.error_field(_SQLSTATE) or b""
    return state.startswith(b"08") or state in (b"57P01", b"57P02", b"57P03")

#: A connection whose oldest statement in flight is older than this (seconds)
#: gets no new statements while another one can take them.
STALLED = 0.005


class _Batch:
    """The first rows of a pipelined batch, gathered for one future."""

    __slots__ = ("fut", "rows", "left", "error")

    def __init__(self, fut: asyncio.Future[Any], n: int) -> None:
        self.fut = fut
        self.rows: list[Any] = [None] * n
        self.left = n
        self.error: BaseException | None = None


class _Conn:
    """One libpq connection of a worker loop, in pipeline mode."""

    def __init__(self, owner: LoopConnections, conn: psycopg.Connection[Any]) -> None:
        self.owner = owner
        self.loop = owner.loop
        self.conn = conn
        self.pg = pg = conn.pgconn
        self.tx = Transformer(conn)
        self.encoding = conn.info.encoding
        self.names: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self.serial = 0
        self.queue: deque[tuple[int, Any, Any]] = deque()
        self.sent: deque[float] = deque()  # loop time each sync group was sent
        self.inflight = 0          # statements sent and not answered
        self.after_result = False  # the NULL that ends a statement's results is next
        self.group_error: BaseException | None = None  # aborts the rest up to the sync
        self.flush_due = False
        self.writing = False
        self.dead = False
        pg.nonblocking = 1
        pg.enter_pipeline_mode()
        self.fd = pg.socket
        self.loop.add_reader(self.fd, self._readable)

    # -- sending ------------------------------------------------------------------
    def _statement(self, query: str, types: tuple[int, ...]) -> bytes:
        key = (query, types)
        name = self.names.get(key)
        if name is None:
            sql = _fast.to_dollar(query)
            if sql is None or len(self.names) >= _fast.MAX_PREPARED:
                raise _fast.Unsupported("placeholders or statement table full")
            name = b"_px_a%d" % self.serial
            self.serial += 1
            self.pg.send_prepare(name, sql.encode(), types or None)
            self.queue.append((_PREPARE, key, None))
            self.names[key] = name
        return name

    def send(self, query: str, params: Sequence[Any] | None, mode: int) -> asyncio.Future[Any]:
        values, types = _fast._encode(self.tx, params)
        fut = self.loop.create_future()
        try:
            name = self._statement(query, types)
            self.pg.send_query_prepared(name, values)  # type: ignore[arg-type,unused-ignore]
            self.queue.append((_QUERY, fut, mode))
            self.pg.pipeline_sync()
            self.queue.append((_SYNC, None, None))
        except psycopg.OperationalError as e:
            raise self._send_failed(fut, e) from e
        self._sent()
        return fut

    def _send_failed(self, fut: asyncio.Future[Any], exc: BaseException) -> BaseException:
        """libpq found the connection gone while sending: the error to raise."""
        fut.cancel()  # raised to the caller instead; nobody awaits the future
        self._lost(exc)
        return DatabaseUnavailable(f"database connection lost: {_one_line(exc)}")

    def _sent(self) -> None:
        self.inflight += 1
        self.sent.append(self.loop.time())
        self._want_flush()

    def send_batch(self, query: str, params_seq: Sequence[Sequence[Any]]) -> asyncio.Future[Any]:
        encoded = []
        types: tuple[int, ...] | None = None
        for p in params_seq:
            values, row_types = _fast._encode(self.tx, p)
            if types is not None and row_types != types:
                raise _fast.Unsupported("parameter types differ between rows")
            types = row_types
            encoded.append(values)
        fut = self.loop.create_future()
        batch = _Batch(fut, len(encoded))
        pg = self.pg
        queue = self.queue
        try:
            name = self._statement(query, types or ())
            for i, values in enumerate(encoded):
                pg.send_query_prepared(name, values)  # type: ignore[arg-type,unused-ignore]
                queue.append((_BATCH, batch, i))
            pg.pipeline_sync()
            queue.append((_SYNC, None, None))
        except psycopg.OperationalError as e:
            raise self._send_failed(fut, e) from e
        self._sent()
        return fut

    def _want_flush(self) -> None:
        if not self.flush_due:
            self.flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_due = False
        if self.dead:
            return
        try:
            more = self.pg.flush()
        except psycopg.OperationalError as e:
            self._lost(e)
            return
        if more and not self.writing:
            self.writing = True
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            more = self.pg.flush()
        except psycopg.OperationalError as e:
            self._lost(e)
            return
        if not more:
            self.writing = False
            self.loop.remove_writer(self.fd)

    # -- receiving -----------------------------------------------------------------
    def _readable(self) -> None:
        pg = self.pg
        try:
            pg.consume_input()
        except psycopg.OperationalError as e:
            self._lost(e)
            return
        queue = self.queue
        while queue and not pg.is_busy():
            res = pg.get_result()
            if self.after_result:  # the end of the last statement's results
                self.after_result = False
                if res is None:
                    continue
            if res is None:
                break  # nothing more yet (or the connection broke: below)
            if res.status == _FATAL and _connection_gone(res):
                # the server ends the session (a shutdown, a terminated
                # backend): what is in flight fails as a lost connection
                message = res.error_message.decode(self.encoding, "replace")
                res.clear()
                self._lost(psycopg.OperationalError(message.strip() or "connection lost"))
                return
            kind, a, b = queue.popleft()
            if kind == _SYNC:
                self.group_error = None
                self.sent.popleft()
                res.clear()
                continue
            self.after_result = True
            self._deliver(kind, a, b, res)
        if pg.status == _BAD:
            self._lost(psycopg.OperationalError(pg.get_error_message() or "connection lost"))

    def _deliver(self, kind: int, a: Any, b: Any, res: pq.abc.PGresult) -> None:
        status = res.status
        error: BaseException | None = None
        if status != _TUPLES_OK and status != _COMMAND_OK:
            if status == _ABORTED:
                error = self.group_error or psycopg.OperationalError("pipeline aborted")
            else:
                error = pg_errors.error_from_result(res, encoding=self.encoding)
                self.group_error = error
                if isinstance(error, pg_errors.InvalidSqlStatementName):
                    self.names.clear()  # the server has none of ours any more
            res.clear()
        if kind == _PREPARE:
            if error is not None:
                self.names.pop(a, None)
            else:
                res.clear()
            return
        if kind == _QUERY:
            self.inflight -= 1
            if a.done():  # its coroutine was cancelled
                if error is None:
                    res.clear()
                return
            if error is not None:
                a.set_exception(error)
                return
            try:
                value = self._value(res, b)
            except Exception as e:  # a loader refused a value: this statement's error
                a.set_exception(e)
            else:
                a.set_result(value)
            return
        batch: _Batch = a  # _BATCH
        if error is not None:
            batch.error = batch.error or error
        else:
            if batch.error is None and res.ntuples:
                tx = self.tx
                tx.set_pgresult(res)
                try:
                    batch.rows[b] = tx.load_row(0, tuple)
                except Exception as e:  # a loader refused a value: the batch's error
                    batch.error = e
                finally:
                    tx.set_pgresult(None)
            res.clear()
        batch.left -= 1
        if batch.left == 0:
            self.inflight -= 1
            if not batch.fut.done():
                if batch.error is not None:
                    batch.fut.set_exception(batch.error)
                else:
                    batch.fut.set_result(batch.rows)

    def _value(self, res: pq.abc.PGresult, mode: int) -> Any:
        try:
            if mode == COUNT:
                count = res.command_tuples
                return -1 if count is None else count
            tx = self.tx
            tx.set_pgresult(res)
            try:
                if mode == ONE:
                    return tx.load_row(0, tuple) if res.ntuples else None
                return tx.load_rows(0, res.ntuples, tuple)
            finally:
                tx.set_pgresult(None)
        finally:
            res.clear()

    # -- loss ----------------------------------------------------------------------
    def _lost(self, exc: BaseException) -> None:
        """The connection broke: every statement in flight fails (each may
        have run), the connection is forgotten, the next query opens one."""
        if self.dead:
            return
        self.dead = True
        self.owner.forget(self, exc)
        try:
            self.loop.remove_reader(self.fd)
            if self.writing:
                self.loop.remove_writer(self.fd)
        except (OSError, ValueError, RuntimeError):
            pass
        error = DatabaseUnavailable(f"database connection lost: {_one_line(exc)}")
        error.__cause__ = exc
        for kind, a, _b in self.queue:
            fut = a.fut if kind == _BATCH else a if kind == _QUERY else None
            if fut is not None and not fut.done():
                fut.set_exception(error)
        self.queue.clear()
        self.sent.clear()
        self.inflight = 0
        try:
            self.conn.close()
        except Exception:  # a broken socket may refuse even a close
            pass

    def close(self) -> None:
        if not self.dead:
            self._lost(psycopg.OperationalError("closed"))


def _oldest_sent(c: _Conn) -> float:
    """When c's oldest statement in flight was sent (the larger, the younger)."""
    return c.sent[0]


class LoopConnections:
    """The pipelined connections of one worker loop (made on first use)."""

    def __init__(self, db: Any, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.db = db
        self.loop = loop
        self.size = size
        self.conns: list[_Conn] = []
        self.opening: asyncio.Future[None] | None = None
        self._opener: asyncio.Task[None] | None = None  # held: the loop keeps only a weak one
        self.down_until = 0.0
        self.down = False

    def ready(self) -> _Conn | None:
        """The connection for the next statement (no await): the one with the
        fewest in flight among those not stalled; None when there is none
        yet, or when all are stalled and another is being opened. While every
        one has statements in flight and there is room, one more is opened."""
        best = None
        stalled = 0
        now = 0.0
        for c in self.conns:
            n = c.inflight
            if n:
                now = now or self.loop.time()
                if now - c.sent[0] > STALLED:
                    stalled += 1
                    continue
            if best is None or n < best.inflight:
                best = c
                if n == 0:
                    return c
        if (len(self.conns) < self.size and self.opening is None
                and self.loop.time() >= self.down_until):
            self._start_open()
        if best is None and stalled and self.opening is None:
            # all stalled and no room: the one whose oldest statement is the
            # youngest (a burst on healthy connections, not a slow statement)
            best = max(self.conns, key=_oldest_sent)
        return best

    async def conn(self) -> _Conn:
        """A connection, opened first when the loop has none."""
        while True:
            c = self.ready()
            if c is not None:
                return c
            if self.opening is None:
                self._start_open()
            assert self.opening is not None
            await asyncio.shield(self.opening)
            if not self.conns:
                raise DatabaseUnavailable("database unavailable (the connection could not be "
                                          "opened; see the log)")

    def _start_open(self) -> None:
        self.opening = self.loop.create_future()
        self._opener = self.loop.create_task(self._open())

    async def _open(self) -> None:
        opening = self.opening
        assert opening is not None
        try:
            now = self.loop.time()
            if now < self.down_until:
                return
            db = self.db
            try:
                conn = await self.loop.run_in_executor(None, db._connect_async_conn)
            except psycopg.OperationalError as e:
                self.down_until = self.loop.time() + db._pools.retry_interval
                if not self.down:
                    self.down = True
                    log.error("database unreachable from a worker loop: %s; answering 503, "
                              "retrying every %s s", _one_line(e), db._pools.retry_interval)
                return
            if self.down:
                self.down = False
                log.warning("database reachable again from a worker loop")
            self.conns.append(_Conn(self, conn))
        finally:
            self.opening = None
            if not opening.done():
                opening.set_result(None)

    def forget(self, c: _Conn, exc: BaseException) -> None:
        if c in self.conns:
            self.conns.remove(c)
            if not self.down:
                self.down = True
                log.error("database connection lost on a worker loop: %s; answering 503 "
                          "until it is back", _one_line(exc))

    def close(self) -> None:
        for c in list(self.conns):
            c.close()
