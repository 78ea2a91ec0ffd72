"""An ASGI app that awaits before it answers holds no thread meanwhile: its
request's handler defers the response and returns, and the worker's loop
answers when the app sends (a whole body, a streamed one, or nothing: 500).
Before, each awaiting request held a thread until its response started."""

from __future__ import annotations

import socket
import time

import pytest
from asgi_helpers import read_reply, served_asgi

from helpers import BACKENDS, all_at_once
from http_helpers import Conn, request

N = 300


def _get(port: int, path: str) -> tuple[int, bytes]:
    with Conn(port, timeout=30) as c:
        c.send(request("GET", path))
        reply = read_reply(c)
        return reply.status, reply.body


@pytest.mark.parametrize("backend", BACKENDS)
def test_awaiting_apps_hold_no_thread(backend: str) -> None:
    with served_asgi(backend, "asgi_wait:app", "--workers", "1") as proc:
        before = int(_get(proc.port, "/threads")[1])
        results, elapsed = all_at_once(lambda: _get(proc.port, "/threads"), N)
        assert len(results) == N and all(status == 200 for status, _ in results)
        most = max(int(body) for _, body in results)
        # each request awaited 0.5 s with up to N at once: one thread each before
        assert most <= before + 8, (before, most)
        assert elapsed < 15, elapsed  # they awaited together, not one after another


@pytest.mark.parametrize("backend", BACKENDS)
def test_awaiting_after_reading_the_body_holds_no_thread(backend: str) -> None:
    # the body is the handler's to read; once the app has it whole, the
    # handler defers the response and returns as for a request without one
    body = b"x" * 3000

    def post() -> tuple[int, bytes]:
        with Conn(proc.port, timeout=30) as c:
            c.send(request("POST", "/post-threads", body=body))
            reply = read_reply(c)
            return reply.status, reply.body

    with served_asgi(backend, "asgi_wait:app", "--workers", "1") as proc:
        before = int(post()[1].split()[1])
        results, elapsed = all_at_once(post, N)
        assert all(status == 200 and reply.split()[0] == b"3000" for status, reply in results)
        most = max(int(reply.split()[1]) for _, reply in results)
        assert most <= before + 8, (before, most)
        assert elapsed < 15, elapsed


@pytest.mark.parametrize("backend", BACKENDS)
def test_streamed_after_an_await_and_the_next_request_behind_it(backend: str) -> None:
    with served_asgi(backend, "asgi_wait:app", "--workers", "1") as proc:
        with Conn(proc.port, timeout=30) as c:
            # pipelined: /brief waits for the streamed answer, then comes after it
            c.send(request("GET", "/stream-later") + request("GET", "/brief"))
            first = read_reply(c)
            assert first.status == 200 and first.chunked, first.headers  # type: ignore[attr-defined]
            assert first.body == b"one,two,three"
            second = read_reply(c)
            assert (second.status, second.body) == (200, b"brief")
            c.send(request("HEAD", "/stream-later"))
            head = read_reply(c, head=True)
            assert head.status == 200 and c.still_open()  # the head alone, no body
            c.send(request("GET", "/brief"))
            assert read_reply(c).body == b"brief"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_client_gone_during_the_first_step(backend: str) -> None:
    # the client leaves while the app's first step runs: the handler defers
    # (the engine holds the end of the stream until it returns), the app's
    # later answer goes nowhere, no traceback, and the server goes on
    with served_asgi(backend, "asgi_wait:app", "--workers", "1") as proc:
        s = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        s.sendall(request("GET", "/gone-first"))
        time.sleep(0.1)
        s.close()
        proc.wait_line("GONE FIRST ANSWERED", 20)
        assert _get(proc.port, "/brief") == (200, b"brief")
