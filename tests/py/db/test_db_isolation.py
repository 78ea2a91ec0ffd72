"""A query that takes a second (``pg_sleep(1)``) does not hold up the other
requests of its worker: 200 concurrent /db requests on the same (single)
worker finish within 50 ms (p99) of what they take without it."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from _burst import Answer, burst, percentile

from http_helpers import wait_for

N = 200
ALLOWED_DELAY = 0.050


def _p99(answers: list[Answer]) -> float:
    assert [a.status for a in answers] == [200] * len(answers), answers[:3]
    return percentile([a.latency for a in answers], 99)


def _sleeping(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'").fetchone()
        return bool(row and row[0])


def test_a_sleeping_query_does_not_delay_its_workers_other_requests(
        spawn: Any, backend: str, pg_dsn: str) -> None:
    srv = spawn("tfb_db_app.py", "--db", pg_dsn, "--workers", "1", backend=backend)
    port = srv.ports["http"]
    burst(port, "/db", N)  # warm: the worker's connections open, statements prepared
    baseline = sorted(_p99(burst(port, "/db", N)) for _ in range(3))[1]

    slow: list[Answer] = []
    sleeper = threading.Thread(target=lambda: slow.extend(burst(port, "/sleep?seconds=1", 1)))
    started = time.monotonic()
    sleeper.start()
    try:
        assert wait_for(lambda: _sleeping(pg_dsn), 10), "pg_sleep never started"
        during = burst(port, "/db", N)
        overlapped = sleeper.is_alive()
    finally:
        sleeper.join(30)
    assert slow and slow[0].status == 200 and slow[0].body == b'{"slept":1.0}', slow
    assert time.monotonic() - started >= 1.0
    assert overlapped, "the /db burst finished after the sleeping query: nothing was tested"
    p99 = _p99(during)
    assert p99 <= baseline + ALLOWED_DELAY, (
        f"p99 {p99 * 1e3:.1f} ms with pg_sleep(1) running, {baseline * 1e3:.1f} ms without")
