"""PostgreSQL killed under load: requests get 503 (never a hang, never a
dropped connection), one clear line says the database is gone, and once it
is back the same server answers 200 again without being touched."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from http_helpers import Conn, request

TARGETS = ("/db", "/queries?queries=5", "/fortunes", "/updates?queries=5")


class Load:
    """Clients sending the database requests back to back on keep-alive
    connections, counting the statuses by phase."""

    def __init__(self, port: int, clients: int = 4) -> None:
        self.port = port
        self.phase = "before"
        self.counts: dict[str, Counter[int]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _client(self, i: int) -> None:
        try:
            with Conn(self.port, timeout=15) as conn:
                n = i
                while not self._stop.is_set():
                    phase = self.phase
                    conn.send(request("GET", TARGETS[n % len(TARGETS)]))
                    status = conn.read_reply().status
                    with self._lock:
                        self.counts.setdefault(phase, Counter())[status] += 1
                    n += 1
        except Exception as e:  # a hang (timeout) or a dropped connection
            self.errors.append(f"client {i}: {type(e).__name__}: {e}")

    def wait_for(self, phase: str, status: int, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.errors:
            with self._lock:
                if self.counts.get(phase, Counter())[status] >= n:
                    return True
            time.sleep(0.02)
        return False


def test_killed_database_gives_503_and_recovers_by_itself(spawn: Any, backend: str,
                                                          pg_cluster: Any) -> None:
    srv = spawn("tfb_db_app.py", "--db", pg_cluster.dsn, "--workers", "2", backend=backend)
    with Load(srv.ports["http"]) as load:
        assert load.wait_for("before", 200, 100, 30), (load.counts, load.errors)
        load.phase = "down"
        pg_cluster.kill()
        assert load.wait_for("down", 503, 50, 30), (load.counts, load.errors)
        load.phase = "back"
        pg_cluster.start()
        assert load.wait_for("back", 200, 100, 30), (load.counts, load.errors)
    assert not load.errors, load.errors
    assert set(load.counts["down"]) <= {200, 500, 503}, load.counts
    assert set(load.counts["back"]) <= {200, 503}, load.counts
    stderr = srv.stderr_text()
    assert "pyparallel.db ERROR: database" in stderr, stderr[-3000:]
    assert "answering 503" in stderr, stderr[-3000:]
    assert "database reachable again" in stderr, stderr[-3000:]
    # One line per outage and worker, not one per request.
    assert stderr.count("pyparallel.db ERROR") <= 2 * 2, stderr[-3000:]
