"""The fast path's prepared statements survive psycopg's DEALLOCATE ALL
(sent after a rolled-back transaction and after DEALLOCATE/DROP/ALTER)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from _one_conn import one_connection

from pyparallel.db import Database

db = pytest.fixture(one_connection, name="db")


def test_fast_path_survives_deallocate_all_after_a_rollback(db: Database) -> None:
    assert db.fetchone("SELECT id FROM World WHERE id = %s", (7,)) == (7,)

    def fail(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT id FROM World WHERE id = %s", (8,), prepare=True)
        raise ValueError("roll back")
    with pytest.raises(ValueError):
        db.transaction(fail)  # psycopg then sends DEALLOCATE ALL
    assert db.fetchone("SELECT id FROM World WHERE id = %s", (7,)) == (7,)
    assert db.fetch_many("SELECT id FROM World WHERE id = %s", [(1,), (2,)]) == [(1,), (2,)]


def test_fast_path_survives_a_deallocate_all_statement(db: Database) -> None:
    assert db.fetchone("SELECT id FROM World WHERE id = %s", (7,)) == (7,)
    db.execute("DEALLOCATE ALL")
    assert db.fetchone("SELECT id FROM World WHERE id = %s", (7,)) == (7,)
    db.execute("DEALLOCATE ALL")
    assert db.fetch_many("SELECT id FROM World WHERE id = %s", [(3,)]) == [(3,)]
