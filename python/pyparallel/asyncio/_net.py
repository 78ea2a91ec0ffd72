"""Servers and client connections of a loop on the engine (create_server,
create_connection; asyncio.start_server and open_connection use them).

A server's sockets are the engine's listeners (one per worker, SO_REUSEPORT):
on a worker's loop inside a multi-worker engine, every worker accepts, and each
connection's protocol runs on the loop of the worker that accepted it.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
import ssl as _ssl
from asyncio import trsock
from collections.abc import Callable, Iterable
from typing import Any

from .. import _core
from ._tls import TlsOptions, check_client, check_server, stack_factory
from ._transport import EngineTransport, _Conn


class Server(asyncio.AbstractServer):
    """What create_server returns. The engine keeps the port until the engine
    (a standalone loop: the loop) is closed; a closed server refuses (aborts)
    the connections that still arrive."""

    def __init__(self, loop: Any, sockets: list[socket.socket],
                 listen: Callable[[Server], None],
                 on_close: Callable[[], None] | None = None) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        self._px_closed = False
        self._px_listen: Callable[[Server], None] | None = listen
        self._px_on_close = on_close  # a Unix server's path removed
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
        # wrapped as asyncio wraps them: no closing or blocking from outside
        return tuple(trsock.TransportSocket(s) for s in self._sockets or ())  # type: ignore[misc]

    def close(self) -> None:
        if self._px_closed:
            return
        self._px_closed = True
        self._serving = False
        self._px_listen = None
        for s in self._sockets or ():
            s.close()
        self._sockets = None
        if self._px_on_close is not None:
            self._px_on_close()
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
            listen(self)
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


def _listen_sockets(infos: list[tuple[Any, ...]], port: int,
                    backlog: int) -> list[socket.socket]:
    """A listening socket for every address of infos (getaddrinfo's), as
    asyncio binds them. An address family the machine lacks (no IPv6) is
    skipped while another was bound. With port 0 every socket takes the port
    the first one got."""
    socks: list[socket.socket] = []
    try:
        for af, kind, proto, _, addr in infos:
            if socks and port == 0:
                addr = (addr[0], socks[0].getsockname()[1], *addr[2:])
            try:
                s = socket.socket(af, kind, proto)
            except OSError as e:
                if e.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                    continue  # this family is not supported here
                raise
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if af == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(addr)
                s.listen(backlog)
                s.setblocking(False)
            except OSError as e:
                s.close()
                if e.errno == errno.EADDRNOTAVAIL and af == socket.AF_INET6:
                    continue  # IPv6 disabled: asyncio goes on without it too
                raise OSError(e.errno, f"error while attempting to bind on address "
                                       f"{addr!r}: {e.strerror}") from None
            socks.append(s)
        if not socks:
            raise OSError(errno.EADDRNOTAVAIL, "no address to listen on")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


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
        tls = check_server(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        engine = self._px_engine()
        if sock is not None:
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            socks = [sock]
        else:
            # No host (None or ""): every interface, IPv4 and IPv6; a name:
            # each of its addresses (resolved off the worker).
            hosts: list[str | None] = [None] if host in (None, "") else \
                [host] if isinstance(host, str) else list(host)
            infos: list[tuple[Any, ...]] = []
            for h in hosts:
                for info in await self.getaddrinfo(  # type: ignore[attr-defined]
                        h, port or 0, family=family, type=socket.SOCK_STREAM, flags=flags):
                    if info not in infos:
                        infos.append(info)
            socks = _listen_sockets(infos, port or 0, backlog)
        server = Server(self, socks, _listener(engine, self, protocol_factory, socks, tls))
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
        tls = check_client(ssl, host, server_hostname, ssl_handshake_timeout,
                           ssl_shutdown_timeout)
        if sock is None and local_addr is not None:
            if host is None or port is None:
                raise ValueError("host and port was not specified and no sock specified")
            # bound here, connected here, then the engine's
            sock = await self._px_bound_connect(host, port, family, proto, flags, local_addr)
            try:
                return await self._px_take_socket(protocol_factory, sock, tls, False)
            finally:
                sock.close()  # detached when adopted: closes nothing then
        if sock is not None:
            # A socket connected by the caller (aiohttp connects its own, with
            # happy eyeballs): the engine takes its descriptor over.
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            return await self._px_take_socket(protocol_factory, sock, tls, False)
        if host is None or port is None:
            raise ValueError("host and port was not specified and no sock specified")
        kwargs: dict[str, Any] = {"worker": self._px_connect_worker()}
        if happy_eyeballs_delay is not None:
            kwargs["attempt_delay"] = happy_eyeballs_delay
        return await self._px_open(protocol_factory, host, int(port), kwargs, tls, False)

    async def connect_accepted_socket(
            self, protocol_factory: Callable[[], asyncio.BaseProtocol], sock: socket.socket,
            *, ssl: Any = None, ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """A connection accepted elsewhere, served by the engine (the server
        side of the TLS handshake with ssl)."""
        # (ssl=False is plain here, as in asyncio; create_server refuses a bool)
        tls = check_server(ssl or None, ssl_handshake_timeout, ssl_shutdown_timeout)
        return await self._px_take_socket(protocol_factory, sock, tls, True)

    async def _px_take_socket(self, protocol_factory: Callable[[], asyncio.BaseProtocol],
                        sock: socket.socket, tls: TlsOptions | None,
                        server_side: bool) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """A connected socket's descriptor taken over by the engine."""
        if isinstance(sock, _ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        peer = sock.getpeername()  # OSError when it is not connected
        # (the engine adopts any stream socket; the address only names it)
        host, port = peer[:2] if sock.family != socket.AF_UNIX else ("", 0)
        kwargs = {"worker": self._px_connect_worker(), "sock": sock.detach()}
        return await self._px_open(protocol_factory, host, port, kwargs, tls, server_side)

    async def _px_bound_connect(self, host: str, port: int, family: int, proto: int,
                                flags: int, local_addr: Any) -> socket.socket:
        """A socket bound to local_addr and connected to host:port, trying
        each address pair of one family in turn (as asyncio does)."""
        loop: Any = self
        kind = socket.SOCK_STREAM
        infos = await loop.getaddrinfo(host, port, family=family, type=kind, proto=proto,
                                       flags=flags)
        local = await loop.getaddrinfo(*local_addr, family=family, type=kind, proto=proto,
                                       flags=flags)
        if not infos or not local:
            raise OSError("getaddrinfo() returned empty list")
        errors: list[OSError] = []
        for af, _, pr, _, addr in infos:
            for laf, _, _, _, laddr in local:
                if laf != af:
                    continue
                s = socket.socket(af, kind, pr)
                try:
                    s.setblocking(False)
                    try:
                        s.bind(laddr)
                    except OSError as exc:
                        errors.append(OSError(exc.errno, f"error while attempting to bind on "
                                              f"address {laddr!r}: {(exc.strerror or '').lower()}"))
                        s.close()
                        continue
                    await loop.sock_connect(s, addr)
                    return s
                except OSError as exc:
                    errors.append(exc)
                    s.close()
                except BaseException:
                    s.close()
                    raise
        if not errors:
            raise OSError(f"no matching local address with family={family} found")
        if len(errors) == 1:
            raise errors[0]
        raise OSError("Multiple exceptions: {}".format(", ".join(str(e) for e in errors)))

    async def _px_open(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str,
                       port: int, kwargs: dict[str, Any], tls: TlsOptions | None,
                       server_side: bool) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """The engine's connection to host:port (or of kwargs' sock) carrying
        protocol_factory's protocol, under TLS when tls says so."""
        loop: Any = self
        done: asyncio.Future[_Conn] = loop.create_future()

        def made(conn: _Conn) -> None:
            if done is None or done.done():
                # the caller gave up (cancelled) while connecting: nobody owns it
                if conn.tr is not None:
                    conn.tr.abort()
                return
            done.set_result(conn)

        def failed(exc: BaseException) -> None:
            if done is not None and not done.done():
                done.set_exception(exc)

        handshake: asyncio.Future[None] | None = None
        stacked: list[Any] = []
        if tls is not None:  # the engine's connection carries the SSL protocol
            handshake = loop.create_future()
            protocol_factory, stacked = stack_factory(tls, loop, protocol_factory, handshake,
                                                      server_side)
        factory = functools.partial(_Conn, loop, protocol_factory, made, failed)
        self._px_engine().connect(host, port, factory, **kwargs)
        try:
            conn = await done
        finally:
            # The error's traceback holds this frame: no cycle through the future.
            del factory
            done = None  # type: ignore[assignment]
        assert conn.tr is not None
        if handshake is None:
            return conn.tr, conn.proto
        try:
            await handshake
        except BaseException:
            conn.tr.close()
            raise
        ssl_proto, app = stacked
        return ssl_proto._app_transport, app


def _listener(engine: Any, loop: Any, protocol_factory: Callable[[], Any],
              socks: list[socket.socket], tls: TlsOptions | None) -> Callable[[Server], None]:
    """What starts a server: its listening sockets handed to the engine (a
    duplicate each; a Unix socket's is shared by every worker)."""
    def listen(server: Server) -> None:
        conn_factory = _ServerConnFactory(loop, protocol_factory, server, tls)
        for s in socks:
            addr = s.getsockname()
            host, port = addr[:2] if s.family != socket.AF_UNIX else ("", 0)
            engine.listen(host, port, conn_factory, s.dup().detach())
    return listen


class _ServerConnFactory:
    """Makes the engine's protocol object of each accepted connection."""

    output_backpressure = False

    def __init__(self, loop: Any, factory: Callable[[], Any], server: Server,
                 tls: TlsOptions | None = None) -> None:
        self.loop = loop
        self.factory = factory
        self.server = server
        self.tls = tls

    def __call__(self) -> _Conn:
        loop = self._loop_here()
        f = _ServerProto(self.factory, self.server, loop, self.tls)
        return _Conn(loop, f)

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
    """protocol_factory with its server, for _Conn; with TLS, the app's
    protocol is carried by an SSL protocol (the server side of the handshake)."""

    def __init__(self, factory: Callable[[], Any], server: Server, loop: Any,
                 tls: TlsOptions | None) -> None:
        self.factory = factory
        self._px_server = server
        self.loop = loop
        self.tls = tls

    def __call__(self) -> Any:
        if self.tls is None:
            return self.factory()
        return self.tls.protocol(self.loop, self.factory(), None, server_side=True)
