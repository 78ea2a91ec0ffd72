"""pyparallel.asyncio standalone (like uvloop): run(), new_event_loop() as a
loop_factory, the policy; servers, connections and streams on the engine with
asyncio's Transport/Protocol semantics; signals, executors, async generators.

In-process: each test makes its own loop (a one-worker engine) on the backend
the fixture names."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import pyparallel.asyncio as pa


@pytest.fixture(autouse=True)
def _backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PX_BACKEND", backend)
    yield


def test_run_returns_and_the_loop_is_ours() -> None:
    async def main() -> tuple[str, bool, int]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.01)
        return type(loop).__name__, loop.is_running(), 42
    assert pa.run(main()) == ("Loop", True, 42)


def test_runner_loop_factory_and_policy() -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__name__
    with asyncio.Runner(loop_factory=pa.loop_factory) as runner:
        assert runner.run(main()) == "Loop"
        assert runner.run(main()) == "Loop"  # a second run on the same loop
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(pa.EventLoopPolicy())
    try:
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, pa.Loop)
            assert loop.run_until_complete(main()) == "Loop"
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(old)


def test_nothing_runs_outside_run() -> None:
    loop = pa.new_event_loop()
    try:
        ran: list[int] = []
        loop.call_soon(ran.append, 1)
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.call_soon(ran.append, 2)
        assert ran == [1]
        loop.run_until_complete(asyncio.sleep(0))
        assert ran == [1, 2]
    finally:
        loop.close()


def test_timers_threadsafe_executor_asyncgens() -> None:
    async def agen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    closed: list[bool] = []

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        loop.call_later(0.03, order.append, "b")
        loop.call_later(0.01, order.append, "a")
        fut = loop.create_future()
        threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, "t")).start()
        got = await fut
        other = await loop.run_in_executor(None, threading.get_ident)
        await asyncio.sleep(0.05)
        g = agen()
        await g.__anext__()  # left suspended: shutdown_asyncgens closes it
        return [order, got, other != threading.get_ident()]

    assert pa.run(main()) == [["a", "b"], "t", True]
    assert closed == [True]


def test_signal_handler_runs_on_the_loop() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda: fut.set_result(threading.get_ident()))
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            return await asyncio.wait_for(fut, 10)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    loop = pa.new_event_loop()
    try:
        assert loop.run_until_complete(main()) != threading.get_ident()
    finally:
        loop.close()


def test_keyboard_interrupt_from_the_loop_propagates() -> None:
    async def main() -> None:
        asyncio.get_running_loop().call_soon(_raise_kbi)
        await asyncio.sleep(5)

    loop = pa.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.close()


def _raise_kbi() -> None:
    raise KeyboardInterrupt


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_streams_echo() -> None:
    async def main() -> bytes:
        srv = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        out = b""
        for i in range(50):
            w.write(b"%04d" % i)
            out += await r.readexactly(4)
        big = os.urandom(1 << 20)
        w.write(big)
        await w.drain()
        echoed = await r.readexactly(len(big))
        w.write_eof()
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
        return out + (b"BIG" if echoed == big else b"")

    assert pa.run(main()) == b"".join(b"%04d" % i for i in range(50)) + b"BIG"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_server_without_a_host_listens_on_every_interface() -> None:
    # As asyncio: host None (or "") is IPv4 and IPv6, one socket each, one port.
    async def main() -> list[Any]:
        out: list[Any] = []
        for host in (None, ""):
            srv = await asyncio.start_server(_echo, host, 0)
            addrs = sorted((s.family, s.getsockname()[0]) for s in srv.sockets)
            ports = {s.getsockname()[1] for s in srv.sockets}
            out.append((addrs, len(ports)))
            for peer in ("127.0.0.1", "::1"):
                r, w = await asyncio.open_connection(peer, min(ports))
                w.write(peer.encode())
                out.append(await r.readexactly(len(peer)))
                w.close()
                await w.wait_closed()
            srv.close()
            await srv.wait_closed()
        return out

    every = ([(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")], 1)
    assert pa.run(main()) == [every, b"127.0.0.1", b"::1"] * 2


def test_connection_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def main() -> None:
        await asyncio.open_connection("127.0.0.1", port)

    with pytest.raises(ConnectionRefusedError):
        pa.run(main())


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.transport: Any = None
        self.lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.events.append(data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        # keep open to answer, and close a little later from a timer
        asyncio.get_running_loop().call_later(0.02, self.answer)
        return True

    def answer(self) -> None:
        self.transport.write(b"bye")
        self.transport.close()

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


def test_protocol_semantics() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        protos: list[Recorder] = []
        srv = await loop.create_server(lambda: protos.append(Recorder()) or protos[-1],
                                       "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        c = socket.create_connection(("127.0.0.1", port))
        c.setblocking(False)
        await loop.run_in_executor(None, c.sendall, b"hello")
        while not protos or b"hello" not in protos[0].events:
            await asyncio.sleep(0.005)
        p = protos[0]
        tr = p.transport
        assert tr.get_extra_info("peername") == c.getsockname()
        assert tr.get_extra_info("sockname") == ("127.0.0.1", port)
        # pause_reading holds input back until resume_reading
        tr.pause_reading()
        assert not tr.is_reading()
        await loop.sock_sendall(c, b"held") if hasattr(loop, "sock_sendall_px") else \
            await loop.run_in_executor(None, c.sendall, b"held")
        await asyncio.sleep(0.1)
        held = b"held" in p.events
        tr.resume_reading()
        while b"held" not in p.events:
            await asyncio.sleep(0.005)
        # write flow control: a small high-water mark, a reader that waits
        tr.set_write_buffer_limits(high=1024, low=0)
        tr.write(b"x" * (8 << 20))
        paused = "pause" in p.events
        got = 0
        while got < (8 << 20):
            try:
                got += len(c.recv(1 << 20))
            except BlockingIOError:
                await asyncio.sleep(0.001)
        while "resume" not in p.events:
            await asyncio.sleep(0.005)
        # the peer's end: eof_received keeps it open, the answer comes, then the close
        c.shutdown(socket.SHUT_WR)
        exc = await asyncio.wait_for(p.lost, 10)
        rest = b""
        while True:
            try:
                chunk = c.recv(100)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            if not chunk:
                break
            rest += chunk
        c.close()
        srv.close()
        await srv.wait_closed()
        return [held, paused, exc, rest, p.events[-3:]]

    held, paused, exc, rest, tail = pa.run(main())
    assert held is False
    assert paused is True
    assert exc is None
    assert rest == b"bye"
    assert tail == ["eof", "lost"][-2:] or tail[-2:] == ["eof", "lost"]


def test_subprocess_and_pipes() -> None:
    async def main() -> list[Any]:
        import sys
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; print(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await p.communicate(b"hello")
        q = await asyncio.create_subprocess_shell("exit 3")
        rc = await q.wait()
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(r, "rb", 0))
        os.write(w, b"through a pipe")
        os.close(w)
        piped = await reader.read()
        transport.close()
        return [out, p.returncode, rc, piped]

    assert pa.run(main()) == [b"HELLO\n", 0, 3, b"through a pipe"]
