"""Real asyncio clients inside ASGI apps under ``pyparallel serve --interface
asgi --workers 2``: redis-py's asyncio client against a throwaway Redis (get,
set, incr, a pipeline, pub/sub) and an aiohttp ClientSession calling a
loopback HTTP server, from many concurrent requests; in a bare ASGI app and
in FastAPI routes. Each worker loop makes its own clients; the lifespan
shutdown closes them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from asgi_helpers import served_asgi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clients_checks import check_clients  # noqa: E402

pytest.importorskip("redis", reason="redis is in tools/requirements-test.txt")
pytest.importorskip("aiohttp", reason="aiohttp is in tools/requirements-test.txt")


FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()

# Known bug, not found yet: on the free-threaded build with io_uring, about one
# run in two, one request of the ASGI app waits on a Redis (or upstream) reply
# that never reaches its task: redis-py's read times out, the request is a 500.
# Rarely (once in ~10 loaded runs) seen in async HttpServer handlers on the GIL
# build too (test_real_clients.py); never on the standalone loop. See
# docs/asyncio.md, "Real clients".
# A clean-clone CI run then saw it on epoll too, so every backend is marked.
@pytest.mark.parametrize("target", ["clients_asgi:app", "clients_fastapi:app"])
@pytest.mark.parametrize("backend", ["uring", "epoll"])
def test_clients_in_asgi_handlers(backend: str, target: str, redis_url: str,
                                  upstream: str) -> None:
    env = {"PX_TEST_REDIS_URL": redis_url, "PX_TEST_UPSTREAM": upstream}
    with served_asgi(backend, target, "--workers", "2", env=env) as proc:
        check_clients(proc.port, f"{backend}-{target.split(':')[0]}")
