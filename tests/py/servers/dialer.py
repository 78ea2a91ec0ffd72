"""Clients made inside callbacks (servers/dialer.py [--workers N] [--worker any|caller]).

Ports: ``echo`` (echoes), ``dial`` (each connection's connection_made calls
px.client(DIAL_HOST, echo port, worker=...) and returns at once; the new
connection says ``up`` and, echoed, prints ``DIAL n caller=W up=W``, or, if it
failed, ``DIAL n failed Type: message``). DIAL_HOST (default 127.0.0.1) may be
a name of the test hook PX_TEST_RESOLVE.
"""

from __future__ import annotations

import itertools
import os
import sys

from _common import int_arg, say, serve

import pyparallel as px

_numbers = itertools.count()
_ports: dict[str, int] = {}


class Echo:
    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        return data


class Up:
    def __init__(self, n: int, caller: int) -> None:
        self.n = n
        self.caller = caller

    def connection_made(self, transport: px.Transport) -> bytes:
        return b"up"

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        say(f"DIAL {self.n} caller={self.caller} up={transport.worker}")
        transport.close()

    def connection_failed(self, exc: BaseException) -> None:
        say(f"DIAL {self.n} failed {type(exc).__name__}: {exc}")


class Dial:
    def connection_made(self, transport: px.Transport) -> None:
        n, caller = next(_numbers), transport.worker
        say(f"DIALING {n}")
        px.client(os.environ.get("DIAL_HOST", "127.0.0.1"), _ports["echo"],
                  lambda: Up(n, caller), worker=WORKER)

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        return None


WORKER = sys.argv[sys.argv.index("--worker") + 1] if "--worker" in sys.argv else "any"

if __name__ == "__main__":
    real_register = px.register

    def register_noting_port(transport, protocol, share=True):  # type: ignore[no-untyped-def]
        endpoint = real_register(transport=transport, protocol=protocol, share=share)
        if protocol is Echo:
            _ports["echo"] = endpoint.port
        return endpoint

    px.register = register_noting_port
    serve("dialer", {"echo": Echo, "dial": Dial}, workers=int_arg("--workers", 1))
