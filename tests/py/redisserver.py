"""pytest fixture: a throwaway Redis (tools/redis_server.py).

``redis_url`` (session): redis://127.0.0.1:PORT/0 of one server for the whole
session, started the first time a test asks for it (a session whose tests
need no Redis starts none) and stopped at the end, its directory removed. No
persistence: nothing is written to disk. Tests share it: each uses keys and
channels of its own. Without redis-server installed, tests that ask for it
are skipped, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers import load_tool

rs = load_tool("redis_server")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the session's Redis (TCP on loopback, database 0)."""
    try:
        server = rs.RedisServer()
    except rs.RedisError as e:
        pytest.skip(f"no Redis to test against: {e}")
    try:
        yield server.start()
    finally:
        server.stop()
