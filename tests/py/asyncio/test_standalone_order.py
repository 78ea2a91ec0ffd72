"""A standalone loop between runs keeps what its connections receive, in
order: input that arrives while the loop is stopped waits for the next run and
comes before anything received later (CPython's test_open_connection reads a
response across two runs of the loop).

In-process, both backends (the fixture names them)."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import pyparallel.asyncio as pa


@pytest.fixture(autouse=True)
def _backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PX_BACKEND", backend)
    yield


def _wait(cond: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def _hold_the_interpreter(seconds: float) -> None:
    """Busy on this thread without a call that lets another thread run Python:
    a worker's callback that comes meanwhile waits (GIL build) until the loop
    is started below."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_input_held_between_runs_comes_first() -> None:
    """Bytes received while the loop is stopped, then bytes arriving as it
    starts again: the reader sees them in the order they were sent."""
    old = sys.getswitchinterval()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    loop = pa.new_event_loop()
    try:
        reader, writer = loop.run_until_complete(
            asyncio.open_connection(*lsock.getsockname()))
        srv, _ = lsock.accept()
        with srv:
            for i in range(5):
                first, second = b"first %d|" % i, b"second %d|" % i
                srv.sendall(first)
                # held by the stopped loop: a protocol call waits in its queue
                _wait(lambda: len(loop._ready) > 0, "the first bytes were received")
                sys.setswitchinterval(100.0)  # the worker cannot take the GIL from us
                try:
                    srv.sendall(second)
                    _hold_the_interpreter(0.05)  # the worker got them, waits for us
                    got = loop.run_until_complete(
                        asyncio.wait_for(reader.readexactly(len(first) + len(second)), 10))
                finally:
                    sys.setswitchinterval(old)
                assert got == first + second, i
            srv.sendall(b"last")
            srv.shutdown(socket.SHUT_WR)
            assert loop.run_until_complete(asyncio.wait_for(reader.read(), 10)) == b"last"
        writer.close()
        loop.run_until_complete(writer.wait_closed())
    finally:
        sys.setswitchinterval(old)
        lsock.close()
        loop.close()


def test_a_paused_reader_gets_all_before_the_end() -> None:
    """A stream reader that pauses its transport (its buffer is full) while
    the peer has already sent everything and closed: read() to the end gets
    every byte, the end of the stream after them."""
    payload = bytes(range(256)) * 4096  # 1 MiB, far past the reader's limit

    async def main(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=16 * 1024)
        await asyncio.sleep(0.2)  # everything sent and the end read meanwhile
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        return data

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    loop = pa.new_event_loop()
    try:
        fut = loop.create_task(main(lsock.getsockname()[1]))

        def serve() -> None:
            srv, _ = lsock.accept()
            with srv:
                srv.sendall(payload)
                srv.shutdown(socket.SHUT_WR)
                srv.recv(1)  # until the client closes

        t = threading.Thread(target=serve)
        t.start()
        got = loop.run_until_complete(asyncio.wait_for(fut, 30))
        t.join(10)
        assert len(got) == len(payload) and got == payload
    finally:
        lsock.close()
        loop.close()
