"""Deferred responses (pyparallel.http.defer, servers/deferred_app.py), both
backends: an answer from another thread after the handler returned, with the
connection's pipelined request after it in order; HEAD and HTTP/1.0; a
deferral dropped unanswered (500) or answered twice (the second refused); a
client gone before the answer; and async def handlers that suspend, whose
answers come from their tasks with no thread waiting for them: 300 at once on
one worker keep the thread count flat, an HttpError and an exception after an
await, a generator and a Response after an await, remote_addr after an await,
respond_with (a stream started on the worker after the handler returned, an
HttpError and an exception raised there), and suspending handlers with
hand-off off."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from helpers import ServerProcess, all_at_once
from http_helpers import Conn, request


def start(spawn: Callable[..., ServerProcess], backend: str, *args: str) -> ServerProcess:
    return spawn("deferred_app.py", *args, backend=backend)


def get(port: int, path: str) -> Any:
    with Conn(port) as c:
        c.send(request("GET", path))
        return c.read_reply()


def test_answered_by_another_thread_then_pipelined(spawn, backend):
    srv = start(spawn, backend)
    with Conn(srv.port) as c:
        c.send(request("GET", "/thread/100") + request("GET", "/plain"))
        first = c.read_reply()
        assert (first.status, json.loads(first.body)) == (200, {"later": 100})
        assert c.read_reply().body == b"plain"  # held behind the deferral, in order
        c.send(request("HEAD", "/thread/5"))
        head = c.read_reply(head=True)
        assert head.status == 200 and head.headers["content-length"] == "11"
        c.send(request("GET", "/plain"))  # no body came after the HEAD answer
        assert c.read_reply().body == b"plain"
    with Conn(srv.port) as c:
        c.send(b"GET /thread/5 HTTP/1.0\r\n\r\n")
        raw = c.read_to_eof()
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in raw
        assert raw.endswith(b'{"later":5}')
    srv.finish().assert_clean()


def test_dropped_unanswered_is_500_and_a_second_answer_is_refused(spawn, backend):
    srv = start(spawn, backend)
    with Conn(srv.port) as c:
        c.send(request("GET", "/drop"))
        assert c.read_reply().status == 500
        c.send(request("GET", "/twice"))
        assert c.read_reply().body == b"first"
        c.send(request("GET", "/plain"))
        assert c.read_reply().body == b"plain"
    assert json.loads(get(srv.port, "/counts").body) == {"sent": 1, "refused": 0, "gone": 0}
    done = srv.finish()
    done.assert_clean()
    assert "deferred response released unanswered" in done.stderr


def test_client_gone_before_the_answer(spawn, backend):
    srv = start(spawn, backend)
    c = Conn(srv.port)
    c.send(request("GET", "/gone/200"))
    time.sleep(0.05)
    c.close()
    deadline = time.monotonic() + 5
    while json.loads(get(srv.port, "/counts").body)["refused"] < 1:
        assert time.monotonic() < deadline, "respond() never reported the client gone"
        time.sleep(0.05)
    assert get(srv.port, "/plain").body == b"plain"
    srv.finish().assert_clean()


def test_suspended_async_handlers_hold_no_thread(spawn, backend):
    # one worker, 300 handlers asleep at once: before deferral every one of
    # them held a thread (the worker's spares); now they are tasks only
    srv = start(spawn, backend)
    before = json.loads(get(srv.port, "/threads").body)["threads"]

    def client() -> tuple[int, Any]:
        reply = get(srv.port, "/sleep/500")
        return reply.status, json.loads(reply.body)

    results, elapsed = all_at_once(client, 300, 30)
    assert len(results) == 300 and all(status == 200 for status, _ in results)
    assert all(body["remote"] == "127.0.0.1" for _, body in results)
    most = max(body["threads"] for _, body in results)
    assert most <= before + 8, (before, most)
    assert elapsed < 10, elapsed  # slept together, not one after another
    srv.finish().assert_clean()


def test_async_outcomes_after_an_await(spawn, backend):
    srv = start(spawn, backend)
    missing = get(srv.port, "/http-error")
    assert (missing.status, missing.body) == (404, b"not here after all\n")
    made = get(srv.port, "/resp")
    assert (made.status, made.headers["x-later"], made.body) == (201, "yes", b"made")
    with Conn(srv.port) as c:
        c.send(request("GET", "/gen"))
        reply = c.read_reply(head=True)
        assert reply.headers["transfer-encoding"] == "chunked"
        assert c.read_until(b"0\r\n\r\n") == b"4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n"
    with Conn(srv.port) as c:
        c.send(request("GET", "/raise"))
        assert c.read_reply().status == 500
        assert c.closed_cleanly() is None  # closed after a handler's exception
    done = srv.finish()
    done.assert_clean(allow_tracebacks=True)
    assert "ValueError: deferred handler boom" in done.stderr


def test_respond_with_runs_as_the_handler_would(spawn, backend):
    # respond_with(fn): fn(request) on the worker, later, where stream(request)
    # starts a response that another thread ends; its HttpError is its status,
    # its other exceptions a 500 and a close
    srv = start(spawn, backend)
    with Conn(srv.port) as c:
        c.send(request("GET", "/with/stream") + request("GET", "/plain"))
        reply = c.read_reply(head=True)
        assert (reply.status, reply.headers["x-streamed"]) == (200, "later")
        assert reply.headers["transfer-encoding"] == "chunked"
        assert c.read_until(b"0\r\n\r\n") == b"9\r\nstreamed \r\n5\r\nafter\r\n0\r\n\r\n"
        assert c.read_reply().body == b"plain"  # the pipelined one, after the end
    conflict = get(srv.port, "/with/error")
    assert (conflict.status, conflict.body) == (409, b"conflict, later\n")
    with Conn(srv.port) as c:
        c.send(request("GET", "/with/raise"))
        assert c.read_reply().status == 500
        assert c.closed_cleanly() is None
    assert json.loads(get(srv.port, "/counts").body)["gone"] == 0  # each client was there
    done = srv.finish()
    done.assert_clean(allow_tracebacks=True)
    assert "ValueError: respond_with boom" in done.stderr


def test_suspending_handlers_without_hand_off(spawn, backend):
    # with hand-off off a handler cannot wait for its task: deferral lets it
    srv = start(spawn, backend, "--handoff-ms", "0")
    for _ in range(5):
        reply = get(srv.port, "/sleep/20")
        assert reply.status == 200 and json.loads(reply.body)["remote"] == "127.0.0.1"
    srv.finish().assert_clean()
