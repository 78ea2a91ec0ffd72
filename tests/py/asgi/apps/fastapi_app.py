"""A FastAPI app: path and query validation, dependency injection, a
background task, lifespan state, a streaming response, a WebSocket endpoint."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

STARTUPS = 0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    global STARTUPS
    STARTUPS += 1
    print(f"LIFESPAN STARTUP {STARTUPS} pid={os.getpid()}", flush=True)
    yield {"greeting": "hello from lifespan", "startups": STARTUPS}
    print("LIFESPAN SHUTDOWN", flush=True)


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class Settings:
    def __init__(self) -> None:
        self.prefix = "item"


def get_settings() -> Settings:
    return Settings()


def get_user(request: Request) -> str:
    return request.headers.get("x-user", "anonymous")


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, settings: Annotated[Settings, Depends(get_settings)],
                    user: Annotated[str, Depends(get_user)],
                    q: Annotated[str | None, Query(max_length=5)] = None,
                    limit: int = 10) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "limit": limit, "prefix": settings.prefix, "user": user}


@app.post("/items")
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name, "total": item.price * 2, "tags": item.tags}


def record(message: str) -> None:
    print(f"BACKGROUND {message}", flush=True)


@app.post("/notify/{who}")
async def notify(who: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(record, f"notified {who}")
    return {"queued": who}


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {"greeting": request.state.greeting, "startups": request.state.startups}


@app.get("/stream")
async def stream(n: int = 3) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"line {i}\n".encode()
            await asyncio.sleep(0.01)
    return StreamingResponse(numbers(), media_type="text/plain")


@app.get("/sync")
def sync_view() -> dict[str, str]:  # a plain def: FastAPI runs it in its thread pool
    return {"sync": "yes"}


@app.websocket("/ws/{room}")
async def room_socket(websocket: WebSocket, room: str,
                      settings: Annotated[Settings, Depends(get_settings)],
                      token: str | None = None) -> None:
    """JSON in, JSON out; no token: refused before the handshake (403)."""
    if token is None:
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="json.v1" if "json.v1" in offered else None)
    await websocket.send_json({"room": room, "prefix": settings.prefix,
                               "greeting": websocket.state.greeting})
    try:
        while True:
            data = await websocket.receive_json()
            if data.get("bye"):
                await websocket.close(code=4000, reason="bye")
                return
            await websocket.send_json({"room": room, "echo": data})
    except WebSocketDisconnect as e:
        print(f"FASTAPI WS DISCONNECT {room} {e.code}", flush=True)
