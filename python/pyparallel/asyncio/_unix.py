"""Unix domain sockets on a pyparallel.asyncio loop: create_unix_server and
create_unix_connection (asyncio.start_unix_server/open_unix_connection use
them), with TLS as over TCP.

The engine serves a Unix socket as it serves TCP: a server's socket is
accepted on by every worker of the engine (each a duplicate of the one
socket: a path cannot be bound twice as a port can), a client socket is
connected here and adopted by the engine. As asyncio's own Unix loop does, a
server bound to a path removes a stale socket file left there first and, by
default, removes its own file when it is closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from ._net import Server, _listener
from ._tls import check_client, check_server

__all__ = ["UnixNet"]

_log = logging.getLogger("asyncio")


def _bind_path(path: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first = path[0] if path else 0
    if first not in (0, "\0"):
        # a socket file left by a process that is gone
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            _log.error("Unable to check or remove stale UNIX socket %r: %r", path, err)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
        raise
    except BaseException:
        sock.close()
        raise
    return sock


def _unlinker(sock: socket.socket) -> Callable[[], None] | None:
    """What removes the server's socket file at close, if it is still the
    same file (not one a later server bound at the path)."""
    path = sock.getsockname()
    if not isinstance(path, str) or not path or path.startswith("\0"):
        return None
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return None

    def unlink() -> None:
        try:
            if os.stat(path).st_ino == inode:
                os.remove(path)
        except FileNotFoundError:
            pass
    return unlink


def _check_unix_stream(sock: socket.socket) -> None:
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")


class UnixNet:
    """create_unix_server/create_unix_connection for a loop whose I/O is an
    engine's (with :class:`._net.EngineNet`)."""

    async def create_unix_server(
            self, protocol_factory: Callable[[], asyncio.BaseProtocol],
            path: str | bytes | os.PathLike[str] | None = None, *,
            sock: socket.socket | None = None, backlog: int = 100, ssl: Any = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            start_serving: bool = True, cleanup_socket: bool = True) -> Server:
        tls = check_server(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            sock = _bind_path(os.fspath(path))
        elif sock is None:
            raise ValueError("path was not specified, and no sock specified")
        else:
            _check_unix_stream(sock)
        net: Any = self
        try:
            sock.listen(backlog)
            sock.setblocking(False)
            engine = net._px_engine()
            on_close = _unlinker(sock) if cleanup_socket else None
            server = Server(self, [sock],
                            _listener(engine, self, protocol_factory, [sock], tls), on_close)
        except BaseException:
            sock.close()
            raise
        if start_serving:
            server._px_start()
        return server

    async def create_unix_connection(
            self, protocol_factory: Callable[[], asyncio.BaseProtocol],
            path: str | bytes | os.PathLike[str] | None = None, *, ssl: Any = None,
            sock: socket.socket | None = None, server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        if ssl and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        tls = check_client(ssl, None, server_hostname, ssl_handshake_timeout,
                           ssl_shutdown_timeout)
        net: Any = self
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await net.sock_connect(sock, os.fspath(path))
            except BaseException:
                sock.close()
                raise
        elif sock is None:
            raise ValueError("no path and sock were specified")
        else:
            _check_unix_stream(sock)
            sock.setblocking(False)
        try:
            result: tuple[asyncio.Transport, asyncio.BaseProtocol] = \
                await net._px_take_socket(protocol_factory, sock, tls, False)
        finally:
            sock.close()  # detached once the engine has it: closes nothing then
        return result
