"""ASGI HTTP on the engine: the scope, receive() with streamed request bodies,
send() with whole and streamed responses, HEAD, Content-Length kept."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from asgi_helpers import APPS, read_reply, served_asgi

from helpers import child_env
from http_helpers import Conn, request, wait_for

BACKENDS = ["uring", "epoll"]


def get(port: int, path: str, headers: dict[str, str] | None = None,
        method: str = "GET", body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    with Conn(port) as c:
        c.send(request(method, path, headers, body))
        r = read_reply(c, head=method == "HEAD")
        return r.status, r.headers, r.body


@pytest.mark.parametrize("backend", BACKENDS)
def test_scope(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:scope_echo", "--root-path", "/mnt",
                     "--url-scheme-header", "X-Forwarded-Proto") as proc:
        status, _, body = get(proc.port, "/mnt/a%20b/%C3%A9?x=1&y=%20",
                              {"X-Forwarded-Proto": "https", "X-Multi": "one",
                               "x-multi": "two"})
        assert status == 200
        scope = json.loads(body)
        assert scope["type"] == "http"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
        assert scope["http_version"] == "1.1" and scope["method"] == "GET"
        assert scope["scheme"] == "https"
        assert scope["path"] == "/mnt/a b/\u00e9"
        assert scope["raw_path"] == "/mnt/a%20b/%C3%A9"
        assert scope["query_string"] == "x=1&y=%20"
        assert scope["root_path"] == "/mnt"
        headers = scope["headers"]
        assert ["x-multi", "one"] in headers and ["x-multi", "two"] in headers
        assert headers.index(["x-multi", "one"]) < headers.index(["x-multi", "two"])
        assert all(name == name.lower() for name, _ in headers)
        assert scope["client"][0] == "127.0.0.1" and scope["client"][1] > 0
        assert scope["server"] == ["127.0.0.1", proc.port]
        assert scope["state"] == {}
        assert scope["extensions"] == {"http.response.pathsend": {}}  # no trailers offered
        assert scope["loop"] == "WorkerLoop"  # the worker's own loop (pyparallel.asyncio)
        # untrusted without the option; a path a proxy stripped gets the mount point back
        status, _, body = get(proc.port, "/other", {"X-Forwarded-Proto": "ftp"})
        scope = json.loads(body)
        assert scope["scheme"] == "http" and scope["path"] == "/mnt/other"
    with served_asgi(backend, "asgi_apps:scope_echo") as proc:
        _, _, body = get(proc.port, "/p", {"X-Forwarded-Proto": "https"})
        assert json.loads(body)["scheme"] == "http"  # no header trusted by default


def test_without_handoff_a_companion_loop() -> None:
    # nobody would run the worker's loop while a handler waits: a loop of its own
    with served_asgi("epoll", "asgi_apps:scope_echo", "--handoff-ms", "0") as proc:
        status, _, body = get(proc.port, "/x", method="POST", body=b"abc")
        scope = json.loads(body)
        assert status == 200 and scope["body_len"] == 3 and scope["loop"] != "WorkerLoop"


@pytest.mark.parametrize("backend", BACKENDS)
def test_responses(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app") as proc:
        status, headers, body = get(proc.port, "/json")
        assert status == 200 and body == b'{"message":"Hello, World!"}'
        assert headers["content-length"] == str(len(body))  # one message: sent whole
        assert headers["content-type"] == "application/json"
        status, headers, body = get(proc.port, "/file")  # http.response.pathsend
        assert status == 200 and body == (APPS / "asgi_apps.py").read_bytes()
        assert headers["content-type"] == "text/x-python"
        status, headers, body = get(proc.port, "/chunks")
        assert headers.get("transfer-encoding") == "chunked" and body == b"part0;part1;part2;"
        status, headers, body = get(proc.port, "/length")
        assert headers["content-length"] == "10" and body == b"0123456789"
        assert "transfer-encoding" not in headers
        with Conn(proc.port) as c:
            c.send(request("GET", "/headers"))
            r = read_reply(c)
            assert r.status == 201 and r.body == b"made"
            assert r.headers["x-thing"] == "yes"
            c.send(request("GET", "/json"))  # kept alive
            assert read_reply(c).status == 200
        with Conn(proc.port) as c:  # HEAD: the head, with the app's length, no body
            c.send(request("HEAD", "/length"))
            r = read_reply(c, head=True)
            assert r.status == 200 and r.headers["content-length"] == "10"
            c.send(request("GET", "/json"))
            r = read_reply(c)
            assert r.status == 200 and r.body == b'{"message":"Hello, World!"}'
        # a Content-Length the body does not keep: an error and no corrupt response
        status, _, _ = get(proc.port, "/length-short")
        assert status == 500
    assert "Content-Length is 100 but its body has 5 bytes" in proc.finished.stderr  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", BACKENDS)
def test_request_bodies(backend: str) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: more than the body buffer
    with served_asgi(backend, "asgi_apps:app") as proc:
        status, _, body = get(proc.port, "/upload", method="POST", body=big)
        length, most = body.split()
        assert status == 200 and int(length) == len(big)
        assert int(most) <= 64 * 1024  # delivered in bounded messages
        status, _, body = get(proc.port, "/echo", method="POST", body=big)
        assert status == 200 and body == big
        # chunked request body
        with Conn(proc.port) as c:
            c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            r = read_reply(c)
            assert r.status == 200 and r.body.split()[0] == b"11"
        # Expect: 100-continue answered when the app first receives
        with Conn(proc.port) as c:
            c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            assert c.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
            c.send(b"abcd")
            r = read_reply(c)
            assert r.status == 200 and r.body.split()[0] == b"4"


@pytest.mark.parametrize("backend", BACKENDS)
def test_auto_detects_asgi(backend: str) -> None:
    from wsgi_helpers import served
    with served(backend, "asgi_apps:app", app_dir=APPS) as proc:  # no --interface
        assert get(proc.port, "/json")[2] == b'{"message":"Hello, World!"}'


def test_help_lists_asgi() -> None:
    r = subprocess.run([sys.executable, "-m", "pyparallel", "serve", "--help"],
                       capture_output=True, text=True, timeout=60, env=child_env(None))
    assert "asgi" in r.stdout and "--lifespan" in r.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_send_waits_for_a_slow_client(backend: str) -> None:
    total = 128 << 20
    with served_asgi(backend, "asgi_apps:app") as proc:
        s = socket.create_connection(("127.0.0.1", proc.port), timeout=20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.sendall(request("GET", "/big"))
        sent = [-1]

        def settled() -> bool:  # send() stopped taking bytes: it waits
            before = sent[0]
            time.sleep(0.3)
            sent[0] = int(get(proc.port, "/big-sent")[2])
            return sent[0] > 0 and sent[0] == before
        assert wait_for(settled, 30)
        assert sent[0] < 48 << 20, sent[0]  # bounded by the output limit, not the body
        got = 0
        while got < total:  # then the client reads: all of it comes
            data = s.recv(1 << 20)
            assert data, f"closed after {got} bytes"
            got += len(data)
        s.close()
        proc.wait_line("BIG DONE", 30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_readers_hold_no_executor_thread(backend: str) -> None:
    """Twelve clients that do not read a streamed body: the app's sends wait
    on the loop, not in its default executor (six threads here), so another
    request's executor job runs at once."""
    with served_asgi(backend, "asgi_apps:app", "--workers", "1") as proc:
        slow = []
        try:
            for _ in range(12):
                s = socket.create_connection(("127.0.0.1", proc.port), timeout=20)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
                s.sendall(request("GET", "/big"))
                slow.append(s)
            time.sleep(1.0)  # every sender is over the mark by now
            t0 = time.monotonic()
            assert get(proc.port, "/executor")[2] == b"executor ok"
            assert time.monotonic() - t0 < 5
        finally:
            for s in slow:
                s.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_big_upload_in_bounded_memory(backend: str) -> None:
    total = 256 << 20
    block = b"u" * (1 << 20)
    with served_asgi(backend, "asgi_apps:app", "--max-body", str(total)) as proc:
        assert get(proc.port, "/count", method="POST", body=b"warm")[2] == b"4"
        before = proc.rss()
        with Conn(proc.port, timeout=60) as c:
            c.send(f"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n"
                   .encode())
            for _ in range(total // len(block)):
                c.send(block)
            r = read_reply(c)
            assert r.status == 200 and r.body == str(total).encode()
        grown = proc.rss() - before
        assert grown < 64 << 20, f"RSS grew {grown >> 20} MiB for a {total >> 20} MiB body"


@pytest.mark.parametrize("backend", BACKENDS)
def test_static_prefix_before_the_app(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app", "--static", f"/static={APPS}") as proc:
        status, _, body = get(proc.port, "/static/starlette_app.py")
        assert status == 200 and body == (APPS / "starlette_app.py").read_bytes()
        assert get(proc.port, "/json")[2] == b'{"message":"Hello, World!"}'
