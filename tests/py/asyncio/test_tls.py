"""TLS on pyparallel.asyncio loops: servers (create_server/start_server with
ssl=) answering the standard library's TLS clients, clients (open_connection
and aiohttp with ssl=) of the standard library's TLS server, STARTTLS
(start_tls on both sides), certificate checks that must fail, and a
handshake with a peer that never answers. A certificate made by openssl for
the test; in-process, on the backend the fixture names."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import pyparallel.asyncio as pa

BIG = os.urandom(1 << 20)


@pytest.fixture(autouse=True)
def _backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PX_BACKEND", backend)
    yield


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def server_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return ctx


def client_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()


def _stdlib_client(port: int, ctx: ssl.SSLContext, payload: bytes) -> tuple[bytes, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got, s.version() or ""


def test_server_answers_stdlib_clients(cert: tuple[Path, Path]) -> None:
    async def main() -> list[tuple[bytes, str]]:
        loop = asyncio.get_running_loop()
        srv = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=server_ctx(cert))
        port = srv.sockets[0].getsockname()[1]
        ctx = client_ctx(cert)
        try:
            return await asyncio.gather(*(
                loop.run_in_executor(None, _stdlib_client, port, ctx, BIG[:n])
                for n in (5, 70_000, len(BIG))))
        finally:
            srv.close()
            await srv.wait_closed()

    results = pa.run(main())
    for (got, version), n in zip(results, (5, 70_000, len(BIG))):
        assert got == BIG[:n]
        assert version.startswith("TLS")


def test_server_refuses_a_client_that_does_not_trust_it(cert: tuple[Path, Path]) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        srv = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=server_ctx(cert))
        port = srv.sockets[0].getsockname()[1]
        try:
            await loop.run_in_executor(None, _stdlib_client, port,
                                       ssl.create_default_context(), b"x")
        except ssl.SSLCertVerificationError as e:
            return e.verify_message
        finally:
            srv.close()
            await srv.wait_closed()
        return "verified?"

    assert "self-signed" in pa.run(main())


class _StdlibServer:
    """A TLS echo server of the standard library, one thread per client."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(raw,), daemon=True).start()

    def _client(self, raw: socket.socket) -> None:
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                while data := s.recv(65536):
                    s.sendall(data)
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.sock.close()


def test_client_of_a_stdlib_server(cert: tuple[Path, Path]) -> None:
    srv = _StdlibServer(server_ctx(cert))

    async def main() -> tuple[bytes, str, object]:
        r, w = await asyncio.open_connection("127.0.0.1", srv.port, ssl=client_ctx(cert),
                                             server_hostname="localhost")
        w.write(BIG)
        await w.drain()
        got = await r.readexactly(len(BIG))
        obj = w.get_extra_info("ssl_object")
        peer = w.get_extra_info("peercert")
        w.close()
        await w.wait_closed()
        return got, obj.version(), peer["subject"]

    try:
        got, version, subject = pa.run(main())
    finally:
        srv.close()
    assert got == BIG
    assert version.startswith("TLS")
    assert (("commonName", "localhost"),) in subject


def test_client_checks_the_server_name(cert: tuple[Path, Path]) -> None:
    srv = _StdlibServer(server_ctx(cert))

    async def main() -> str:
        try:
            await asyncio.open_connection("127.0.0.1", srv.port, ssl=client_ctx(cert),
                                          server_hostname="example.org")
        except ssl.SSLCertVerificationError as e:
            return e.verify_message
        return "connected?"

    try:
        assert "mismatch" in pa.run(main()).lower()
    finally:
        srv.close()


def test_aiohttp_https_client(cert: tuple[Path, Path]) -> None:
    """aiohttp connects its own socket and hands it over with ssl= (sock+TLS)."""
    aiohttp = pytest.importorskip("aiohttp", reason="aiohttp comes with the test requirements")
    http_ctx = server_ctx(cert)

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        body = b"secure hello"
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body))
        await w.drain()
        w.close()

    async def main() -> tuple[int, str]:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=http_ctx)
        port = srv.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"https://localhost:{port}/",
                                       ssl=client_ctx(cert)) as resp:
                    return resp.status, await resp.text()
        finally:
            srv.close()
            await srv.wait_closed()

    assert pa.run(main()) == (200, "secure hello")


def test_starttls_both_sides_on_the_loop(cert: tuple[Path, Path]) -> None:
    async def upgrade(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        assert await r.readline() == b"STARTTLS\r\n"
        w.write(b"GO\r\n")
        await w.drain()
        await w.start_tls(server_ctx(cert))
        line = await r.readline()
        w.write(b"secret: " + line)
        await w.drain()
        w.close()

    async def main() -> tuple[bytes, bool]:
        srv = await asyncio.start_server(upgrade, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"STARTTLS\r\n")
            assert await r.readline() == b"GO\r\n"
            await w.start_tls(client_ctx(cert), server_hostname="localhost")
            w.write(b"hello\r\n")
            got = await r.readline()
            tls = w.get_extra_info("ssl_object") is not None
            w.close()
            return got, tls
        finally:
            srv.close()
            await srv.wait_closed()

    assert pa.run(main()) == (b"secret: hello\r\n", True)


def test_handshake_timeout_with_a_silent_peer(cert: tuple[Path, Path]) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers

    async def main() -> str:
        try:
            await asyncio.open_connection("127.0.0.1", silent.getsockname()[1],
                                          ssl=client_ctx(cert), server_hostname="localhost",
                                          ssl_handshake_timeout=0.3)
        except (TimeoutError, ConnectionAbortedError) as e:
            return type(e).__name__
        return "connected?"

    try:
        assert pa.run(main()) in ("TimeoutError", "ConnectionAbortedError")
    finally:
        silent.close()


def test_tls_arguments_checked_as_asyncio_does() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        errors = []
        for call in (lambda: loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True),
                     lambda: loop.create_connection(asyncio.Protocol, "127.0.0.1", 1,
                                                    server_hostname="x"),
                     lambda: loop.create_connection(asyncio.Protocol, "127.0.0.1", 1,
                                                    ssl_handshake_timeout=1.0)):
            try:
                await call()
            except (TypeError, ValueError) as e:
                errors.append(type(e).__name__)
        return errors

    assert pa.run(main()) == ["TypeError", "ValueError", "ValueError"]
