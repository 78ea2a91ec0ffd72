"""Fixtures of the database suites."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pyparallel.db import Database


@pytest.fixture
def db(pg_dsn: str) -> Iterator[Database]:
    """A Database on the session's cluster whose connections carry a name of
    their own (application_name), closed after the test."""
    database = Database(pg_dsn, application_name=f"px-test-{uuid.uuid4().hex[:12]}")
    try:
        yield database
    finally:
        database.close()
