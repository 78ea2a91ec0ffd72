"""TechEmpower /json and /plaintext as a FastAPI app, for every ASGI server.

    pyparallel serve fastapi_hello:app --app-dir bench/peers
"""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/json")
async def json_view() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/plaintext", response_class=PlainTextResponse)
async def plaintext() -> str:
    return "Hello, World!"
