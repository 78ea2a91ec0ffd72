"""A Starlette app: routes, a path parameter, a form of JSON body, a
streaming response, and a mount (root_path)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("starlette home")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.path_params["name"],
                         "q": request.query_params.get("q"),
                         "url": str(request.url)})


async def echo(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"got": data})


async def chunks(request: Request) -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        for i in range(4):
            yield f"c{i}|"
    return StreamingResponse(gen(), media_type="text/plain")


async def source(request: Request) -> FileResponse:
    return FileResponse(__file__)  # by http.response.pathsend, which the server offers


async def sub(request: Request) -> JSONResponse:
    return JSONResponse({"root_path": request.scope["root_path"],
                         "path": request.scope["path"]})


app = Starlette(routes=[
    Route("/", homepage),
    Route("/users/{name}", user),
    Route("/echo", echo, methods=["POST"]),
    Route("/chunks", chunks),
    Route("/source", source),
    Mount("/sub", routes=[Route("/where", sub)]),
])
