"""A server with no room for one more client is no outage, nor is a
failed background connect."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pyparallel.db import Database, DatabaseUnavailable


def test_too_many_clients_is_no_outage(pg_dsn: str) -> None:
    database = Database(pg_dsn, max_per_worker=4, pool_timeout=1.0)
    held: list[psycopg.Connection[Any]] = []
    try:
        with database.connection() as mine:
            # Fill the server to its limit with connections of our own.
            limit = int(mine.execute("SHOW max_connections").fetchone()[0])
            for _ in range(limit):
                try:
                    held.append(psycopg.connect(pg_dsn, autocommit=True))
                except psycopg.OperationalError:
                    break
            pool = database._pools.current()
            with pytest.raises(DatabaseUnavailable):
                pool.take()  # too many clients: no room, yet not an outage
            assert pool.down_until == 0.0 and not pool.down
        for c in held:
            c.close()
        held.clear()
        assert database.fetchone("SELECT 1") == (1,)
    finally:
        for c in held:
            c.close()
        database.close()


def test_a_failed_spare_connect_marks_nothing_down(pg_dsn: str) -> None:
    database = Database(pg_dsn, max_per_worker=2)
    try:
        pool = database._pools.current()
        conn = pool.take()
        database._pools.connect_kwargs["port"] = 1  # the spare's connect fails
        pool._spare()
        pool.give(conn)
        assert pool.down_until == 0.0 and not pool.down
    finally:
        database.close()
