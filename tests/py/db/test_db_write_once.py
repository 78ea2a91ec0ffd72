"""A read whose connection dies after the query was sent is not run again
(it may have written); one found dead while idle is replaced."""

from __future__ import annotations

import select
import uuid

import psycopg
import pytest
from _one_conn import one_connection

from http_helpers import wait_for
from pyparallel.db import Database, DatabaseUnavailable

db = pytest.fixture(one_connection, name="db")


def test_a_write_is_not_repeated_when_the_connection_dies_mid_query(
        db: Database, pg_dsn: str) -> None:
    # nextval is not rolled back: the sequence counts the runs of the query.
    seq = f"s_{uuid.uuid4().hex[:10]}"
    db.execute(f"CREATE SEQUENCE {seq}")
    try:
        pid = db.fetchone("SELECT pg_backend_pid()")[0]
        with pytest.raises(DatabaseUnavailable):
            db.fetchone(f"SELECT nextval('{seq}'), pg_terminate_backend(%s)", (pid,))
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            runs = conn.execute(f"SELECT last_value FROM {seq}").fetchone()
        assert runs == (1,)
        assert db.fetchone("SELECT 1") == (1,)  # and the pool serves on
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SEQUENCE {seq}")


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_a_dead_idle_connection_is_still_replaced(db: Database, pg_dsn: str) -> None:
    pid = db.fetchone("SELECT pg_backend_pid()")[0]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The server closes the socket on its own time: wait until it did.
    conn = db._pools.current().idle[0]
    assert wait_for(lambda: _readable(conn.pgconn.socket), 10)
    assert db.fetchone("SELECT 1") == (1,)
