"""Protocol factories: callables that return a protocol instance, registered
where a class would be (servers/factories.py [--workers N]).

Ports (PORTS line): ``lambda`` (a lambda returning an echo), ``partial``
(functools.partial of a class taking a greeting: connection_made sends it,
then echoes), ``object`` (an object whose __call__ makes the protocol),
``lines`` (a factory of a line_mode protocol, answering each line
upper-cased), ``raises`` (a factory that raises), ``none`` (returns None),
``notproto`` (returns an object with no protocol callback), ``http``
(returns an HttpServer instance). Exceptions re-raised by run() print
``RAISED ...`` and serving carries on.

A client registered with a factory connects to the ``lambda`` port once
serving starts, sends ``ping`` and prints ``CLIENT got b'ping'``.
"""

from __future__ import annotations

import functools
import sys

from _common import HOST, int_arg, say, serve

import pyparallel as px
from pyparallel.http import HttpServer


class Echo:
    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        return data


class Greeter(Echo):
    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting

    def connection_made(self, transport: px.Transport) -> bytes:
        return self.greeting


class Factory:
    """A factory object: each call makes a protocol that knows its number."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> Greeter:
        self.made += 1
        return Greeter(b"made %d\n" % self.made)


class Upper:
    line_mode = True

    def lines_received(self, transport: px.Transport, lines: list[bytes]) -> bytes:
        return b"".join(line.upper() + b"\n" for line in lines)


def raises() -> Echo:
    raise ValueError("factory refused the connection")


class Pinger:
    def connection_made(self, transport: px.Transport) -> bytes:
        return b"ping"

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        say(f"CLIENT got {data!r}")
        transport.close()


class App(HttpServer):
    pass


if __name__ == "__main__":
    protocols = {
        "lambda": lambda: Echo(),
        "partial": functools.partial(Greeter, b"hello\n"),
        "object": Factory(),
        "lines": lambda: Upper(),
        "raises": raises,
        "none": lambda: None,
        "notproto": lambda: object(),
        "http": lambda: App(),
    }
    if "--client" in sys.argv:
        # The client dials the first server (serve() registers "lambda" first).
        real_register = px.register

        def register_and_dial(transport, protocol, share=True):  # type: ignore[no-untyped-def]
            endpoint = real_register(transport=transport, protocol=protocol, share=share)
            if protocol is protocols["lambda"]:
                real_register(transport=px.client(HOST, endpoint.port),
                              protocol=lambda: Pinger())
            return endpoint

        px.register = register_and_dial
    serve("factories", protocols, workers=int_arg("--workers", 2),  # type: ignore[arg-type]
          rerun_after_error=True)
