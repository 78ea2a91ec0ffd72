"""Edges of the WSGI response path on both backends: HEAD and 304 with the
app's Content-Length and no body, a streamed head refused by the engine, a
file wrapper over a file partly read through Python's buffer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from wsgi_helpers import read_reply, served

from helpers import BACKENDS, ServerProcess
from http_helpers import Conn, request

FILE_SIZE = 200_000 + 3


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wsgi-edges") / "data.bin"
    path.write_bytes(bytes(i % 251 for i in range(FILE_SIZE)))
    return path


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, data_file: Path) -> Iterator[ServerProcess]:
    with served(request.param, "fix_app:app", "--workers", "2",
                env={"FIX_APP_FILE": str(data_file)}, allow_tracebacks=True) as proc:
        yield proc


def test_head_with_the_apps_length_and_no_body(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(request("HEAD", "/head-length?1234") + request("GET", "/head-length?3"))
        head = read_reply(c, head=True)
        assert head.status == 200 and head.headers["content-length"] == "1234"
        assert head.headers.get("connection") != "close"
        assert read_reply(c).body == b"xxx"  # kept alive, framing intact


def test_not_modified_with_the_apps_length(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(request("GET", "/not-modified?1234") + request("GET", "/head-length?3"))
        r = read_reply(c)
        assert r.status == 304 and r.headers["etag"] == '"v1"' and r.body == b""
        assert read_reply(c).body == b"xxx"


def test_refused_streamed_head_gets_500(server: ServerProcess) -> None:
    with Conn(server.port, timeout=20) as c:
        c.send(request("GET", "/long-type-streamed"))
        r = read_reply(c)  # an answer, not a wait for one that never comes
        assert r.status == 500


def test_file_wrapper_sends_from_the_python_position(server: ServerProcess,
                                                     data_file: Path) -> None:
    data = data_file.read_bytes()
    with Conn(server.port) as c:
        # read(10) through the buffer left the descriptor's offset further on
        c.send(request("GET", "/file-read?10"))
        r = read_reply(c)
        assert r.status == 200 and r.body == data[10:]
        # the app's Content-Length, shorter than the file: only that much
        c.send(request("GET", "/file-read?10,100"))
        r = read_reply(c)
        assert r.status == 200 and r.body == data[10:110]
