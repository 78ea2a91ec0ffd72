"""pytest fixtures: throwaway PostgreSQL clusters with TechEmpower's database.

``pg_dsn`` (session): the DSN of one cluster for the whole session, started
the first time a test asks for it (a session whose tests need no database
starts none) and removed at the end. Tests share it: they may change World's
random numbers, never the schema.

``pg_cluster`` (function): a fresh cluster of the test's own, a
``pg_cluster.Cluster`` (tools/pg_cluster.py): ``dsn`` (TCP; ``socket_dsn``
over the Unix socket), ``stop()``, ``start()`` (same port, same data),
``kill()`` (SIGKILL to the server and all its processes, as a crash),
``pid()``, ``running()``; removed at teardown. It starts as a copy of a
template cluster made once per session.

Clusters live in a new directory under the temporary directory (short enough
for the Unix socket, reachable by the account the server runs as when the
tests run as root). Without PostgreSQL installed, tests that ask for a cluster
are skipped, saying so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import load_tool

pg = load_tool("pg_cluster")

# The session's cluster once a test asked for it (None until then).
_session: Any = None


def new_cluster(template: Any = None) -> Any:
    """A started cluster in a new temporary directory (a copy of the stopped
    cluster TEMPLATE when given); the caller destroys it."""
    try:
        pg.find_bindir()
    except pg.ClusterError as e:
        pytest.skip(f"no PostgreSQL to test against: {e}")
    cluster = pg.Cluster(tempfile.mkdtemp(prefix="px-pg-"))
    try:
        cluster.start(template)
    except BaseException:
        cluster.destroy()
        raise
    return cluster


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Any]:
    """A loaded, stopped cluster that pg_cluster copies (quicker than initdb
    and loading the data for each test); made when a test first needs it."""
    template = new_cluster()
    try:
        template.stop()
        yield template
    finally:
        template.destroy()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """The DSN of the session's cluster (TCP on loopback, role benchmarkdbuser)."""
    global _session
    _session = new_cluster()
    try:
        yield str(_session.dsn)
    finally:
        _session.destroy()
        _session = None


@pytest.fixture
def pg_cluster(pg_template: Any) -> Iterator[Any]:
    """A fresh cluster for this test alone, to stop, kill and restart at will."""
    cluster = new_cluster(pg_template)
    try:
        yield cluster
    finally:
        cluster.destroy()
