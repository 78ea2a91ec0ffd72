"""ASGI edge cases: a client gone during a streamed response or body (the app
sees http.disconnect, nothing left behind), an app that never answers, an
exception before and after http.response.start, lifespan failures."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import pytest
from asgi_helpers import APPS, read_reply, served_asgi

from helpers import child_env
from http_helpers import Conn, request, wait_for

BACKENDS = ["uring", "epoll"]


def get(port: int, path: str) -> tuple[int, bytes]:
    with Conn(port) as c:
        c.send(request("GET", path))
        r = read_reply(c)
        return r.status, r.body


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyparallel", "serve", *args, "--port", "0",
                           "--app-dir", str(APPS)],
                          capture_output=True, text=True, timeout=60, env=child_env(None))


@pytest.mark.parametrize("backend", BACKENDS)
def test_disconnect_during_streamed_response(backend: str) -> None:
    rounds = 5
    with served_asgi(backend, "asgi_apps:app") as proc:
        for i in range(rounds):
            s = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
            s.sendall(request("GET", "/stream"))
            got = b""
            while got.count(b"\n") < 20:  # head and some of the body
                got += s.recv(65536)
            assert got.startswith(b"HTTP/1.1 200")
            if i % 2:  # a reset as well as a close
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            proc.wait_line("STREAM DISCONNECT SEEN", 20, start=0)
        assert wait_for(lambda: len(proc.matching("STREAM DISCONNECT SEEN")) == rounds, 20)
        assert get(proc.port, "/inflight") == (200, b"0")  # every stream's app is over
    assert proc.finished is not None
    assert not proc.matching("STREAM NOT STOPPED")


@pytest.mark.parametrize("backend", BACKENDS)
def test_disconnect_during_request_body(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app") as proc:
        s = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                  + b"x" * 5000)
        time.sleep(0.2)
        s.close()
        proc.wait_line("UPLOAD DISCONNECT", 20)
        assert get(proc.port, "/json")[0] == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_disconnect_before_response_start(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app") as proc:
        s = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        s.sendall(request("GET", "/long-poll"))
        time.sleep(0.3)
        s.close()
        proc.wait_line("LONG POLL http.disconnect", 20)
        assert get(proc.port, "/json")[0] == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_app_that_never_answers(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app", "--timeout-response", "1") as proc:
        t0 = time.monotonic()
        status, _ = get(proc.port, "/never")
        assert status == 500
        assert time.monotonic() - t0 < 10
        assert get(proc.port, "/json")[0] == 200  # the server goes on
    assert proc.finished is not None
    assert "GET /never sent no response in 1 s: 500" in proc.finished.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_exception_before_response_start(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app", allow_tracebacks=True) as proc:
        assert get(proc.port, "/raise-before")[0] == 500
        assert get(proc.port, "/no-response")[0] == 500
        assert get(proc.port, "/json")[0] == 200
    assert proc.finished is not None
    err = proc.finished.stderr
    assert "Exception in ASGI application (GET /raise-before): 500" in err
    assert "Traceback" in err and "ValueError: raised-before-start" in err
    assert "GET /no-response returned without starting a response: 500" in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_exception_after_response_start(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app", allow_tracebacks=True) as proc:
        with Conn(proc.port) as c:
            c.send(request("GET", "/raise-after"))
            head = c.read_reply(head=True)
            assert head.status == 200
            assert head.headers.get("transfer-encoding") == "chunked"
            rest = c.read_to_eof()  # closed, without the last chunk
            assert b"partial" in rest and not rest.endswith(b"0\r\n\r\n")
        assert get(proc.port, "/json")[0] == 200
    assert proc.finished is not None
    err = proc.finished.stderr
    assert "(GET /raise-after) after the response started: connection closed" in err
    assert "ValueError: raised-after-start" in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_work_and_exceptions_after_a_whole_response(backend: str) -> None:
    # A whole response sent in the app's first step is answered from the
    # handler's own thread at once; what the app does afterwards runs on.
    with served_asgi(backend, "asgi_apps:app", allow_tracebacks=True) as proc:
        t0 = time.monotonic()
        assert get(proc.port, "/work-after-whole") == (200, b"answered")
        assert time.monotonic() - t0 < 0.4  # not held for the app's 0.5 s sleep
        proc.wait_line("WORK AFTER WHOLE done", 20)
        assert get(proc.port, "/raise-after-whole") == (200, b"whole")
        assert get(proc.port, "/json")[0] == 200
    assert proc.finished is not None
    err = proc.finished.stderr
    assert "(GET /raise-after-whole) after the response started" in err
    assert "ValueError: raised-after-whole" in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_responses_from_later_steps_under_load(backend: str) -> None:
    # The step after the app's first runs on whichever thread pumps the loop:
    # its whole response reaches the handler by the queue.
    with served_asgi(backend, "asgi_apps:app") as proc:
        def client(_: int) -> list[tuple[int, bytes]]:
            out = []
            with Conn(proc.port) as c:
                for path in ("/after-yield", "/json") * 25:
                    c.send(request("GET", path))
                    r = read_reply(c)
                    out.append((r.status, r.body if path == "/after-yield" else b""))
            return out
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            replies = [r for rs in pool.map(client, range(32)) for r in rs]
    assert len(replies) == 32 * 50
    assert set(replies) == {(200, b"yielded"), (200, b"")}


@pytest.mark.parametrize("handler_thread", [True, False])
def test_a_whole_response_is_kept_only_for_the_handler_in_its_first_step(
        handler_thread: bool) -> None:
    # In-process, no engine: a pump on another thread may run a later step
    # while the handler is still in handle(), past its look at the kept
    # response; that step's response must be queued, or the handler would
    # wait for it until its timeout.
    import asyncio
    import threading

    from pyparallel.asgi import _cycle

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"whole"})

    loop = asyncio.new_event_loop()
    try:
        settings = _cycle.Settings(app)
        scope = {"method": "GET", "path": "/", "type": "http"}
        cycle = _cycle._Cycle(settings, None, scope, False, loop)
        me = threading.get_ident()
        cycle.inline = me if handler_thread else me + 1  # the handler: this thread, or another
        with pytest.raises(StopIteration):
            cycle.run().send(None)
        queued = []
        while not cycle.cmds.empty():
            queued.append(cycle.cmds.get_nowait())
    finally:
        loop.close()
    if handler_thread:
        assert cycle.inline_body == b"whole" and queued == []
    else:
        assert cycle.inline_body is None
        assert queued == [(_cycle._RESPOND, b"whole"), (_cycle._DONE, None)]


def test_lifespan_failure_stops_startup() -> None:
    r = run_cli("asgi_apps:lifespan_fails")
    assert r.returncode == 3, r.stderr
    assert "lifespan startup failed: database-unreachable; not starting" in r.stderr
    assert "listening" not in r.stdout
    r = run_cli("asgi_apps:lifespan_raises", "--lifespan", "on")
    assert r.returncode == 3, r.stderr
    assert "startup-exploded" in r.stderr and "listening" not in r.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_app_without_lifespan(backend: str) -> None:
    # raising on the lifespan scope (auto): served without it
    with served_asgi(backend, "asgi_apps:lifespan_raises") as proc:
        assert get(proc.port, "/") == (200, b"served")
    with served_asgi(backend, "asgi_apps:lifespan_fails", "--lifespan", "off") as proc:
        assert get(proc.port, "/") == (200, b"should not serve")


@pytest.mark.parametrize("backend", BACKENDS)
def test_streamed_body_past_its_length(backend: str) -> None:
    with served_asgi(backend, "asgi_apps:app", allow_tracebacks=True) as proc:
        with Conn(proc.port) as c:
            c.send(request("GET", "/length-long"))
            head = c.read_reply(head=True)
            assert head.status == 200 and head.headers["content-length"] == "6"
            assert len(c.read_to_eof()) < 6  # closed short: never a corrupt response
        proc.wait_line("LENGTH REFUSED", 20)
        assert get(proc.port, "/json")[0] == 200


# tools/sanitize preloads ASan, whose quarantine holds freed memory back:
# there RSS grows by what the sanitizer keeps (10 MiB here), not by a leak.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


@pytest.mark.skipif(UNDER_ASAN, reason="ASan's quarantine keeps freed memory: RSS measures it")
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_leak_over_many_requests(backend: str) -> None:
    def burst(n: int) -> None:
        with Conn(proc.port) as c:
            for i in range(n):
                path = ("/json", "/chunks", "/raise-before", "/length")[i % 4]
                c.send(request("GET", path))
                r = read_reply(c)
                assert r.status in (200, 500)
    with served_asgi(backend, "asgi_apps:app", allow_tracebacks=True) as proc:
        burst(400)  # warm: caches, arenas, the loop's structures
        before = proc.rss()
        burst(3000)  # a cycle kept per request (~3 KiB with its scope) would show
        grown = proc.rss() - before
        assert grown < 8 << 20, f"RSS grew {grown >> 10} KiB over 3,000 requests"
        assert get(proc.port, "/inflight") == (200, b"0")
