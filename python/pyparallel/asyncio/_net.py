"""Servers and client connections of a loop on the engine (create_server,
create_connection; asyncio.start_server and open_connection use them).

A server's sockets are the engine's listeners (one per worker, SO_REUSEPORT):
on a worker's loop inside a multi-worker engine, every worker accepts, and each
connection's protocol runs on the loop of the worker that accepted it.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable, Iterable
from typing import Any

from .. import _core
from ._transport import EngineTransport, _Conn


class Server(asyncio.AbstractServer):
    """What create_server returns. The engine keeps the port until the engine
    (a standalone loop: the loop) is closed; a closed server refuses (aborts)
    the connections that still arrive."""

    def __init__(self, loop: Any, sockets: list[socket.socket],
                 listen: Callable[[], None]) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        self._px_closed = False
        self._px_listen: Callable[[], None] | None = listen
        self._serving = False
        self._transports: set[EngineTransport] = set()
        self._waiters: list[asyncio.Future[None]] | None = []

    def __repr__(self) -> str:
        return f"<Server sockets={self.sockets!r}>"

    def _px_attach(self, tr: EngineTransport) -> None:
        self._transports.add(tr)

    def _px_detach(self, tr: EngineTransport) -> None:
        self._transports.discard(tr)
        if self._px_closed and not self._transports:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for w in waiters or ():
            if not w.done():
                w.set_result(None)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets or ())

    def close(self) -> None:
        if self._px_closed:
            return
        self._px_closed = True
        self._serving = False
        self._px_listen = None
        for s in self._sockets or ():
            s.close()
        self._sockets = None
        if not self._transports:
            self._wakeup()

    def close_clients(self) -> None:
        for tr in list(self._transports):
            tr.close()

    def abort_clients(self) -> None:
        for tr in list(self._transports):
            tr.abort()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        loop: asyncio.AbstractEventLoop = self._loop
        return loop

    def is_serving(self) -> bool:
        return self._serving

    def _px_start(self) -> None:
        listen, self._px_listen = self._px_listen, None
        if listen is not None:
            listen()
            self._serving = True

    async def start_serving(self) -> None:
        self._px_start()

    async def serve_forever(self) -> None:
        if self._px_closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._px_start()
        try:
            await self._loop.create_future()
        finally:
            self.close()
            await self.wait_closed()

    async def wait_closed(self) -> None:
        if self._waiters is None:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


def _listen_socket(host: str, port: int, family: int, backlog: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    af, kind, proto, _, addr = infos[0]
    s = socket.socket(af, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if af == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(addr)
        s.listen(backlog)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


class EngineNet:
    """create_server/create_connection for a loop whose I/O is an engine's."""

    # Whether threads other than the worker's may run the loop's code
    # (hand-off): the engine's callbacks claim it first (_transport._Conn).
    _px_shared = False

    def _px_engine(self) -> Any:
        raise NotImplementedError

    def _px_connect_worker(self) -> object:
        raise NotImplementedError

    async def create_server(
            self, protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: str | Iterable[str] | None = None, port: int | None = None, *,
            family: int = socket.AF_UNSPEC, flags: int = socket.AI_PASSIVE,
            sock: socket.socket | None = None, backlog: int = 100, ssl: Any = None,
            reuse_address: bool | None = None, reuse_port: bool | None = None,
            keep_alive: bool | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True) -> Server:
        if ssl is not None:
            raise NotImplementedError("TLS is not served by pyparallel.asyncio yet")
        engine = self._px_engine()
        if sock is not None:
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            socks = [sock]
        else:
            hosts = ["0.0.0.0"] if host in (None, "") else \
                [host] if isinstance(host, str) else list(host)
            socks = []
            bound = port or 0
            try:
                for h in hosts:
                    s = _listen_socket(h, bound, family, backlog)
                    bound = s.getsockname()[1]  # the next hosts share the port
                    socks.append(s)
            except BaseException:
                for s in socks:
                    s.close()
                raise
        def listen() -> None:
            conn_factory = _ServerConnFactory(self, protocol_factory, server)
            for s in socks:
                addr = s.getsockname()
                engine.listen(addr[0], addr[1], conn_factory, s.dup().detach())

        server = Server(self, socks, listen)
        if start_serving:
            server._px_start()
        return server

    async def create_connection(
            self, protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: str | None = None, port: int | None = None, *, ssl: Any = None,
            family: int = 0, proto: int = 0, flags: int = 0, sock: socket.socket | None = None,
            local_addr: Any = None, server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None, interleave: int | None = None,
            all_errors: bool = False) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        if ssl is not None:
            raise NotImplementedError("TLS is not served by pyparallel.asyncio yet")
        if local_addr is not None:
            raise NotImplementedError("create_connection(local_addr=...) is not "
                                      "served by pyparallel.asyncio yet")
        kwargs: dict[str, Any] = {"worker": self._px_connect_worker()}
        if sock is not None:
            # A socket connected by the caller (aiohttp connects its own, with
            # happy eyeballs): the engine takes its descriptor over.
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                raise NotImplementedError("create_connection(sock=...) of a non-IP socket is "
                                          "not served by pyparallel.asyncio yet")
            host, port = sock.getpeername()[:2]  # OSError when it is not connected
            kwargs["sock"] = sock.detach()
        elif host is None or port is None:
            raise ValueError("host and port was not specified and no sock specified")
        loop: Any = self
        done: asyncio.Future[_Conn] = loop.create_future()

        def made(conn: _Conn) -> None:
            if not done.done():
                done.set_result(conn)

        def failed(exc: BaseException) -> None:
            if not done.done():
                done.set_exception(exc)

        factory = functools.partial(_Conn, loop, protocol_factory, made, failed)
        if happy_eyeballs_delay is not None:
            kwargs["attempt_delay"] = happy_eyeballs_delay
        self._px_engine().connect(host, int(port), factory, **kwargs)
        try:
            conn = await done
        finally:
            # The error's traceback holds this frame: no cycle through the future.
            del factory
            done = None  # type: ignore[assignment]
        assert conn.tr is not None
        return conn.tr, conn.proto


class _ServerConnFactory:
    """Makes the engine's protocol object of each accepted connection."""

    output_backpressure = False

    def __init__(self, loop: Any, factory: Callable[[], Any], server: Server) -> None:
        self.loop = loop
        self.factory = factory
        self.server = server

    def __call__(self) -> _Conn:
        f = _ServerProto(self.factory, self.server)
        return _Conn(self._loop_here(), f)

    def _loop_here(self) -> Any:
        # On a multi-worker engine each worker's connections go to its loop
        # (made like the server's own, on the worker that accepted).
        loop = self.loop
        if getattr(loop, "_px_per_worker", False):
            waker = _core.aio_worker_waker(type(loop))
            assert waker is not None  # the engine calls this on a worker
            return waker.loop
        return loop


class _ServerProto:
    """protocol_factory with its server, for _Conn."""

    def __init__(self, factory: Callable[[], Any], server: Server) -> None:
        self.factory = factory
        self._px_server = server

    def __call__(self) -> Any:
        return self.factory()
