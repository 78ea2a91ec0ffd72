"""The hot path of reads: prepared statements executed on psycopg's libpq
connection directly.

psycopg's cursor machinery (generators, adapter lookup, the statement cache)
costs more than the query: measured on one thread of the free-threaded 3.13,
one prepared row read takes 135 us of CPU through the cursor with psycopg's C
build (220 us with the pure-Python one) and 51 us here (139 us), a pipelined
batch of 20 722 us against 148 us (1,888 against 822), the 12 fortunes 118
against 57 us. So fetchone/fetchall/fetch_many prepare each statement once per
connection under a name of their own and run it here; statements this module
cannot encode (named placeholders, parameters other than
None/bool/int/float/str) go through the cursor as usual.

A query blocks only the calling thread, without holding the interpreter
(libpq's waits run with the GIL released, or detached on a free-threaded
build; a batch's results are waited for in poll, see _wait_result): the
engine's hand-off covers a slow query as it covers any blocking call.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import abc as pg_abc
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

__all__ = ["Unsupported", "to_dollar", "execute", "fetch", "fetch_batch", "forget"]

T = TypeVar("T")

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)

#: Statements prepared per connection at most (psycopg keeps 100 too):
#: queries built with f-strings would otherwise grow the table, here and on
#: the server, without bound. Past it a new query takes the cursor path.
MAX_PREPARED = 100


class Unsupported(Exception):
    """This statement or its parameters need the cursor path."""


def to_dollar(query: str) -> str | None:
    """query with psycopg's ``%s`` placeholders numbered as PostgreSQL's
    ``$1``, ``$2``...; None when it has other ``%`` forms."""
    parts = query.split("%s")
    if any("%" in part for part in parts):
        return None
    out = [parts[0]]
    for i, part in enumerate(parts[1:], 1):
        out.append(f"${i}")
        out.append(part)
    return "".join(out)


_SIMPLE = (int, float, str, bool, type(None))
_INT8_ARRAY_OID = 1016  # bigint[]
_INT8_MIN, _INT8_MAX = -(2**63), 2**63 - 1


def _int_array(v: list[Any]) -> bytes | None:
    """A non-empty list of ints in bigint's range as PostgreSQL's array text
    (``{1,2,3}``); None for any other list. /updates sends two lists of 20:
    measured on one thread of 3.13t, 162-167 us of CPU per UPDATE through
    psycopg's cursor and list dumper, 91-93 us this way."""
    if not v:
        return None  # psycopg types an empty list by the query: its path
    for x in v:
        if type(x) is not int or not _INT8_MIN <= x <= _INT8_MAX:
            return None
    return ("{" + ",".join(map(str, v)) + "}").encode()


def _encode(tx: pg_abc.Transformer,
            params: Sequence[Any] | None) -> tuple[list[Any], tuple[int, ...]]:
    """params as psycopg's own dumpers encode them (text format): the same
    types (so ``SELECT %s`` answers as psycopg's cursor does), the
    connection's client encoding, DataError on a NUL in a string (libpq
    would cut the string there). A list of ints goes as a bigint[]."""
    if not params:
        return [], ()
    if type(params) is not tuple and type(params) is not list:
        raise Unsupported(type(params).__name__)  # a mapping: named placeholders
    arrays: dict[int, bytes] | None = None
    for i, v in enumerate(params):
        if type(v) not in _SIMPLE:
            text = _int_array(v) if type(v) is list else None
            if text is None:
                raise Unsupported(type(v).__name__)
            arrays = arrays if arrays is not None else {}
            arrays[i] = text
    if arrays is None:
        values = list(tx.dump_sequence(params, [PyFormat.TEXT] * len(params)))
        return values, tuple(tx.types or ())
    plain = [None if i in arrays else v for i, v in enumerate(params)]
    values = list(tx.dump_sequence(plain, [PyFormat.TEXT] * len(plain)))
    types = list(tx.types or (0,) * len(plain))
    for i, text in arrays.items():
        values[i] = text
        types[i] = _INT8_ARRAY_OID
    return values, tuple(types)


class _State:
    """What this module keeps on a connection: its statement names and loaders.

    The statement used last is kept beside the table and checked first. A
    connection passes from thread to thread (the pool, the hand-off), and on
    the free-threaded build a read of a dict that another thread filled takes
    the dict's lock; under load on one CPU crowded with waiting threads those
    locks convoyed: `perf` counted 150,000 context switches a second, most of
    them lock spins (`sched_yield`) in this lookup, on `/fortunes` with 64
    clients, and 12,500 with the last statement checked first (2,479 against
    4,870 requests a second)."""

    __slots__ = ("names", "tx", "serial", "last_key", "last_name")

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.names: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self.tx: pg_abc.Transformer = Transformer(conn)
        self.serial = 0  # never reused: a name forgotten here may live on the server
        self.last_key: tuple[str, tuple[int, ...]] | None = None
        self.last_name = b""

    def clear(self) -> None:
        """Forget every statement (the server has none of them any more)."""
        self.names.clear()
        self.last_key = None


def forget(conn: psycopg.Connection[Any]) -> None:
    """Forget the statements prepared on conn, and deallocate them: after a
    rollback psycopg deallocates every statement when it had prepared one
    itself, else nothing; afterwards neither side has any."""
    st: _State | None = getattr(conn, "_px_fast", None)
    if st is None or not st.names or conn.closed or conn.broken:
        return
    st.clear()
    conn.execute("DEALLOCATE ALL", prepare=False)


def _state(conn: psycopg.Connection[Any]) -> _State:
    st: _State | None = getattr(conn, "_px_fast", None)
    if st is None:
        st = _State(conn)
        setattr(conn, "_px_fast", st)  # noqa: B010 (psycopg declares no such attribute)
    return st


def _prepared(conn: psycopg.Connection[Any], st: _State, query: str,
              types: tuple[int, ...]) -> bytes:
    key = (query, types)
    if key == st.last_key:
        return st.last_name
    name = st.names.get(key)
    if name is None:
        sql = to_dollar(query)
        if sql is None:
            raise Unsupported("placeholders")
        if len(st.names) >= MAX_PREPARED:
            raise Unsupported("statement table full")
        name = f"_px_{st.serial}".encode()
        st.serial += 1
        _check(conn, conn.pgconn.prepare(name, sql.encode(), types))
        st.names[key] = name
    st.last_key = key
    st.last_name = name
    return name


def _check(conn: psycopg.Connection[Any], res: pq.abc.PGresult | None) -> pq.abc.PGresult:
    pgconn = conn.pgconn
    if res is None or pgconn.status == pq.ConnStatus.BAD:
        if res is not None:
            res.clear()
        message = pgconn.get_error_message() or "connection lost"
        raise psycopg.OperationalError(message)
    if res.status not in _OK:
        err = pg_errors.error_from_result(res, encoding=conn.info.encoding)
        res.clear()
        raise err
    return res


def _redo_once(run: Callable[[], T], conn: psycopg.Connection[Any]) -> T:
    """run(); once more after forgetting every statement when the server had
    none of ours (SQLSTATE 26000): psycopg sends DEALLOCATE ALL after a
    rollback and after DROP, ALTER, DISCARD ALL or DEALLOCATE ALL. The
    statement did not run, so running it again is safe."""
    try:
        return run()
    except pg_errors.InvalidSqlStatementName:
        _state(conn).clear()
        return run()


def fetch(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | None,
          one: bool) -> Any:
    """The first row (one) or every row of query, as tuples."""
    return _redo_once(lambda: _fetch(conn, query, params, one), conn)


def _run_prepared(conn: psycopg.Connection[Any], query: str,
                  params: Sequence[Any] | None) -> tuple[_State, pq.abc.PGresult]:
    """query run as this module's prepared statement: its result (to clear)."""
    st = _state(conn)
    values, types = _encode(st.tx, params)
    name = _prepared(conn, st, query, types)
    # None is a NULL to libpq (psycopg's stubs leave it out of the type).
    res = _check(conn, conn.pgconn.exec_prepared(name, values))  # type: ignore[arg-type,unused-ignore]
    return st, res


def _fetch(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | None,
           one: bool) -> Any:
    st, res = _run_prepared(conn, query, params)
    try:
        tx = st.tx
        tx.set_pgresult(res)
        if one:
            return tx.load_row(0, tuple) if res.ntuples else None
        return tx.load_rows(0, res.ntuples, tuple)
    finally:
        tx.set_pgresult(None)
        res.clear()


def execute(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | None) -> int:
    """Run a statement whose rows, if any, are not wanted; the number of rows
    it affected (-1 when the server says none), as psycopg's rowcount."""
    return _redo_once(lambda: _execute(conn, query, params), conn)


def _execute(conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | None) -> int:
    _st, res = _run_prepared(conn, query, params)
    try:
        count = res.command_tuples
        return -1 if count is None else count
    finally:
        res.clear()


def _wait_result(pgconn: pq.abc.PGconn) -> None:
    """Read until get_result() has its next result without waiting: psycopg's
    C build waits inside libpq's get_result holding the interpreter (the GIL,
    or on a free-threaded build its thread state, which stalls every other
    thread at the next stop-the-world pause); poll waits without it."""
    if not pgconn.is_busy():
        return
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN)
    while True:
        poller.poll()
        pgconn.consume_input()  # OperationalError when the connection is lost
        if not pgconn.is_busy():
            return


def fetch_batch(conn: psycopg.Connection[Any], query: str,
                params_seq: Sequence[Sequence[Any]]) -> list[Any]:
    """query once per parameter tuple in one libpq pipeline (one round
    trip); the first row of each (None when it had none)."""
    return _redo_once(lambda: _fetch_batch(conn, query, params_seq), conn)


def _fetch_batch(conn: psycopg.Connection[Any], query: str,
                 params_seq: Sequence[Sequence[Any]]) -> list[Any]:
    st = _state(conn)
    encoded = []
    types: tuple[int, ...] | None = None
    for p in params_seq:
        values, row_types = _encode(st.tx, p)
        if types is not None and row_types != types:
            raise Unsupported("parameter types differ between rows")
        types = row_types
        encoded.append(values)
    name = _prepared(conn, st, query, types or ())
    pgconn = conn.pgconn
    tx = st.tx
    rows: list[Any] = []
    error: Exception | None = None
    pgconn.enter_pipeline_mode()
    try:
        for values in encoded:
            pgconn.send_query_prepared(name, values)  # type: ignore[arg-type,unused-ignore]
        pgconn.pipeline_sync()
        for _ in encoded:
            _wait_result(pgconn)
            res = pgconn.get_result()
            if res is not None:
                end = pgconn.get_result()  # each statement's results end with None
                if end is not None:
                    end.clear()
            if error is not None:  # the rest of the batch was skipped by the server
                if res is not None:
                    res.clear()
                continue
            try:
                res = _check(conn, res)
            except psycopg.Error as e:
                if pgconn.status == pq.ConnStatus.BAD:
                    raise
                error = e
                continue
            try:
                tx.set_pgresult(res)
                rows.append(tx.load_row(0, tuple) if res.ntuples else None)
            finally:
                tx.set_pgresult(None)
                res.clear()
        _wait_result(pgconn)
        sync = pgconn.get_result()
        if sync is None or sync.status != pq.ExecStatus.PIPELINE_SYNC:
            raise psycopg.OperationalError("pipeline: no sync after the batch")
        sync.clear()
    finally:
        if pgconn.status != pq.ConnStatus.BAD:
            pgconn.exit_pipeline_mode()
    if error is not None:
        raise error
    return rows
