"""Unix domain sockets on pyparallel.asyncio loops: servers and clients of a
standalone loop (echo, addresses, the socket file's life, TLS over a Unix
socket, errors), and a server on a worker's loop of a 2-worker engine, whose
one socket the workers share (each connection served by the loop of the worker
that accepted it)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tls import cert, client_ctx, server_ctx  # noqa: F401  (the cert fixture)

import pyparallel.asyncio as pa


@pytest.fixture(autouse=True)
def _backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PX_BACKEND", backend)
    yield


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()


def test_unix_echo_and_addresses(tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    big = os.urandom(1 << 20)
    seen: list[object] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append((w.get_extra_info("sockname"), w.get_extra_info("peername")))
        await _echo(r, w)

    async def main() -> tuple[bytes, object, bool, bool]:
        srv = await asyncio.start_unix_server(serve, path)
        assert os.path.exists(path)
        r, w = await asyncio.open_unix_connection(path)

        async def send() -> None:  # written while the echo is read (small buffers)
            w.write(big)
            await w.drain()

        _, got = await asyncio.gather(send(), r.readexactly(len(big)))
        peer = w.get_extra_info("peername")
        w.close()
        await w.wait_closed()
        # a client that brings its own connected socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        r2, w2 = await asyncio.open_unix_connection(sock=s)
        w2.write(b"again")
        again = await r2.readexactly(5) == b"again"
        w2.close()
        srv.close()
        await srv.wait_closed()
        return got, peer, again, os.path.exists(path)

    got, peer, again, still_there = pa.run(main())
    assert got == big and again
    assert peer == path
    assert seen[0] == (path, "")  # the client's end is unnamed
    assert not still_there  # the server's socket file goes with it


def test_stale_socket_file_is_replaced_and_errors_are_clear(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, as a crashed server leaves it

    async def main() -> list[str]:
        out = []
        srv = await asyncio.start_unix_server(_echo, path)
        r, w = await asyncio.open_unix_connection(path)
        w.write(b"x")
        out.append((await r.readexactly(1)).decode())
        w.close()
        srv.close()
        await srv.wait_closed()
        try:
            await asyncio.open_unix_connection(str(tmp_path / "nobody.sock"))
        except FileNotFoundError:
            out.append("FileNotFoundError")
        loop = asyncio.get_running_loop()
        try:
            await loop.create_unix_server(asyncio.Protocol, path, sock=socket.socket())
        except ValueError:
            out.append("ValueError")
        try:
            tcp = socket.socket()
            await loop.create_unix_server(asyncio.Protocol, sock=tcp)
        except ValueError:
            out.append("ValueError")
        finally:
            tcp.close()
        return out

    assert pa.run(main()) == ["x", "FileNotFoundError", "ValueError", "ValueError"]


def test_tls_over_a_unix_socket(tmp_path: Path, cert: tuple[Path, Path]) -> None:  # noqa: F811
    path = str(tmp_path / "tls.sock")

    async def main() -> tuple[bytes, str]:
        srv = await asyncio.start_unix_server(_echo, path, ssl=server_ctx(cert))
        try:
            r, w = await asyncio.open_unix_connection(path, ssl=client_ctx(cert),
                                                      server_hostname="localhost")
            w.write(b"over tls")
            got = await r.readexactly(8)
            version = w.get_extra_info("ssl_object").version()
            w.close()
            return got, version
        finally:
            srv.close()
            await srv.wait_closed()

    got, version = pa.run(main())
    assert got == b"over tls" and version.startswith("TLS")

    async def no_name() -> str:
        try:
            await asyncio.open_unix_connection(path, ssl=ssl.create_default_context())
        except ValueError as e:
            return str(e)
        return "connected?"

    assert "server_hostname" in pa.run(no_name())


def test_unix_server_on_every_worker(spawn, backend: str) -> None:  # type: ignore[no-untyped-def]
    srv = spawn("aio_app.py", "--workers", "2", backend=backend)
    with socket.create_connection(("127.0.0.1", srv.ports["loop"]), timeout=10) as c:
        c.sendall(b"unix\n")
        path = c.makefile("rb").readline().decode().strip()
    assert path.endswith(".sock"), path
    workers = []
    conns = []
    for _ in range(40):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        conns.append(s)
    for s in conns:
        s.sendall(b"?")
    for s in conns:
        workers.append(int(s.makefile("rb").readline()))
        s.close()
    assert set(workers) <= {0, 1}
    assert len(workers) == 40
    print("connections per worker:", {w: workers.count(w) for w in set(workers)})
