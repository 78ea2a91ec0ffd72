"""TLS on a pyparallel.asyncio loop: create_server(ssl=), create_connection(ssl=)
and start_tls() (asyncio.start_server/open_connection with ssl use them).

The record layer is asyncio's own (:class:`asyncio.sslproto.SSLProtocol`, a
buffered protocol over the standard ``ssl`` module's memory BIOs), stacked on
the engine's connection as selector loops stack it on a socket: the engine
moves ciphertext, the SSL protocol gives the app's protocol plaintext through
its own transport. Handshake and shutdown timeouts, certificates, SNI and ALPN
are the ``ssl.SSLContext``'s, as with any asyncio loop.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

__all__ = ["TlsOptions", "check_client", "check_server", "stack_factory"]


class TlsOptions:
    """What one create_server/create_connection was given for TLS."""

    __slots__ = ("context", "handshake_timeout", "server_hostname", "shutdown_timeout")

    def __init__(self, context: _ssl.SSLContext | None, server_hostname: str | None,
                 handshake_timeout: float | None, shutdown_timeout: float | None) -> None:
        self.context = context
        self.server_hostname = server_hostname
        self.handshake_timeout = handshake_timeout
        self.shutdown_timeout = shutdown_timeout

    def protocol(self, loop: Any, app_protocol: asyncio.BaseProtocol,
                 waiter: asyncio.Future[None] | None, server_side: bool) -> Any:
        """The SSL protocol carrying app_protocol on loop (a default context
        when none was given; no waiter for a server's connections)."""
        make: Any = sslproto.SSLProtocol  # typeshed wants neither None
        return make(
            loop, app_protocol, self.context, waiter, server_side,
            None if server_side else self.server_hostname,
            ssl_handshake_timeout=self.handshake_timeout,
            ssl_shutdown_timeout=self.shutdown_timeout)


def _check_timeouts(ssl: Any, handshake: float | None, shutdown: float | None) -> None:
    if handshake is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if shutdown is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


def check_server(ssl: Any, handshake: float | None,
                 shutdown: float | None) -> TlsOptions | None:
    """create_server's TLS arguments, checked as asyncio checks them."""
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    _check_timeouts(ssl, handshake, shutdown)
    if ssl is None:
        return None
    return TlsOptions(ssl, None, handshake, shutdown)


def check_client(ssl: Any, host: str | None, server_hostname: str | None,
                 handshake: float | None, shutdown: float | None) -> TlsOptions | None:
    """create_connection's TLS arguments, checked as asyncio checks them:
    the host names the server when server_hostname does not ('' checks no
    name); ssl=True is a default client context."""
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    _check_timeouts(ssl, handshake, shutdown)
    if not ssl:
        return None
    if server_hostname is None:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    context = None if isinstance(ssl, bool) else ssl  # None: SSLProtocol makes the default
    return TlsOptions(context, server_hostname, handshake, shutdown)


def stack_factory(options: TlsOptions, loop: Any,
                  protocol_factory: Callable[[], asyncio.BaseProtocol],
                  waiter: asyncio.Future[None],
                  server_side: bool) -> tuple[Callable[[], Any], list[Any]]:
    """A protocol factory for the engine's connection that stacks the SSL
    protocol on it, and the list its (SSL, app) protocols are put in."""
    made: list[Any] = []

    def factory() -> Any:
        app = protocol_factory()
        proto = options.protocol(loop, app, waiter, server_side)
        made[:] = [proto, app]
        return proto

    return factory, made
