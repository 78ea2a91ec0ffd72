"""A TCP proxy: every client gets a connection of its own to the upstream,
and bytes flow both ways between the two.

    python -m pyparallel.examples.proxy --port N --upstream HOST:PORT [--workers K]

The upstream connection is made with :func:`pyparallel.client` from the
client's ``connection_made``; its callbacks run on whatever worker the engine
chooses, so the two sides of a pair often live on different workers and each
side sends on the other's transport from its own thread.

Backpressure, both ways: when the side bytes go to holds more than
``HIGH_WATER`` unsent bytes (or refuses a send from another thread, as a
transport over its high-water mark does), the side they come from stops
reading; the full side's ``send_complete`` (its output drained) sends what was
held back and resumes the reader. A slow reader on either side thus holds at
most about ``HIGH_WATER`` plus one receive per direction in the proxy. Both
protocols set ``output_backpressure = False``: the engine's own pause (a
connection over its high-water mark stops reading) would tie the directions
together, so that a download the client does not read yet stops its upload.

Half-close, both ways: a side that ends its stream (``recv_shutdown``) has
the other side's sending shut (``shutdown_send``) once what it sent before
has left; each connection closes when both directions are over. A side that
closes closes the other after its queued bytes are sent. An upstream that
cannot be reached closes the client, and the reason is logged.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

import pyparallel as px

__all__ = ["Client", "HIGH_WATER", "Upstream", "main"]

# Unsent bytes on one side above which the other side stops reading.
HIGH_WATER = 1 << 20

_log = logging.getLogger("pyparallel.examples.proxy")


def _addr(addr: Any) -> str:
    if not addr:
        return "?"
    host = addr[0]
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


class _Flow:
    """One direction of a pair: bytes read on ``src`` are sent on ``dst``.

    ``forward`` runs on src's worker, ``drained`` on dst's; the lock makes a
    pause decided in one and the drain seen by the other happen in one order,
    so that a pause is always followed by the drain that lifts it."""

    __slots__ = ("lock", "src", "dst", "held", "paused", "eof", "close_after")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.src: px.Transport | None = None
        self.dst: px.Transport | None = None
        self.held: list[bytes] = []   # refused by dst, or read before dst existed
        self.paused = False           # src stopped reading because of dst
        self.eof = False              # src ended: shut dst's sending once held is sent
        self.close_after = False      # src closed: close dst once held is sent

    def forward(self, data: bytes) -> None:
        with self.lock:
            dst = self.dst
            if dst is None or self.held:
                self.held.append(data)  # in order behind what waits already
                return
            try:
                taken = dst.send(data)
            except ConnectionError:
                return  # dst is gone: its connection_lost closes src
            if not taken:
                self.held.append(data)
            if not taken or dst.unsent > HIGH_WATER:
                self._pause()

    def _pause(self) -> None:
        if not self.paused and self.src is not None:
            self.paused = True
            try:
                self.src.pause_reading()
            except ConnectionError:
                pass

    def drained(self) -> None:
        """dst's output drained: send what was held, then read src again."""
        with self.lock:
            self._flush()
            if self.paused and not self.held:
                self.paused = False
                try:
                    if self.src is not None:
                        self.src.resume_reading()
                except ConnectionError:
                    pass

    def _flush(self) -> None:
        """Under the lock: held bytes, then a pending end or close, to dst."""
        dst = self.dst
        if dst is None:
            return
        try:
            if self.held:
                if not dst.send(tuple(self.held)):
                    return  # over the mark again: the next drain comes back here
                self.held = []
            if self.close_after:
                dst.close()
            elif self.eof:
                dst.shutdown_send()
        except ConnectionError:
            self.held = []

    def connected(self, dst: px.Transport) -> None:
        """dst is there: send what src read meanwhile, then let src read
        (src was paused until now) unless dst is already full."""
        with self.lock:
            self.dst = dst
            self._flush()
            if self.held or dst.unsent > HIGH_WATER:
                self.paused = True  # src stays paused: dst's drain resumes it
                return
            if self.src is not None and not self.paused:
                try:
                    self.src.resume_reading()
                except ConnectionError:
                    pass  # closed meanwhile: its connection_lost closes dst

    def src_ended(self) -> None:
        with self.lock:
            self.eof = True
            if not self.held:
                self._flush()

    def src_closed(self) -> None:
        with self.lock:
            self.close_after = True
            if not self.held:
                self._flush()


class _Pair:
    """A client and its upstream connection."""

    __slots__ = ("up", "down", "client", "lock", "client_gone")

    def __init__(self, client: px.Transport) -> None:
        self.up = _Flow()    # client -> upstream
        self.down = _Flow()  # upstream -> client
        self.up.src = self.down.dst = client
        self.client = client
        self.lock = threading.Lock()
        self.client_gone = False


class Upstream:
    """The proxy's connection to the upstream, for one client."""

    output_backpressure = False  # _Flow pauses the side the bytes come from

    def __init__(self, pair: _Pair, target: str) -> None:
        self.pair = pair
        self.target = target

    def connection_made(self, transport: px.Transport) -> None:
        pair = self.pair
        pair.down.src = transport
        pair.up.connected(transport)  # resumes the client unless the upstream is full
        with pair.lock:
            gone = pair.client_gone
        if gone:
            transport.close()
            return
        if _log.isEnabledFor(logging.INFO):
            _log.info("proxy: %s (worker %d) -> %s (worker %d)", _addr(pair.client.peername),
                     pair.client.worker, self.target, transport.worker)

    def connection_failed(self, exc: BaseException) -> None:
        _log.warning("proxy: client %s closed: upstream %s: %s: %s",
                    _addr(self.pair.client.peername), self.target, type(exc).__name__, exc)
        self.pair.client.close()

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        self.pair.down.forward(data)

    def send_complete(self, transport: px.Transport, send_id: int) -> None:
        self.pair.up.drained()

    def recv_shutdown(self, transport: px.Transport) -> None:
        self.pair.down.src_ended()

    def connection_lost(self, transport: px.Transport, exc: BaseException | None) -> None:
        self.pair.down.src_closed()


class Client:
    """A client of the proxy: connects to ``upstream`` (host, port) and relays."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)
    output_backpressure = False  # _Flow pauses the side the bytes come from

    def connection_made(self, transport: px.Transport) -> None:
        self.pair = pair = _Pair(transport)
        host, port = self.upstream
        target = _addr((host, port))
        transport.pause_reading()  # until the upstream is there
        px.client(host, port, lambda: Upstream(pair, target))

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        self.pair.up.forward(data)

    def send_complete(self, transport: px.Transport, send_id: int) -> None:
        self.pair.down.drained()

    def recv_shutdown(self, transport: px.Transport) -> None:
        self.pair.up.src_ended()

    def connection_lost(self, transport: px.Transport, exc: BaseException | None) -> None:
        pair = self.pair
        with pair.lock:
            pair.client_gone = True
        pair.up.src_closed()


def _parse_upstream(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.examples.proxy",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--upstream", type=_parse_upstream, required=True, metavar="HOST:PORT")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker threads (default: PX_WORKERS or one per CPU)")
    parser.add_argument("--verbose", action="store_true", help="log every connection made")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s")
    Client.upstream = args.upstream
    try:
        server = px.server(args.host, args.port)
        # 64 KiB receives (io_uring): a quarter of the callbacks of the default
        # 16 KiB on bulk transfers, for the same buffer memory per worker.
        px.engine(args.workers, recv_buffer_size=64 << 10, recv_buffers=256)
    except OSError as e:
        raise SystemExit(f"proxy: {e}") from None
    px.register(transport=server, protocol=Client)
    print(f"proxy: listening on {args.host}:{server.port}", flush=True)
    px.run(workers=args.workers)


if __name__ == "__main__":
    main()
