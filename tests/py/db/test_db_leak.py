"""No connection leaks under load: after 100,000 requests — answers, errors
PostgreSQL raised, hand-offs — the server holds exactly the connections its
pools know of (pg_stat_activity), no more than its bound.

The load comes in rounds of the three targets at a fixed rate (about 40,000
requests a round, ~9 s) until 100,000 have been answered; a machine too busy
to answer them in MAX_ROUNDS fails the test rather than shrinking it."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from http_helpers import Conn, request, wait_for
from pyparallel.loadgen import run as load

WORKERS = 2
MAX_PER_WORKER = 16  # Database's default
PIPELINED_PER_LOOP = 4  # likewise
RATE = 6000
SECONDS = 3.0
REQUESTS = 100_000
MAX_ROUNDS = 8
TARGETS = ("/db", "/queries?queries=3", "/bad", "/abad")


def _backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name = 'px-tfb-test'").fetchone()
        return int(row[0]) if row else 0


def _open(pool: dict[str, int]) -> int:
    """The connections the app knows of: its pools' and its loops' pipelined ones."""
    return pool["open"] + pool["pipelined"]


def _pool(port: int) -> dict[str, int]:
    with Conn(port) as conn:
        conn.send(request("GET", "/pool"))
        reply = conn.read_reply()
    assert reply.status == 200, reply
    return dict(json.loads(reply.body))


@pytest.mark.timeout(240)  # up to MAX_ROUNDS rounds of ~10 s on a busy machine
def test_no_connection_leak_under_load(spawn: Any, backend: str, pg_dsn: str) -> None:
    srv = spawn("tfb_db_app.py", "--db", pg_dsn, "--workers", str(WORKERS), backend=backend)
    srv.allow_tracebacks = True  # /bad's errors are logged with their traceback
    port = srv.ports["http"]
    answered = rounds = 0
    while answered < REQUESTS and rounds < MAX_ROUNDS:
        rounds += 1
        for target in TARGETS:
            rate = RATE if not target.endswith("bad") else RATE // 5
            result = load(f"http://127.0.0.1:{port}{target}", rate=rate, duration=SECONDS,
                          connections=32, timeout=5.0)
            answered += result["responses"]
    assert answered >= REQUESTS, (answered, rounds)
    # Every connection PostgreSQL serves is one the pools know of, and idle.
    assert wait_for(lambda: _backends(pg_dsn) == _open(_pool(port)), 10), \
        (_backends(pg_dsn), _pool(port))
    pool = _pool(port)
    assert 1 <= pool["open"] <= WORKERS * MAX_PER_WORKER + MAX_PER_WORKER, pool
    assert pool["pipelined"] <= WORKERS * PIPELINED_PER_LOOP, pool
    assert pool["idle"] >= pool["open"] - 1, pool  # only /pool's own request is busy
    srv.finish().assert_clean(allow_tracebacks=True)
    assert wait_for(lambda: _backends(pg_dsn) == 0, 10), _backends(pg_dsn)
    print(f"{answered} requests answered in {rounds} rounds; "
          f"{pool['open']} connections open at the end")
