"""A Database whose worker pools hold one connection each, so every call of
a test meets the same connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from pyparallel.db import Database


def one_connection(pg_dsn: str) -> Iterator[Database]:
    """Use as ``db = pytest.fixture(one_connection, name="db")``."""
    database = Database(pg_dsn, max_per_worker=1,
                        application_name=f"px-test-{uuid.uuid4().hex[:12]}")
    try:
        yield database
    finally:
        database.close()


def fast_names(db: Database) -> dict[Any, Any]:
    """The statements the fast path prepared on the pool's idle connection."""
    conn = db._pools.current().idle[0]
    st = getattr(conn, "_px_fast", None)
    return {} if st is None else dict(st.names)
