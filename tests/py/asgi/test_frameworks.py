"""Real ASGI applications under ``pyparallel serve``: a FastAPI app (path and
query validation, dependency injection, a background task, lifespan state
shared by every worker, a streaming response, a plain def view) and a
Starlette app (routes, JSON bodies, streaming, a mount, root_path)."""

from __future__ import annotations

import json

import pytest
from asgi_helpers import APPS, read_reply, served_asgi

from http_helpers import Conn, request

pytest.importorskip("fastapi", reason="fastapi is in tools/requirements-test.txt")

BACKENDS = ["uring", "epoll"]


def call(port: int, method: str, path: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    with Conn(port) as c:
        c.send(request(method, path, headers, body))
        r = read_reply(c)
        return r.status, r.headers, r.body


def js(port: int, method: str, path: str, body: object = None,
       headers: dict[str, str] | None = None) -> tuple[int, object]:
    data = b"" if body is None else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    status, _, out = call(port, method, path, data, hdrs)
    return status, json.loads(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fastapi(backend: str) -> None:
    with served_asgi(backend, "fastapi_app:app", "--workers", "2") as proc:
        port = proc.port
        assert js(port, "GET", "/hello") == (200, {"message": "Hello, World!"})
        status, body = js(port, "GET", "/items/5?q=abc&limit=3", headers={"X-User": "ann"})
        assert status == 200
        assert body == {"item_id": 5, "q": "abc", "limit": 3, "prefix": "item", "user": "ann"}
        assert js(port, "GET", "/items/nope")[0] == 422  # path validation
        assert js(port, "GET", "/items/5?q=toolong")[0] == 422  # query validation
        assert js(port, "GET", "/items/5?limit=x")[0] == 422
        assert js(port, "POST", "/items", {"name": "pen", "price": 1.5, "tags": ["a"]}) == (
            200, {"name": "pen", "total": 3.0, "tags": ["a"]})
        assert js(port, "POST", "/items", {"name": "pen"})[0] == 422  # body validation
        assert js(port, "POST", "/notify/bob") == (200, {"queued": "bob"})
        proc.wait_line("BACKGROUND notified bob", 20)
        for _ in range(8):  # whichever worker: the one startup's state
            assert js(port, "GET", "/state") == (
                200, {"greeting": "hello from lifespan", "startups": 1})
        status, headers, body = call(port, "GET", "/stream?n=4")
        assert status == 200 and headers.get("transfer-encoding") == "chunked"
        assert body == b"line 0\nline 1\nline 2\nline 3\n"
        assert js(port, "GET", "/sync") == (200, {"sync": "yes"})
        assert call(port, "GET", "/missing")[0] == 404
        assert len(proc.matching("LIFESPAN STARTUP")) == 1
    assert len(proc.matching("LIFESPAN STARTUP")) == 1  # stopped: all its output is in
    assert len(proc.matching("LIFESPAN SHUTDOWN")) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_starlette(backend: str) -> None:
    with served_asgi(backend, "starlette_app:app") as proc:
        port = proc.port
        assert call(port, "GET", "/")[2] == b"starlette home"
        status, body = js(port, "GET", "/users/bob?q=1", )
        assert (status, body) == (200, {"user": "bob", "q": "1",
                                        "url": "http://test/users/bob?q=1"})
        assert js(port, "POST", "/echo", {"a": [1, 2]}) == (200, {"got": {"a": [1, 2]}})
        status, headers, body = call(port, "GET", "/chunks")
        assert body == b"c0|c1|c2|c3|" and headers.get("transfer-encoding") == "chunked"
        status, headers, body = call(port, "GET", "/source")
        assert status == 200 and body == (APPS / "starlette_app.py").read_bytes()
        assert headers["content-length"] == str(len(body))
        assert js(port, "GET", "/sub/where") == (200, {"root_path": "/sub",
                                                       "path": "/sub/where"})
    with served_asgi(backend, "starlette_app:app", "--root-path", "/api",
                     "--url-scheme-header", "X-Forwarded-Proto") as proc:
        status, body = js(proc.port, "GET", "/api/users/eve",
                          headers={"X-Forwarded-Proto": "https"})
        assert (status, body) == (200, {"user": "eve", "q": None,
                                        "url": "https://test/api/users/eve"})
