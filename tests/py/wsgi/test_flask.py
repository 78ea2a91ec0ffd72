"""A Flask application under ``pyparallel serve`` with real HTTP clients, on
both backends: routes, JSON, a multipart upload, a streamed response,
send_file, an error handler and a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from wsgi_helpers import APPS, served

from helpers import ServerProcess
from http_helpers import wait_for

pytest.importorskip("flask", reason="Flask comes from tools/requirements-test.txt")


@pytest.fixture(scope="module", params=["uring", "epoll"])
def flask_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with served(request.param, "flask_app:app", "--workers", "2",
                allow_tracebacks=True) as proc:
        yield proc


def fetch(port: int, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
          method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_routes_and_json(flask_server: ServerProcess) -> None:
    status, headers, body = fetch(flask_server.port, "/")
    assert status == 200 and body == b"<h1>hello from flask</h1>"
    assert headers["content-type"].startswith("text/html")
    status, headers, body = fetch(flask_server.port, "/json")
    assert status == 200 and json.loads(body) == {"message": "Hello, World!", "n": [1, 2, 3]}
    status, _, body = fetch(flask_server.port, "/items/42?q=x%20y")
    assert json.loads(body) == {"id": 42, "q": "x y"}
    status, _, body = fetch(flask_server.port, "/items/7", data=b'{"a": 1}',
                            headers={"Content-Type": "application/json"}, method="PUT")
    assert status == 200 and json.loads(body) == {"id": 7, "got": {"a": 1}}


def test_form_with_file_upload(flask_server: ServerProcess) -> None:
    boundary = uuid.uuid4().hex
    payload = bytes(range(256)) * 400
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nreport\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"document\"; "
            f"filename=\"r.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    body += payload + f"\r\n--{boundary}--\r\n".encode()
    status, _, out = fetch(flask_server.port, "/upload", data=body,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200
    assert json.loads(out) == {"name": "report", "filename": "r.bin", "size": len(payload),
                               "head": bytes(range(8)).decode("latin-1")}


def test_streamed_response(flask_server: ServerProcess) -> None:
    status, _, body = fetch(flask_server.port, "/stream")
    assert status == 200 and body == b"".join(b"part %d\n" % i for i in range(5))


def test_send_file(flask_server: ServerProcess) -> None:
    expected = (APPS / "pep_app.py").read_bytes()
    status, headers, body = fetch(flask_server.port, "/file")
    assert status == 200 and body == expected
    assert headers["content-type"].startswith("text/x-python")
    # conditional GET and ranges, as werkzeug answers them
    status, _, _ = fetch(flask_server.port, "/file", headers={"If-None-Match": headers["etag"]})
    assert status == 304
    status, _, body = fetch(flask_server.port, "/file", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == expected[10:20]


def test_error_handlers_and_500(flask_server: ServerProcess) -> None:
    status, _, body = fetch(flask_server.port, "/teapot")
    assert status == 418 and json.loads(body) == {"error": "teapot"}
    status, _, body = fetch(flask_server.port, "/nowhere")
    assert status == 404 and json.loads(body) == {"error": "no such page"}
    status, _, _ = fetch(flask_server.port, "/boom")
    assert status == 500
    # Flask logs it to wsgi.errors, which goes to the server's log
    assert wait_for(lambda: "ZeroDivisionError: flask-view-exploded"
                    in flask_server.stderr_text(), 10)
