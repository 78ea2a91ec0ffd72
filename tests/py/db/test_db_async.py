"""Database's coroutine methods (afetchone, afetchall, afetch_many, aexecute)
against a real PostgreSQL, in this process, on pyparallel.asyncio's loop and
on asyncio's own: the same answers and errors as the blocking methods, every
concurrent query its own row (results matched in order on pipelined
connections), an error (the server's, or a value psycopg cannot load) fails only its
statement, a cancelled query does not
shift the answers of the ones after it, what the pipeline cannot encode
goes the blocking way with the same result, a terminated connection is a
503 and the next query reconnects, and an unreachable server is a quick
503."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

import pyparallel.asyncio as pxa
from pyparallel.db import Database, DatabaseUnavailable

WORLD = "SELECT id, randomNumber FROM World WHERE id = %s"
KILL_ALL = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s")

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
RUNNERS: dict[str, Runner] = {"pyparallel": pxa.run, "asyncio": asyncio.run}


@pytest.fixture(params=sorted(RUNNERS))
def run(request: pytest.FixtureRequest) -> Runner:
    return RUNNERS[request.param]


def _worlds(dsn: str) -> dict[int, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return dict(conn.execute("SELECT id, randomNumber FROM World").fetchall())


def test_answers_as_the_blocking_methods(run: Runner, db: Database) -> None:
    async def main() -> None:
        assert await db.afetchone(WORLD, (42,)) == db.fetchone(WORLD, (42,))
        assert await db.afetchone(WORLD, (0,)) is None
        assert await db.afetchall("SELECT id FROM Fortune WHERE id <= %s ORDER BY id",
                                  (3,)) == [(1,), (2,), (3,)]
        assert await db.afetchall("SELECT id, message FROM Fortune") == \
            db.fetchall("SELECT id, message FROM Fortune")
        assert await db.afetchone("SELECT %s::text, %s::float8, %s::bool, %s::int",
                                  ("h\u00e9", 1.5, True, None)) == ("h\u00e9", 1.5, True, None)
        assert await db.afetchone("SELECT %s::bigint[]", ([1, 2, 3],)) == ([1, 2, 3],)
        number = db.fetchone(WORLD, (42,))[1]
        assert (await db.afetch_many(WORLD, [(1,), (0,), (42,)]))[1:] == [None, (42, number)]
        assert await db.afetch_many(WORLD, []) == []
        # what the pipeline cannot encode goes the blocking way, same answer
        assert await db.afetchone("SELECT id, randomNumber FROM World WHERE id = %(i)s",
                                  {"i": 42}) == (42, number)  # type: ignore[arg-type]
        assert await db.afetch_many("SELECT %(v)s::int", [{"v": 1}, {"v": 2}]) == \
            [(1,), (2,)]  # type: ignore[list-item]
    run(main())
    assert db.stats()["pipelined"] >= 1


def test_execute_counts_and_takes_several_statements(run: Runner, db: Database,
                                                     pg_dsn: str) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        await db.aexecute(f"CREATE TABLE {table} (id int, v int); "
                          f"INSERT INTO {table} VALUES (1, 1), (2, 2), (3, 3)")
        assert await db.aexecute(f"UPDATE {table} SET v = v + %s WHERE id < %s",
                                 (10, 3)) == 2
        assert await db.aexecute(f"DELETE FROM {table} WHERE id = %s", (99,)) == 0
        assert await db.afetchall(f"SELECT v FROM {table} ORDER BY id") == \
            [(11,), (12,), (3,)]
        await db.aexecute(f"DROP TABLE {table}")
    run(main())


def test_concurrent_queries_get_their_own_rows(run: Runner, db: Database, pg_dsn: str) -> None:
    worlds = _worlds(pg_dsn)

    async def one(i: int) -> None:
        wid = 1 + (i * 37) % 10_000
        if i % 3 == 0:
            rows = await db.afetch_many(WORLD, [(wid,), (wid % 9_999 + 1,)])
            assert rows == [(wid, worlds[wid]), (wid % 9_999 + 1, worlds[wid % 9_999 + 1])]
        else:
            assert await db.afetchone(WORLD, (wid,)) == (wid, worlds[wid])

    async def main() -> None:
        for _ in range(3):
            await asyncio.gather(*(one(i) for i in range(500)))
    run(main())
    assert 1 <= db.stats()["pipelined"] <= db.pipelined_per_loop


def test_an_error_fails_only_its_statement(run: Runner, db: Database) -> None:
    async def main() -> None:
        good = [db.afetchone("SELECT %s::int", (i,)) for i in range(5)]
        bad = db.afetchone("SELECT * FROM no_such_table WHERE id = %s", (1,))
        zero = db.afetch_many("SELECT 1 / %s::int", [(1,), (0,), (2,)])
        syntax = db.afetchone("SELEC %s", (1,))
        after = [db.afetchone("SELECT %s::int + 1", (i,)) for i in range(5)]
        got = await asyncio.gather(*good, bad, zero, syntax, *after, return_exceptions=True)
        assert got[:5] == [(i,) for i in range(5)]
        assert isinstance(got[5], pg_errors.UndefinedTable)
        assert isinstance(got[6], pg_errors.DivisionByZero)
        assert isinstance(got[7], pg_errors.SyntaxError)
        assert got[8:] == [(i + 1,) for i in range(5)]
        # a value psycopg cannot load (a date past year 9999) fails its statement only,
        # as it fails the blocking call
        with pytest.raises(psycopg.DataError):
            db.fetchone("SELECT %s::text::date", ("infinity",))
        late = [db.afetchone("SELECT %s::text::date", ("infinity",)),
                db.afetch_many("SELECT %s::text::date", [("2026-12-05",), ("infinity",)]),
                db.afetchone("SELECT %s::int", (7,))]
        got = await asyncio.gather(*late, return_exceptions=True)
        assert isinstance(got[0], psycopg.DataError) and isinstance(got[1], psycopg.DataError)
        assert got[2] == (7,)
        assert await db.afetchone("SELECT 1") == (1,)
    run(main())


def test_a_cancelled_query_does_not_shift_the_next_answers(run: Runner, db: Database) -> None:
    async def main() -> None:
        slow = asyncio.ensure_future(db.afetchone("SELECT pg_sleep(%s), 'slow'", (0.2,)))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        got = await asyncio.gather(*(db.afetchone("SELECT %s::int", (i,)) for i in range(50)))
        assert got == [(i,) for i in range(50)]
    run(main())


def test_a_terminated_connection_is_a_503_then_reconnects(run: Runner, db: Database,
                                                          pg_dsn: str) -> None:
    name = str(db._pools.connect_kwargs["application_name"])

    async def main() -> None:
        assert await db.afetchone("SELECT 1") == (1,)
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(KILL_ALL, (name,))
        # the loss is found by the next statement sent (503) or at once
        try:
            await db.afetchone("SELECT 2")
        except DatabaseUnavailable:
            pass
        deadline = time.monotonic() + 10
        while True:
            try:
                assert await db.afetchone("SELECT 3") == (3,)
                return
            except DatabaseUnavailable:
                assert time.monotonic() < deadline, "never reconnected"
                await asyncio.sleep(0.1)
    run(main())


def test_an_unreachable_server_is_a_quick_503(run: Runner) -> None:
    db = Database("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2",
                  retry_interval=5.0)

    async def main() -> None:
        for _ in range(3):
            t0 = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                await db.afetchone("SELECT 1")
            assert time.monotonic() - t0 < 2.0
    run(main())
