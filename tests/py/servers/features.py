"""One engine serving a protocol per feature under test, each on its own port.

    python features.py [--workers K] [--file PATH]

Protocols that want to be observed print ``LOST name port exc`` from
connection_lost, where port is the client's port (the peer of the server side).
"""

from __future__ import annotations

import json
import sys

from _common import int_arg, say, serve

import pyparallel as px

FILE = sys.argv[sys.argv.index("--file") + 1] if "--file" in sys.argv else None


def report_lost(name: str, transport: px.Transport, exc: BaseException | None) -> None:
    say(f"LOST {name} {getattr(transport.protocol, 'peer_port', None)} {exc!r}")


class InitialBytes:
    """initial_bytes_to_send as bytes: sent on connect; then echo."""

    initial_bytes_to_send = b"welcome\r\n"

    def data_received(self, transport, data):
        return data


class InitialCallable:
    """initial_bytes_to_send as a method: runs per connection, inside a callback."""

    def initial_bytes_to_send(self):
        t = px.transport()
        return b"hello %d\n" % t.peername[1]




class NextBytes:
    """next_bytes_to_send as a method: a fresh counter value per message received."""

    def __init__(self):
        self.n = 0

    def next_bytes_to_send(self):
        self.n += 1
        return b"%d\n" % self.n


class NextBytesStatic:
    """next_bytes_to_send as bytes: the same reply to every message."""

    next_bytes_to_send = b"ack\n"


class Lines:
    """line_mode: complete lines (CR LF or LF stripped) upper-cased, as a list."""

    line_mode = True
    max_line_length = 32

    def lines_received(self, transport, lines):
        return [line.upper() + b"\n" for line in lines]


class Streaming:
    """send_complete: 40 numbered chunks, each queued when the previous one drained."""

    CHUNKS = 40

    @staticmethod
    def chunk(i: int) -> bytes:
        return (b"%06d:" % i) * 10000  # 70 kB

    def connection_made(self, transport):
        self.ids = []
        return self.chunk(0)

    def send_complete(self, transport, send_id):
        self.ids.append(send_id)
        if send_id < self.CHUNKS:
            return self.chunk(send_id)
        transport.send(b"ids " + json.dumps(self.ids).encode() + b"\n")
        transport.close()
        return None


class Sendables:
    """Every kind of sendable, chosen by the first byte of the request."""

    REPLIES = {
        b"t": lambda: (b"tu", bytearray(b"p"), memoryview(b"le"), "!"),
        b"l": lambda: [bytes([65 + i % 26]) * (i % 7 + 1) for i in range(200)],
        b"s": lambda: "h\u00e9llo \u2713 \U0001F600",
        b"m": lambda: memoryview(b"0123456789")[2:7],
        b"b": lambda: bytearray(b"bytearray"),
        b"e": lambda: (),
        b"x": lambda: b"x" * 1_000_000,
    }

    def data_received(self, transport, data):
        if len(data) == 1:
            return self.REPLIES[data]()  # the returned value is sent
        for i in range(len(data)):  # requests that arrived together
            transport.send(self.REPLIES[data[i:i + 1]]())
        return None


class SendFile:
    """Request "OFFSET COUNT\\n" (COUNT may be "-") -> <file range> framed by markers."""

    line_mode = True

    def lines_received(self, transport, lines):
        out = []
        for line in lines:
            offset, count = line.split()
            out.append(px.sendfile(FILE, int(offset), None if count == b"-" else int(count),
                                   before=b"<<", after=b">>"))
        return out


class RateLimited:
    """rate_limit: after each receive, reading pauses for 0.2 s; echo."""

    rate_limit = 0.2

    def data_received(self, transport, data):
        return data


class Lost:
    """connection_lost reports how the connection ended; echo."""

    def connection_made(self, transport):
        self.peer_port = transport.peername[1]

    def data_received(self, transport, data):
        return data

    def connection_lost(self, transport, exc):
        report_lost("lost", transport, exc)


class WhoAmI:
    """Replies with what the transport knows about the connection, as JSON."""

    def data_received(self, transport, data):
        return json.dumps({
            "peername": list(transport.peername),
            "sockname": list(transport.sockname),
            "extra_peername": list(transport.get_extra_info("peername")),
            "current_is_transport": px.transport() is transport,
            "protocol_is_self": transport.protocol is self,
            "worker": transport.worker,
            "id": transport.id,
            "closed": transport.closed,
        }).encode() + b"\n"


PROTOCOLS = {
    "initial": InitialBytes,
    "initial_callable": InitialCallable,
    "next": NextBytes,
    "next_static": NextBytesStatic,
    "lines": Lines,
    "streaming": Streaming,
    "sendables": Sendables,
    "sendfile": SendFile,
    "rate": RateLimited,
    "lost": Lost,
    "whoami": WhoAmI,
}

if __name__ == "__main__":
    serve("features", PROTOCOLS, workers=int_arg("--workers", 2), rerun_after_error=True)
