"""The asyncio loop of each engine worker (pyparallel.asyncio.worker_loop) and
the project's own async callbacks on it (servers/aio_app.py).

Ready callbacks run on the worker after its I/O batch, timers on the worker's
timer heap, call_soon_threadsafe wakes the worker through its queue; futures,
tasks, run_in_executor, getaddrinfo off the worker and the exception handler
work as asyncio's; async def protocol callbacks and HttpServer handlers are
driven as tasks whose result is the answer."""

from __future__ import annotations

import concurrent.futures

import pytest

from helpers import closed_by_peer, connect, recv_exact, recv_until_line


def ask(port: int, cmd: str) -> str:
    with connect(port) as s:
        s.sendall(cmd.encode() + b"\n")
        return recv_until_line(s).decode().strip()


def http_get(port: int, path: str) -> tuple[int, bytes]:
    with connect(port) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        while chunk := s.recv(65536):
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("cmd,expected", [
    ("same", "True"),
    ("order", "[] [0, 1, 2, 3, 4]"),
    ("later", "True abc"),
    ("threadsafe", "woken"),
    ("executor", "True"),
    ("gai", "True"),
    ("handler", "ZeroDivisionError('division by zero')"),
    ("cancel", "[]"),
])
def test_worker_loop(spawn, backend: str, cmd: str, expected: str) -> None:
    srv = spawn("aio_app.py", backend=backend)
    assert ask(srv.ports["loop"], cmd) == expected


def test_async_data_received_result_is_sent(spawn, backend: str) -> None:
    srv = spawn("aio_app.py", backend=backend)
    with connect(srv.ports["aecho"]) as s:
        for i in range(20):
            msg = f"m{i:02d}".encode()
            s.sendall(msg)
            assert recv_exact(s, len(msg)) == msg


def test_async_callbacks_in_parallel_connections(spawn, backend: str) -> None:
    # 50 connections, each with a task waiting on one worker's loop at once.
    srv = spawn("aio_app.py", backend=backend)
    socks = [connect(srv.ports["aecho"]) for _ in range(50)]
    try:
        for i, s in enumerate(socks):
            s.sendall(b"%03d" % i)
        for i, s in enumerate(socks):
            assert recv_exact(s, 3) == b"%03d" % i
    finally:
        for s in socks:
            s.close()


def test_async_callback_exception_goes_to_handler(spawn, backend: str) -> None:
    srv = spawn("aio_app.py", backend=backend)
    with connect(srv.ports["araise"]) as s:
        s.sendall(b"x")
        assert recv_until_line(s) == b"HANDLED await ValueError('async boom')\n"
        assert closed_by_peer(s)


def test_async_http_handlers(spawn, backend: str) -> None:
    srv = spawn("aio_app.py", backend=backend)
    port = srv.ports["http"]
    assert http_get(port, "/fast") == (200, b'{"fast":true,"worker":0}')
    assert http_get(port, "/sleep") == (200, b"slept")
    assert http_get(port, "/sync") == (200, b"sync")
    status, _ = http_get(port, "/boom")
    assert status == 500
    srv.allow_tracebacks = True


def test_async_http_handlers_concurrent(spawn, backend: str) -> None:
    # Requests that await, on one worker, next to plain ones: all answered.
    srv = spawn("aio_app.py", backend=backend)
    port = srv.ports["http"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: http_get(port, "/sleep" if i % 2 else "/sync"), range(16)))
    assert got == [(200, b"slept" if i % 2 else b"sync") for i in range(16)]


def test_coroutines_stay_on_their_worker(spawn, backend: str) -> None:
    srv = spawn("aio_app.py", "--workers", "2", backend=backend)
    seen = {ask(srv.ports["loop"], "worker") for _ in range(20)}
    assert seen <= {"0", "1"}


def test_worker_loop_off_the_workers() -> None:
    from pyparallel.asyncio import worker_loop
    with pytest.raises(RuntimeError, match="engine worker"):
        worker_loop()
