"""The fast path's per-connection statement table stays bounded."""

from __future__ import annotations

import pytest
from _one_conn import fast_names, one_connection

from pyparallel.db import Database

db = pytest.fixture(one_connection, name="db")


def test_statement_table_is_bounded(db: Database) -> None:
    for i in range(300):
        assert db.fetchone(f"SELECT {i} + %s", (1,)) == (i + 1,)
    assert 0 < len(fast_names(db)) <= 100
    prepared = db.fetchone("SELECT count(*) FROM pg_prepared_statements "
                           "WHERE name LIKE '\\_px\\_%%'")
    assert prepared is not None and prepared[0] <= 100
