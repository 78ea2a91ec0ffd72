"""PyParallel's other protocol callbacks and the in-flight counters.

    python names_app.py [--workers K]

events    echoes; records, per client port, the callbacks it got:
          ``server_started``, ``client_created``, ``connection_made``,
          ``data_received``, ``connection_closed``, ``send_failed:ERRNO``,
          ``recv_failed:ERRNO``, ``connection_lost:ERRNO`` (0: no error)
stream    the same records; pauses reading and streams 64 KiB chunks from
          send_complete (a slow or vanished reader makes sends wait or fail)
dial      ``PORT``: makes an outgoing connection to PORT (its callbacks
          recorded under ``outgoing``; it closes once connected), closes
log       answers the records as one JSON line and closes
hog       a callback that blocks until ``release`` is connected to (or 30 s),
          then answers ``done``
release   lets the hog go
activity  answers {active_hogs, active_count, active_contexts, gmtime,
          cpu_count} as one JSON line and closes
slow_activity
          the same, asked after 50 ms in the callback
plain, throughput, concurrency, low_latency
          answer {nodelay, sndbuf, rcvbuf} of their socket (no switch, and
          each of PyParallel's switches) as one JSON line and close
lines     lines_mode: answers each line as <line>
created_raises
          client_created raises; records what exception_handler got
factory_events, factory_stream
          events and stream registered through factories (an object with
          its own server_started, a function): the other callbacks are
          the instance's
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any

from _common import int_arg, serve

import pyparallel as px

_lock = threading.Lock()
_events: dict[str, list[str]] = {}
_release = threading.Event()


def record(key: object, what: str) -> None:
    with _lock:
        _events.setdefault(str(key), []).append(what)


def port_of(transport: px.Transport) -> int:
    peer = transport.peername
    return peer[1] if peer else -1


def errno_of(exc: Any) -> int:
    return int(getattr(exc, "errno", 0) or 0) if exc is not None else 0


class Recorded:
    """Records its callbacks under its client's port (taken in client_created:
    peername is gone once the connection closed)."""

    def __init__(self) -> None:
        self.port = -1
        self.failure: BaseException | None = None

    def server_started(self, server: Any) -> None:
        record("servers", f"server_started:{server.port}")

    def client_created(self, transport: px.Transport) -> None:
        self.port = port_of(transport)
        record(self.port, "client_created")

    def connection_made(self, transport: px.Transport) -> None:
        record(self.port, "connection_made")

    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        record(self.port, "data_received")
        return data

    def connection_closed(self, transport: px.Transport) -> None:
        record(self.port, "connection_closed")

    def send_failed(self, transport: px.Transport, exc: BaseException) -> None:
        self.failure = exc
        record(self.port, f"send_failed:{errno_of(exc)}")

    def recv_failed(self, transport: px.Transport, exc: BaseException) -> None:
        self.failure = exc
        record(self.port, f"recv_failed:{errno_of(exc)}")

    def connection_lost(self, transport: px.Transport, exc: BaseException | None) -> None:
        if self.failure is not None:  # under a key of its own: is it the same exception?
            record(f"{self.port}:same", str(exc is self.failure))
        record(self.port, f"connection_lost:{errno_of(exc)}")


class CreatedRaises(Recorded):
    """client_created raises: its exception_handler is told so, and the
    connection closes."""

    def client_created(self, transport: px.Transport) -> None:
        self.port = port_of(transport)
        raise ValueError("no")

    def exception_handler(self, transport: px.Transport, syscall: str, info: Any) -> None:
        record(self.port, f"exception_handler:{syscall}:{info[0].__name__}")


class Outgoing(Recorded):
    """An outgoing connection's callbacks, recorded under ``outgoing``; it
    closes itself once connected."""

    def client_created(self, transport: px.Transport) -> None:
        self.port = "outgoing"  # type: ignore[assignment]
        record(self.port, "client_created")

    def connection_made(self, transport: px.Transport) -> None:
        record(self.port, "connection_made")
        transport.close()


class Dial:
    """``PORT``: makes an outgoing connection to that port, then closes."""

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        px.client("127.0.0.1", int(data), protocol=Outgoing)
        transport.close()


CHUNK = b"x" * 65536


class Stream(Recorded):
    def connection_made(self, transport: px.Transport) -> bytes:
        record(self.port, "connection_made")
        transport.pause_reading()
        return CHUNK

    def send_complete(self, transport: px.Transport, send_id: int) -> bytes:
        return CHUNK


class Log:
    def connection_made(self, transport: px.Transport) -> None:
        with _lock:
            text = json.dumps(_events)
        transport.send(text.encode() + b"\n")
        transport.close()


class Hog:
    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        _release.wait(30)
        return b"done\n"


class Release:
    def connection_made(self, transport: px.Transport) -> None:
        _release.set()
        transport.close()


class Activity:
    def connection_made(self, transport: px.Transport) -> None:
        info = {"active_hogs": px.active_hogs(), "active_count": px.active_count(),
                "active_contexts": px.active_contexts(), "gmtime": px.gmtime(),
                "cpu_count": px.cpu_count()}
        transport.send(json.dumps(info).encode() + b"\n")
        transport.close()


class SlowActivity(Activity):
    """Asks only after taking longer than a hand-off: it must not count itself."""

    def connection_made(self, transport: px.Transport) -> None:
        time.sleep(0.05)
        super().connection_made(transport)


def socket_of(transport: px.Transport) -> socket.socket:
    """A duplicate of the transport's socket, found by its two addresses."""
    for name in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            if (s.getsockname(), s.getpeername()) == (transport.sockname, transport.peername):
                return s
        except OSError:
            pass
        s.close()
    raise LookupError("no descriptor of this connection")


class Tuned:
    """Answers how its socket was set up: TCP_NODELAY, SO_SNDBUF, SO_RCVBUF."""

    def connection_made(self, transport: px.Transport) -> None:
        with socket_of(transport) as s:
            info = {"nodelay": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                    "sndbuf": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                    "rcvbuf": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}
        transport.send(json.dumps(info).encode() + b"\n")
        transport.close()


class Throughput(Tuned):
    throughput = True


class Concurrency(Tuned):
    concurrency = True


class LowLatency(Tuned):
    low_latency = True


class Lines:
    lines_mode = True  # the original's spelling of line_mode

    def lines_received(self, transport: px.Transport, lines: list[bytes]) -> bytes:
        return b"".join(b"<%s>" % line for line in lines)


class EventsFactory:
    """A factory object: its own server_started is called once per server."""

    def server_started(self, server: Any) -> None:
        record("servers", f"server_started:{server.port}")

    def __call__(self) -> Recorded:
        return Recorded()


def stream_factory() -> Stream:
    return Stream()


if __name__ == "__main__":
    serve("names", {"events": Recorded, "dial": Dial, "stream": Stream, "log": Log, "hog": Hog,
                    "release": Release, "activity": Activity, "slow_activity": SlowActivity,
                    "plain": Tuned,
                    "throughput": Throughput, "concurrency": Concurrency,
                    "low_latency": LowLatency, "lines": Lines,
                    "created_raises": CreatedRaises, "factory_events": EventsFactory(),
                    "factory_stream": stream_factory},
          workers=int_arg("--workers", 2))
