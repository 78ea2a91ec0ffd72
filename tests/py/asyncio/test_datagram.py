"""Datagram endpoints on pyparallel.asyncio loops (create_datagram_endpoint):
a UDP echo server and its clients, a burst from a plain socket, a refusal
reported to a connected endpoint, address and type checks, close; over IP and
over a Unix datagram socket. In-process, on the backend the fixture names."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pyparallel.asyncio as pa


@pytest.fixture(autouse=True)
def _backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PX_BACKEND", backend)
    yield


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.count = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1
        self.transport.sendto(data, addr)


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.errors: list[Exception] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.waiting: asyncio.Future[None] | None = None
        self.want = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)
        if self.waiting is not None and len(self.got) >= self.want and not self.waiting.done():
            self.waiting.set_result(None)

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)

    async def wait_for(self, n: int) -> None:
        self.want = n
        self.waiting = asyncio.get_running_loop().create_future()
        if len(self.got) < n:
            await asyncio.wait_for(self.waiting, 10)


def test_udp_echo() -> None:
    async def main() -> tuple[list[bytes], int, bool, object]:
        loop = asyncio.get_running_loop()
        srv_tr, srv = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = srv_tr.get_extra_info("sockname")
        cli_tr, cli = await loop.create_datagram_endpoint(Collect, remote_addr=addr)
        sent = [b"%03d" % i for i in range(100)]
        for i in range(0, 100, 10):  # in windows of ten: loopback drops nothing then
            for d in sent[i:i + 10]:
                cli_tr.sendto(d)
            await cli.wait_for(i + 10)
        peer = cli_tr.get_extra_info("peername")
        is_transport = isinstance(cli_tr, asyncio.DatagramTransport)
        cli_tr.close()
        lost = await cli.lost
        srv_tr.close()
        return sorted(cli.got), srv.count, is_transport and peer == addr, lost

    got, served, ok, lost = pa.run(main())
    assert got == [b"%03d" % i for i in range(100)]
    assert served == 100 and ok and lost is None


def test_burst_from_a_plain_socket() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        tr, proto = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(100):  # inside the receive buffer (about 1 KiB each, counted)
                s.sendto(b"%064d" % i, tr.get_extra_info("sockname"))
        await proto.wait_for(100)
        tr.close()
        return len(proto.got)

    assert pa.run(main()) == 100


def test_refusal_reaches_a_connected_endpoint() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a port nobody reads
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        tr, proto = await loop.create_datagram_endpoint(
            Collect, remote_addr=("127.0.0.1", closed_port))
        for _ in range(3):
            tr.sendto(b"anyone?")
            await asyncio.sleep(0.05)
            if proto.errors:
                break
        out = [type(e).__name__ for e in proto.errors[:1]]
        try:
            tr.sendto(b"x", ("127.0.0.1", closed_port + 1))
        except ValueError:
            out.append("ValueError")
        try:
            tr.sendto("text")  # type: ignore[arg-type]
        except TypeError:
            out.append("TypeError")
        tr.abort()
        await proto.lost
        return out

    assert pa.run(main()) == ["ConnectionRefusedError", "ValueError", "TypeError"]


def test_unix_datagram_endpoints(tmp_path: Path) -> None:
    server_path = str(tmp_path / "srv.sock")
    client_path = str(tmp_path / "cli.sock")

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        srv_tr, _ = await loop.create_datagram_endpoint(
            Echo, local_addr=server_path, family=socket.AF_UNIX)
        cli_tr, cli = await loop.create_datagram_endpoint(
            Collect, local_addr=client_path, remote_addr=server_path, family=socket.AF_UNIX)
        cli_tr.sendto(b"over a path")
        await cli.wait_for(1)
        cli_tr.close()
        srv_tr.close()
        return cli.got

    assert pa.run(main()) == [b"over a path"]
