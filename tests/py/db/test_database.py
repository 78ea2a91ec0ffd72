"""pyparallel.db.Database against a real PostgreSQL, in this process: the
prepared fast path and psycopg's cursor path answer alike, errors pass
through without losing the connection, transactions retry serialization
failures, a killed connection is replaced, an unreachable server is a quick
503."""

from __future__ import annotations

import decimal
import socket
import threading
import time

import psycopg
import pytest
from psycopg import errors as pg_errors

from http_helpers import wait_for
from pyparallel.db import Database, DatabaseUnavailable

WORLD = "SELECT id, randomNumber FROM World WHERE id = %s"
GONE = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
KILL_ALL = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s")


def _name(db: Database) -> str:
    return str(db._pools.connect_kwargs["application_name"])


def _settled(db: Database, most: int) -> dict[str, int]:
    """The pool's counts once the spare it may be opening is in: every
    connection idle (none leaked by the calls before), at most most open."""
    assert wait_for(lambda: db.stats()["open"] == db.stats()["idle"], 10), db.stats()
    stats = db.stats()
    assert 1 <= stats["open"] <= most, stats
    return stats


def _direct(dsn: str, query: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def test_fast_and_cursor_paths_answer_alike(db: Database, pg_dsn: str) -> None:
    number = _direct(pg_dsn, "SELECT randomNumber FROM World WHERE id = 42")
    assert db.fetchone(WORLD, (42,)) == (42, number)                      # prepared, fast
    assert db.fetchone("SELECT id, randomNumber FROM World WHERE id = %(i)s",
                       {"i": 42}) == (42, number)  # type: ignore[arg-type]  # cursor
    assert db.fetchone(WORLD, (decimal.Decimal(42),)) == (42, number)    # cursor
    assert db.fetchone(WORLD, (0,)) is None
    assert db.fetchall("SELECT id FROM Fortune WHERE id <= %s ORDER BY id", (3,)) == \
        [(1,), (2,), (3,)]
    assert db.fetchone("SELECT %s::text, %s::float8, %s::bool, %s::int",
                       ("h\u00e9", 1.5, True, None)) == ("h\u00e9", 1.5, True, None)
    assert db.fetch_many(WORLD, [(1,), (0,), (42,)])[1:] == [None, (42, number)]
    assert db.fetch_many(WORLD, []) == []
    _settled(db, 2)  # one in use at a time, and the spare


def test_errors_pass_through_and_the_connection_serves_on(db: Database) -> None:
    with pytest.raises(pg_errors.UndefinedTable):
        db.fetchone("SELECT * FROM no_such_table WHERE id = %s", (1,))
    with pytest.raises(pg_errors.DivisionByZero):
        db.fetch_many("SELECT 1 / %s::int", [(1,), (0,), (2,)])
    assert db.fetch_many("SELECT 10 / %s::int", [(1,), (5,)]) == [(10,), (2,)]
    assert db.fetchone("SELECT 1") == (1,)
    _settled(db, 2)


def test_transaction_retries_a_serialization_failure(db: Database, pg_dsn: str) -> None:
    attempts = []

    def bump(conn: psycopg.Connection[object]) -> int:
        attempts.append(1)
        row = conn.execute("SELECT randomNumber FROM World WHERE id = 7").fetchone()
        assert row is not None
        if len(attempts) == 1:  # somebody else changes the row under this snapshot
            with psycopg.connect(pg_dsn, autocommit=True) as other:
                other.execute("UPDATE World SET randomNumber = randomNumber WHERE id = 7")
        conn.execute("UPDATE World SET randomNumber = %s WHERE id = 7", (row[0] % 10_000 + 1,))
        return int(row[0]) % 10_000 + 1

    value = db.transaction(bump, isolation=psycopg.IsolationLevel.REPEATABLE_READ)
    assert len(attempts) == 2
    assert _direct(pg_dsn, "SELECT randomNumber FROM World WHERE id = 7") == value


def test_transaction_gives_up_after_its_retries(db: Database, pg_dsn: str) -> None:
    attempts = []

    def always_conflicts(conn: psycopg.Connection[object]) -> None:
        attempts.append(1)
        conn.execute("SELECT randomNumber FROM World WHERE id = 8")
        with psycopg.connect(pg_dsn, autocommit=True) as other:
            other.execute("UPDATE World SET randomNumber = randomNumber WHERE id = 8")
        conn.execute("UPDATE World SET randomNumber = 1 WHERE id = 8")

    with pytest.raises(pg_errors.SerializationFailure):
        db.transaction(always_conflicts, retries=2,
                       isolation=psycopg.IsolationLevel.REPEATABLE_READ)
    assert len(attempts) == 3
    _settled(db, 2)  # rolled back and kept


def test_a_killed_connection_is_replaced(db: Database, pg_dsn: str) -> None:
    before = {db.fetchone("SELECT pg_backend_pid()") for _ in range(3)}
    _settled(db, 2)
    assert _direct(pg_dsn, KILL_ALL, (_name(db),)) == db.stats()["open"]
    # Once the server closed them (dead while idle: the query is not sent),
    # a read finds its pooled connection dead and runs on a new one.
    assert wait_for(lambda: _direct(pg_dsn, GONE, (_name(db),)) == 0, 10)
    after = db.fetchone("SELECT pg_backend_pid()")
    assert after is not None and after not in before
    # A write is not repeated: the caller learns that the connection was lost.
    _settled(db, 2)
    assert _direct(pg_dsn, KILL_ALL, (_name(db),)) == db.stats()["open"]
    with pytest.raises(DatabaseUnavailable) as info:
        db.execute("UPDATE World SET randomNumber = randomNumber WHERE id = 1")
    assert info.value.status == 503 and isinstance(info.value.__cause__, psycopg.Error)
    assert db.fetchone("SELECT 1") == (1,)
    _settled(db, 2)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_a_quick_503() -> None:
    db = Database(f"host=127.0.0.1 port={_closed_port()} user=postgres dbname=x",
                  retry_interval=30)
    with pytest.raises(DatabaseUnavailable) as info:
        db.fetchone("SELECT 1")
    assert info.value.status == 503
    assert "Connection refused" in str(info.value)
    assert "127.0.0.1" not in info.value.message  # what a client is told
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="reconnecting"):
        db.fetchone("SELECT 1")  # no new attempt within retry_interval
    assert time.monotonic() - start < 0.5
    assert db.stats()["open"] == 0


def test_threads_of_one_pool_never_share_a_connection(db: Database) -> None:
    pids: list[int] = []
    barrier = threading.Barrier(4)

    def hold() -> None:
        with db.connection() as conn:
            barrier.wait(10)  # all four hold a connection at once
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            pids.append(row[0])

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(pids)) == 4
    assert _settled(db, 5)["open"] >= 4


@pytest.mark.parametrize("call", ["fetchone", "fetchall", "fetch_many", "execute"])
def test_a_waiting_query_lets_other_threads_run(db: Database, call: str) -> None:
    """While a query waits for PostgreSQL (pg_sleep), the interpreter is not
    held: another thread keeps running Python. A wait inside libpq with the
    GIL held (or, free-threaded, attached) would stop it, or stall every
    thread at the next stop-the-world pause."""
    sleep = "SELECT pg_sleep(%s)::text"
    run = {"fetchone": lambda: db.fetchone(sleep, (0.4,)),
           "fetchall": lambda: db.fetchall(sleep, (0.4,)),
           "fetch_many": lambda: db.fetch_many(sleep, [(0.2,), (0.2,)]),
           "execute": lambda: db.execute(sleep, (0.4,))}[call]
    run()  # prepared, and the pool's connections open, before the count
    ticks: list[float] = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    counter = threading.Thread(target=count)
    started = time.monotonic()
    counter.start()
    try:
        run()
    finally:
        done.set()
        counter.join(5)
    during = [t for t in ticks if started + 0.05 < t < started + 0.35]
    # Every 5 ms, about 60 ticks; a held interpreter gives none or one.
    assert len(during) >= 20, (call, len(during))
