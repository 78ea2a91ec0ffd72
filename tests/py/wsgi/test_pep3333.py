"""PEP 3333 under ``pyparallel serve``, one edge at a time, on both backends,
each also with the app wrapped in wsgiref.validate (which turns any breach of
the PEP by the server into an AssertionError in the app, hence a 500 and a
traceback that the end of each server's run checks for)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wsgi_helpers import read_reply, served

from helpers import BACKENDS, ServerProcess
from http_helpers import Conn, chunked, request, wait_for

FILE_SIZE = 300_000 + 17


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wsgi") / "data.bin"
    path.write_bytes(bytes(i % 251 for i in range(FILE_SIZE)))
    return path


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static")
    (root / "style.css").write_text("body { color: red }\n")
    return root


@pytest.fixture(scope="module", params=[(b, v) for b in BACKENDS for v in ("app", "validated")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request: pytest.FixtureRequest, data_file: Path, static_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    backend, target = request.param
    log = tmp_path_factory.mktemp("log") / "access.log"
    with served(backend, f"pep_app:{target}", "--root-path", "/mount",
                "--url-scheme-header", "X-Forwarded-Proto", "--static", f"/static={static_dir}",
                "--access-log", str(log), "--workers", "2",
                env={"PEP_APP_FILE": str(data_file)}, allow_tracebacks=True) as proc:
        proc.access_log = log  # type: ignore[attr-defined]
        proc.validated = target == "validated"  # type: ignore[attr-defined]
        yield proc
        # Whatever the tests provoked, the server itself never broke the PEP.
        assert "AssertionError" not in proc.stderr_text()


def get(port: int, target: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes = b"", version: str = "HTTP/1.1"):
    with Conn(port) as c:
        c.send(request(method, target, headers, body, version))
        return read_reply(c, head=method == "HEAD")


def test_environ_has_every_key(server: ServerProcess) -> None:
    r = get(server.port, "/env?a=1&b=%20",
            {"X-Rep": "one", "x-rep": "two", "X_Spoofed": "no", "Content-Type": "text/x"},
            method="POST", body=b"12345")
    assert r.status == 200
    env = json.loads(r.body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/mount" and env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "a=1&b=%20"
    assert env["CONTENT_TYPE"] == "text/x" and env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "test" and env["SERVER_PORT"] == "80"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1" and int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_HOST"] == "test"
    assert env["HTTP_X_REP"] == "one, two"  # repeated headers joined
    assert not any("SPOOFED" in k for k in env)  # names with '_' dropped
    assert env["wsgi.url_scheme"] == "http" and env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["has_input"] and env["has_errors"] and env["has_file_wrapper"]


def test_mount_point_split(server: ServerProcess) -> None:
    inside = json.loads(get(server.port, "/mount/env").body)
    assert (inside["SCRIPT_NAME"], inside["PATH_INFO"]) == ("/mount", "/env")
    # /mountain is not under /mount
    r = get(server.port, "/mountain")
    assert r.status == 404 and r.body == b"not found: /mountain"


def test_path_info_is_decoded_latin1(server: ServerProcess) -> None:
    r = get(server.port, "/caf%C3%A9%2Fx")
    assert r.body == "not found: /café/x".encode()  # the UTF-8 bytes, passed through


def test_url_scheme_from_trusted_header(server: ServerProcess) -> None:
    env = json.loads(get(server.port, "/env", {"X-Forwarded-Proto": "https"}).body)
    assert env["wsgi.url_scheme"] == "https" and env["SERVER_PORT"] == "443"
    env = json.loads(get(server.port, "/env", {"X-Forwarded-Proto": "http"}).body)
    assert env["wsgi.url_scheme"] == "http"


def test_server_port_from_host_and_http10(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(b"GET /env HTTP/1.1\r\nHost: example.org:8443\r\n\r\n")
        env = json.loads(read_reply(c).body)
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org", "8443")
    r = get(server.port, "/env", version="HTTP/1.0")
    assert r.status == 200 and json.loads(r.body)["SERVER_PROTOCOL"] == "HTTP/1.0"


@pytest.mark.parametrize("mode,expected", [
    ("read", "line one\nline two\nlast"),
    ("read3", ["lin", "e one\nline two\nlast", ""]),
    ("readline", ["line one\n", "li", "ne two\n"]),
    ("readlines", ["line one\n", "line two\n", "last"]),
    ("iter", ["line one\n", "line two\n", "last"]),
])
def test_wsgi_input(server: ServerProcess, mode: str, expected: object) -> None:
    body = b"line one\nline two\nlast"
    r = get(server.port, f"/input?{mode}", method="POST", body=body)
    assert r.status == 200 and json.loads(r.body) == expected
    # a chunked body: read as it arrives, to its end
    r = get(server.port, f"/input?{mode}", {"Transfer-Encoding": "chunked"}, method="POST",
            body=chunked(body, [5, 3]))
    assert r.status == 200 and json.loads(r.body) == expected


def test_write_callable(server: ServerProcess) -> None:
    r = get(server.port, "/write")
    assert r.status == 200 and r.body == b"first,second,third"


def test_close_called_on_the_iterable(server: ServerProcess) -> None:
    before = int(get(server.port, "/close-count").body)
    assert get(server.port, "/closing").body == b"abc"
    with Conn(server.port) as c:
        # streamed (no length) and failing after its first chunk: the
        # connection closes, the body never complete
        c.send(request("GET", "/closing-fails"))
        raw = c.read_to_eof()
        assert raw.startswith(b"HTTP/1.1 200") and b"\r\n1\r\na\r\n" in raw  # what was made
        assert not raw.endswith(b"0\r\n\r\n")
    assert wait_for(lambda: int(get(server.port, "/close-count").body) == before + 2, 10)
    assert "iterable-failed-midway" in server.stderr_text()


def test_generator_body(server: ServerProcess) -> None:
    assert get(server.port, "/generator").body == b"0,1,2,3,4,"


def test_exc_info_before_the_head_replaces_it(server: ServerProcess) -> None:
    r = get(server.port, "/exc-info-before")
    assert r.status == 503 and r.body == b"replaced by exc_info"


def test_exc_info_after_the_head_reraises(server: ServerProcess) -> None:
    # The head went with the first chunk: the error ends the connection
    # (the body is never complete) and is logged.
    with Conn(server.port) as c:
        c.send(request("GET", "/exc-info-after"))
        raw = c.read_to_eof()
        assert not raw.endswith(b"0\r\n\r\n") and b"never" not in raw
    assert wait_for(lambda: "head-already-sent" in server.stderr_text(), 5)


def test_start_response_twice_is_an_error(server: ServerProcess) -> None:
    assert get(server.port, "/twice").status == 500


def test_file_wrapper_sends_the_file(server: ServerProcess, data_file: Path) -> None:
    data = data_file.read_bytes()
    r = get(server.port, "/file")
    assert r.status == 200 and r.body == data
    r = get(server.port, "/file?seek=1000")  # from the file's position
    assert r.body == data[1000:]
    r = get(server.port, f"/file?length={FILE_SIZE}")  # the app's length, right
    assert r.body == data
    r = get(server.port, "/file?length=100")
    if server.validated:  # type: ignore[attr-defined]
        # wrapped by the validator: a plain iterable, whose length is wrong
        assert r.status == 500 and r.headers.get("connection") == "close"
    else:  # the file sent: never more than the app's length (PEP 3333)
        assert r.status == 200 and r.body == data[:100]
    r = get(server.port, f"/file?length={FILE_SIZE}", method="HEAD")
    assert r.headers["content-length"] == str(FILE_SIZE) and r.body == b""


def test_file_wrapper_without_descriptor_is_iterated(server: ServerProcess) -> None:
    r = get(server.port, "/bytesio")
    assert r.status == 200 and r.body == b"from a BytesIO " * 1000


def test_head_has_no_body(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        # a response sent whole, then one streamed (write()): no body either way
        c.send(request("HEAD", "/length?5") + request("HEAD", "/write") +
               request("GET", "/write"))
        head = read_reply(c, head=True)
        assert head.status == 200 and head.headers["content-length"] == "5"
        head = read_reply(c, head=True)
        assert head.status == 200 and "content-length" not in head.headers
        assert read_reply(c).body == b"first,second,third"  # framing intact


@pytest.mark.parametrize("length", ["4", "9"])
def test_wrong_content_length_closes(server: ServerProcess, length: str) -> None:
    with Conn(server.port) as c:
        c.send(request("GET", f"/length?{length}"))
        r = read_reply(c)
        assert r.status == 500 and r.headers.get("connection") == "close"
        assert c.read_to_eof() == b""  # nothing after: never a corrupt stream
    assert wait_for(lambda: f"Content-Length is {length} but its body has 5 bytes"
                    in server.stderr_text(), 5)
    assert get(server.port, "/length?5").body == b"12345"


def test_errors_go_to_the_log(server: ServerProcess) -> None:
    assert get(server.port, "/errors").body == b"logged"
    assert wait_for(lambda: "pep-app-error-line" in server.stderr_text()
                    and "pep-app-second-line" in server.stderr_text(), 5)


def test_exception_is_500_with_traceback(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(request("GET", "/raise"))
        r = read_reply(c)
        assert r.status == 500
    assert wait_for(lambda: "LookupError: pep-app-handler-raised" in server.stderr_text(), 5)
    assert get(server.port, "/write").status == 200  # the worker serves on


def test_keep_alive_and_pipelining(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(request("GET", "/write") * 3 + request("GET", "/generator"))
        assert [read_reply(c).body for _ in range(4)] == [b"first,second,third"] * 3 + \
            [b"0,1,2,3,4,"]


def test_app_connection_close_is_honoured(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(request("GET", "/connection-close"))
        r = read_reply(c)
        assert r.body == b"bye" and r.headers.get("connection") == "close"
        assert c.read_to_eof() == b""


def test_static_directory(server: ServerProcess) -> None:
    r = get(server.port, "/static/style.css")
    assert r.status == 200 and r.body == b"body { color: red }\n"
    assert "etag" in r.headers and r.headers["content-type"].startswith("text/css")


def test_access_log(server: ServerProcess) -> None:
    get(server.port, "/write?access-log-probe")
    log: Path = server.access_log  # type: ignore[attr-defined]

    def logged() -> bool:
        return log.exists() and '"GET /write?access-log-probe HTTP/1.1" 200 18' in \
            log.read_text()
    assert wait_for(logged, 10)
    line = next(l for l in log.read_text().splitlines() if "access-log-probe" in l)
    assert line.startswith("127.0.0.1 - - [") and "+0000]" in line


def test_server_keeps_serving(server: ServerProcess) -> None:
    # after every edge case above, the server still answers and is clean
    start = time.monotonic()
    assert get(server.port, "/env").status == 200
    assert time.monotonic() - start < 30
    assert os.path.exists(str(server.access_log))  # type: ignore[attr-defined]
