"""Real asyncio clients for the apps of the client suites (test_clients.py):
redis-py's asyncio client against the tests' throwaway Redis
(PX_TEST_REDIS_URL) and an aiohttp ClientSession calling a loopback HTTP
server (PX_TEST_UPSTREAM, host:port).

A client's connections belong to the loop that made them: each worker loop
gets its own client, made lazily on its first request (never at startup,
whose loop is not the workers'). ``close_all()`` closes them on the loops
that own them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import aiohttp
import redis.asyncio as aredis

_lock = threading.Lock()
_redis: dict[asyncio.AbstractEventLoop, aredis.Redis] = {}
_http: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}


def redis_client() -> aredis.Redis:
    loop = asyncio.get_running_loop()
    with _lock:
        client = _redis.get(loop)
        if client is None:
            # Requests beyond the pool's connections wait for one (no error).
            pool = aredis.BlockingConnectionPool.from_url(os.environ["PX_TEST_REDIS_URL"],
                                                          max_connections=32, timeout=30)
            client = _redis[loop] = aredis.Redis(connection_pool=pool)
        return client


def http_session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    with _lock:
        session = _http.get(loop)
        if session is None:
            session = _http[loop] = aiohttp.ClientSession(
                base_url=f"http://{os.environ['PX_TEST_UPSTREAM']}")
        return session


async def redis_round(key: str, n: int) -> dict[str, Any]:
    """SET/GET, n concurrent INCRs, a MULTI/EXEC pipeline, on key's names."""
    r = redis_client()
    await r.set(f"{key}:s", key)
    got = await r.get(f"{key}:s")
    incrs = await asyncio.gather(*(r.incr(f"{key}:n") for _ in range(n)))
    async with r.pipeline(transaction=True) as p:
        p.incrby(f"{key}:n", 100).get(f"{key}:n").delete(f"{key}:s", f"{key}:n")
        piped = await p.execute()
    return {"get": got.decode(), "incrs": sorted(incrs), "pipeline": [piped[0], int(piped[1]),
                                                                      piped[2]]}


async def redis_pubsub(channel: str) -> dict[str, Any]:
    """Subscribe, publish to the channel, receive it back, unsubscribe."""
    r = redis_client()
    async with r.pubsub() as ps:
        await ps.subscribe(channel)
        # Redis confirms the subscription (subscribe() only sends it): a
        # publish on another connection before that could reach nobody.
        while await ps.get_message(timeout=5.0) is None:
            pass
        receivers = await r.publish(channel, f"hello {channel}")
        msg = None
        while msg is None:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=5.0)
        await ps.unsubscribe(channel)
    return {"receivers": receivers, "channel": msg["channel"].decode(),
            "data": msg["data"].decode()}


async def fetch(path: str) -> dict[str, Any]:
    """GET path from the upstream server with the worker's session."""
    async with http_session().get(path) as resp:
        return {"status": resp.status, "json": await resp.json()}


async def close_all() -> None:
    """Close every loop's clients, each on its own loop."""
    with _lock:
        owned = [(loop, c.aclose()) for loop, c in _redis.items()]
        owned += [(loop, s.close()) for loop, s in _http.items()]
        _redis.clear()
        _http.clear()
    here = asyncio.get_running_loop()
    for loop, coro in owned:
        if loop is here:
            await coro
        elif loop.is_closed():
            # The server stopped that worker (its connections are closed): only
            # the client objects are left to mark closed, here.
            await coro
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
