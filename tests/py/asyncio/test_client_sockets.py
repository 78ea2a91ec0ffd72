"""What asyncio clients such as aiohttp and redis-py need from a
pyparallel.asyncio loop beyond host:port connections (standalone loop, both
backends):

* sock_connect returns once the socket is connected, not while the connect
  is still pending (aiohttp connects its own sockets, happy eyeballs);
* create_connection(sock=...) takes over a socket the caller connected;
* what one callback writes to one connection and then another leaves in that
  order (redis-py subscribes on one connection, then publishes on another).
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import pyparallel.asyncio as pa


@pytest.fixture(autouse=True)
def _backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PX_BACKEND", backend)
    yield


def test_sock_connect_returns_once_connected() -> None:
    # A listener whose accept queue is full drops the SYN: the connect stays
    # pending until the queue has room again and the SYN is sent again (~1 s).
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    addr = lsn.getsockname()
    fillers: list[socket.socket] = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr)
        fillers.append(s)
    time.sleep(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_later() -> None:
        time.sleep(0.3)
        lsn.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(lsn.accept()[0])
            except OSError:
                pass

    async def main() -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, addr), 30)
            return sock.getpeername()  # type: ignore[no-any-return]
        finally:
            sock.close()

    t = threading.Thread(target=accept_later)
    t.start()
    try:
        assert pa.run(main()) == addr
    finally:
        stop.set()
        t.join()
        for s in fillers + accepted + [lsn]:
            s.close()


class _Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.got: asyncio.Future[bytes] | None = None

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.got is not None and not self.got.done() and self.data.endswith(b"\n"):
            self.got.set_result(self.data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.got is not None and not self.got.done():
            self.got.set_exception(ConnectionError("lost"))


def test_create_connection_adopts_a_connected_socket() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo " + await reader.readline())
        await writer.drain()
        writer.close()

    async def main() -> tuple[bytes, Any, Any, int]:
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        proto = _Collect()
        proto.got = loop.create_future()
        tr, _ = await loop.create_connection(lambda: proto, sock=sock)
        tr.write(b"hello\n")
        data = await asyncio.wait_for(proto.got, 30)
        peer = tr.get_extra_info("peername")
        tr.close()
        server.close()
        await server.wait_closed()
        return data, peer, port, sock.fileno()

    data, peer, port, fd = pa.run(main())
    assert data == b"echo hello\n"
    assert tuple(peer) == ("127.0.0.1", port)
    assert fd == -1  # detached: the engine owns the descriptor now


def test_create_connection_sock_refusals() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        out = []
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket()
        try:
            for kw in ({"sock": udp}, {"sock": tcp, "host": "127.0.0.1", "port": 1}):
                try:
                    await loop.create_connection(asyncio.Protocol, **kw)  # type: ignore[arg-type]
                except ValueError as e:
                    out.append(type(e).__name__)
            try:
                await loop.create_connection(asyncio.Protocol, sock=tcp)  # never connected
            except OSError as e:
                out.append(type(e).__name__)
        finally:
            udp.close()
            tcp.close()
        return out

    assert pa.run(main()) == ["ValueError", "ValueError", "OSError"]


def test_writes_leave_in_the_order_written() -> None:
    # A single-threaded server sees, through epoll's ready list, which of two
    # connections got its bytes first: the one written first, every round.
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(8)
    port = lsn.getsockname()[1]
    rounds = 20
    firsts: list[int] = []

    def server() -> None:
        a = lsn.accept()[0]
        b = lsn.accept()[0]
        names = {a.fileno(): 0, b.fileno(): 1}
        ep = select.epoll()
        for s in (a, b):
            ep.register(s.fileno(), select.EPOLLIN)
        try:
            for _ in range(rounds):
                seen: list[int] = []
                while len(seen) < 2:
                    for fd, _ in ep.poll(10):
                        if names[fd] not in seen:
                            seen.append(names[fd])
                            (a if names[fd] == 0 else b).recv(16)
                firsts.append(seen[0])
                a.sendall(b"\n")  # next round
        finally:
            ep.close()
            a.close()
            b.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pa_ = _Collect()
        tra, _ = await loop.create_connection(lambda: pa_, "127.0.0.1", port)
        await asyncio.sleep(0.05)  # accepted in this order by the server
        trb, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        for _ in range(rounds):
            pa_.data = b""
            pa_.got = loop.create_future()
            tra.write(b"a")
            trb.write(b"b")
            await asyncio.wait_for(pa_.got, 30)
        tra.close()
        trb.close()

    t = threading.Thread(target=server)
    t.start()
    try:
        pa.run(main())
    finally:
        t.join(30)
        lsn.close()
    assert firsts == [0] * rounds
