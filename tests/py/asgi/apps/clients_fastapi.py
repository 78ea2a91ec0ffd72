"""A FastAPI app whose routes use real asyncio clients (clients_common); the
lifespan closes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import clients_common as cc
from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await cc.close_all()


app = FastAPI(lifespan=lifespan)


@app.get("/redis")
async def redis_round(key: str, n: int = 10) -> dict[str, Any]:
    return await cc.redis_round(key, n)


@app.get("/pubsub")
async def pubsub(channel: str) -> dict[str, Any]:
    return await cc.redis_pubsub(channel)


@app.get("/fetch")
async def fetch(path: str) -> dict[str, Any]:
    return await cc.fetch(path)
