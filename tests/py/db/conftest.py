"""Fixtures of the database suites: a real PostgreSQL with TechEmpower's
tables (``pg_dsn``, one per session, started on first use) and a cluster a
test may kill and restart (``pg_cluster``, one per test)."""

from __future__ import annotations

from collections.abc import Iterator

import _throwaway_pg
import pytest


def _need_postgres() -> None:
    pytest.importorskip("psycopg", reason="psycopg (tools/requirements-test.txt) not installed")
    if not _throwaway_pg.available():
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """The DSN of a throwaway PostgreSQL holding TechEmpower's World and Fortune."""
    _need_postgres()
    cluster = _throwaway_pg.Cluster()
    try:
        yield cluster.dsn
    finally:
        cluster.destroy()


@pytest.fixture
def pg_cluster() -> Iterator[_throwaway_pg.Cluster]:
    """A PostgreSQL of this test's own, which it may kill() and start() again."""
    _need_postgres()
    cluster = _throwaway_pg.Cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()
