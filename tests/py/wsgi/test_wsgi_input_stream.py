"""wsgi.input reads the request body as it arrives, on both backends: a
large upload with flat memory, and Expect: 100-continue answered only when
the app reads."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator

import pytest
from wsgi_helpers import read_reply, served

from helpers import BACKENDS, ServerProcess
from http_helpers import Conn, request

MIB = 1 << 20
UPLOAD = 1024 * MIB  # the 1 GB upload


@pytest.fixture(scope="module", params=[(b, v) for b in BACKENDS for v in ("app", "validated")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    backend, app = request.param  # also wrapped in wsgiref.validate
    with served(backend, f"upload_app:{app}", "--workers", "2",
                "--max-body", str(4 << 30)) as proc:
        yield proc


def test_large_upload_flat_memory(server: ServerProcess) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.md5()
    for _ in range(0, UPLOAD, 65536):
        digest.update(block[:16])  # what the app hashes: 16 bytes of each 64 KiB read
    rss0 = server.rss()
    peak = [rss0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], server.rss())
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
            s.sendall(request("POST", "/count", {"Content-Length": str(UPLOAD),
                                                 "Connection": "close"}))
            for _ in range(UPLOAD // MIB):
                s.sendall(block)
            reply = s.makefile("rb").read()
    finally:
        stop.set()
        watcher.join()
    assert reply.startswith(b"HTTP/1.1 200")
    total, _, hexdigest = reply.split(b"\r\n\r\n", 1)[1].partition(b" ")
    assert int(total) == UPLOAD
    assert hexdigest.decode() == digest.hexdigest()  # the bytes the app read, in order
    grown = peak[0] - rss0
    assert grown < 64 * MIB, f"RSS grew {grown / MIB:.0f} MiB for a {UPLOAD // MIB} MiB upload"


def test_chunked_upload(server: ServerProcess) -> None:
    body = b"x" * 300_000
    chunked = b"".join(b"%x\r\n" % len(body[i:i + 7000]) + body[i:i + 7000] + b"\r\n"
                       for i in range(0, len(body), 7000)) + b"0\r\n\r\n"
    with Conn(server.port) as c:
        c.send(request("POST", "/count", {"Transfer-Encoding": "chunked"}, chunked))
        assert read_reply(c).body.startswith(b"300000 ")


def test_100_continue_only_when_the_app_reads(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(request("POST", "/count", {"Content-Length": "5", "Expect": "100-continue"}))
        assert c.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(b"hello")
        assert read_reply(c).body.startswith(b"5 ")
    for path in ("/no-read", "/no-read-streamed"):
        with Conn(server.port) as c:
            c.send(request("POST", path, {"Content-Length": "5", "Expect": "100-continue"}))
            r = read_reply(c)  # the answer, never a 100 first
            assert r.status == 403 and r.body == b"not reading that", path
