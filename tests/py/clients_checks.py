"""What the client suites ask of a server whose handlers use real asyncio
clients (tests/py/asgi/apps/clients_common.py): many concurrent requests,
each checked for its own results."""

from __future__ import annotations

import concurrent.futures
import json
from typing import Any

from http_helpers import Conn, request

# Concurrent requests at once, and how many in all: enough for every worker
# to have several waiting on its loop at a time.
CONCURRENCY = 8
REQUESTS = 24


def get_json(port: int, path: str) -> tuple[int, Any]:
    with Conn(port, timeout=60) as c:
        c.send(request("GET", path))
        reply = c.read_reply(head=True)
        body = c.read_exact(int(reply.headers["content-length"]))
        return reply.status, json.loads(body) if reply.status == 200 else body


def check_clients(port: int, tag: str) -> None:
    """redis (SET/GET, INCRs, a MULTI/EXEC pipeline; then pub/sub) and an
    aiohttp GET, each from REQUESTS requests CONCURRENCY at a time."""
    def expect(path: str, want: Any) -> None:
        got = get_json(port, path)
        assert got == (200, want), f"GET {path}: {got!r}, expected {(200, want)!r}"

    def redis_one(i: int) -> None:
        expect(f"/redis?key={tag}-k{i}&n=5", {"get": f"{tag}-k{i}", "incrs": [1, 2, 3, 4, 5],
                                               "pipeline": [105, 105, 2]})

    def pubsub_one(i: int) -> None:
        expect(f"/pubsub?channel={tag}-c{i}", {"receivers": 1, "channel": f"{tag}-c{i}",
                                                "data": f"hello {tag}-c{i}"})

    def fetch_one(i: int) -> None:
        expect(f"/fetch?path=/{tag}/{i}", {"status": 200, "json": {"path": f"/{tag}/{i}"}})

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        for one in (redis_one, pubsub_one, fetch_one):
            for f in [pool.submit(one, i) for i in range(REQUESTS)]:
                f.result()
