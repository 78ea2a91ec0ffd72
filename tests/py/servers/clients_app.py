"""Async HttpServer handlers that use real asyncio clients (the client
suites' shared helpers, tests/py/asgi/apps/clients_common.py): redis-py's
asyncio client against PX_TEST_REDIS_URL and an aiohttp session calling
PX_TEST_UPSTREAM.

    python clients_app.py [--workers K]

Port http: /redis?key=K&n=N, /pubsub?channel=C, /fetch?path=P (JSON).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from _common import int_arg, serve

from pyparallel.http import HttpServer, route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "asgi" / "apps"))
import clients_common as cc  # noqa: E402


class App(HttpServer):
    @route("/redis")
    async def redis_round(self, request: Any) -> dict[str, Any]:
        return await cc.redis_round(request.args["key"], int(request.args.get("n", "10")))

    @route("/pubsub")
    async def pubsub(self, request: Any) -> dict[str, Any]:
        return await cc.redis_pubsub(request.args["channel"])

    @route("/fetch")
    async def fetch(self, request: Any) -> dict[str, Any]:
        return await cc.fetch(request.args["path"])


if __name__ == "__main__":
    try:
        serve("clients", {"http": App}, workers=int_arg("--workers", 2))
    finally:
        asyncio.run(cc.close_all())
