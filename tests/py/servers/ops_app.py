"""The application of the production tests (tests/py/ops), served by
``pyparallel serve ops_app:App``, ``ops_app:wsgi_app`` or ``ops_app:asgi_app``.

/pid answers the serving process's pid; /addr it and the client's address
(REMOTE_ADDR, REMOTE_PORT: what the WSGI app, and asgi_app from its scope, answer on
any path); /slow?ms=N answers after N ms. When
the file named by OPS_APP_FAIL exists, importing fails (its content "hang":
the import never ends): a restart that cannot start."""

from __future__ import annotations

import os
import time
from typing import Any

from pyparallel.http import HttpServer, route

_fail = os.environ.get("OPS_APP_FAIL")
if _fail and os.path.exists(_fail):
    with open(_fail) as f:
        how = f.read().strip()
    if how == "hang":
        while True:
            time.sleep(1)
    raise RuntimeError("ops_app: told to fail at import")


class App(HttpServer):
    @route("/pid")
    def pid(self, request: Any) -> bytes:
        return str(os.getpid()).encode()

    @route("/addr")
    def addr(self, request: Any) -> bytes:
        host, port = request.remote_addr
        return f"{os.getpid()} {host} {port}".encode()

    @route("/slow")
    def slow(self, request: Any, ms: str = "100") -> bytes:
        time.sleep(int(ms) / 1000)
        return str(os.getpid()).encode()


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = f"{os.getpid()} {environ.get('REMOTE_ADDR', '')} {environ.get('REMOTE_PORT', '')}"
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]  # startup / shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    host, port = scope.get("client") or ("", "")
    body = f"{os.getpid()} {host} {port}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
