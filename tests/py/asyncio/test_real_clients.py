"""Real asyncio clients on pyparallel.asyncio: redis-py's asyncio client
against a throwaway Redis (tools/redis_server.py) and aiohttp's client
calling a loopback HTTP server, under the standalone ``pyparallel.asyncio.run``
(in-process) and inside async HttpServer handlers on 2 workers
(servers/clients_app.py). Both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pyparallel.asyncio as pa
from helpers import TOOLS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clients_checks import check_clients  # noqa: E402

aredis = pytest.importorskip("redis.asyncio", reason="redis is in tools/requirements-test.txt")
aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is in tools/requirements-test.txt")


def test_redis_standalone(backend: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PX_BACKEND", backend)
    tag = f"standalone-{backend}"

    async def main() -> dict[str, Any]:
        r = aredis.Redis.from_url(redis_url)
        try:
            await r.set(f"{tag}:s", "value")
            got = await r.get(f"{tag}:s")
            incrs = await asyncio.gather(*(r.incr(f"{tag}:n") for _ in range(50)))
            async with r.pipeline(transaction=True) as p:
                p.incrby(f"{tag}:n", 10).get(f"{tag}:n").delete(f"{tag}:s", f"{tag}:n")
                piped = await p.execute()
            received = []
            for i in range(3):  # the subscriber's connection goes back to the pool
                async with r.pubsub() as ps:
                    await ps.subscribe(f"{tag}:ch")
                    # confirmed first: a publish before that could reach nobody
                    while await ps.get_message(timeout=10) is None:
                        pass
                    sent = await r.publish(f"{tag}:ch", f"m{i}")
                    msg = None
                    while msg is None:
                        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=10)
                    received.append((sent, msg["data"]))
                    await ps.unsubscribe(f"{tag}:ch")
            return {"get": got, "incrs": sorted(incrs), "pipeline": piped,
                    "received": received, "loop": type(asyncio.get_running_loop()).__name__}
        finally:
            await r.aclose()

    assert pa.run(main()) == {
        "get": b"value", "incrs": list(range(1, 51)), "pipeline": [60, b"60", 2],
        "received": [(1, b"m0"), (1, b"m1"), (1, b"m2")], "loop": "Loop"}


def test_aiohttp_standalone(backend: str, upstream: str,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PX_BACKEND", backend)

    async def main() -> list[tuple[int, Any]]:
        async with aiohttp.ClientSession(f"http://{upstream}") as session:
            async def one(i: int) -> tuple[int, Any]:
                async with session.get(f"/standalone/{i}") as resp:
                    return resp.status, await resp.json()
            return await asyncio.gather(*(one(i) for i in range(30)))

    assert pa.run(main()) == [(200, {"path": f"/standalone/{i}"}) for i in range(30)]


def test_clients_in_async_http_handlers(spawn, backend: str, redis_url: str,
                                        upstream: str) -> None:
    srv = spawn("clients_app.py", "--workers", "2", backend=backend,
                env={"PX_TEST_REDIS_URL": redis_url, "PX_TEST_UPSTREAM": upstream})
    check_clients(srv.ports["http"], f"httpserver-{backend}")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_throwaway_redis_leaves_nothing_behind(tmp_path: Path) -> None:
    import redis_server  # loaded by the redis_url fixture's module

    server = redis_server.RedisServer()
    url = server.start()
    pid = server.proc.pid if server.proc else 0
    assert redis_server.ping(server.port)
    assert url == f"redis://127.0.0.1:{server.port}/0"
    server.stop()
    assert not server.dir.exists()
    assert _gone(pid)
    assert not redis_server.ping(server.port)

    # A test run killed without its teardown: the server goes with it.
    script = ("import os, sys; sys.path.insert(0, sys.argv[1]); import redis_server\n"
              "s = redis_server.RedisServer(sys.argv[2]); s.start()\n"
              "print(s.proc.pid, s.port, flush=True); os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script, str(TOOLS), str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pid, port = map(int, out.stdout.split())
    deadline = time.monotonic() + 20
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)
    assert not redis_server.ping(port)
