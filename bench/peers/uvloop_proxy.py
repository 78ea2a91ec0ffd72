"""The proxy benchmark's asyncio peer: the same TCP proxy as
``pyparallel.examples.proxy`` written on asyncio Protocols, run on uvloop.

    python uvloop_proxy.py --port N --upstream HOST:PORT [--loop uvloop|asyncio]

Each client gets its own upstream connection; data both ways; a side whose
write buffer passes its high-water mark pauses reading on the other side
(pause_writing/resume_writing), half-close is carried (eof_received keeps
the transport open and write_eof()s the other side), a close closes the
other side after its buffer is written.
"""

from __future__ import annotations

import argparse
import asyncio
import signal


class _Side(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []  # read before the peer was connected
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
        else:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.write_eof()
        else:
            self.eof = True
        return True  # keep sending the other way

    def pause_writing(self) -> None:  # our buffer is full: stop reading the other side
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class Client(_Side):
    upstream = ("127.0.0.1", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        up = _Side()
        up.peer, self.peer = self, up
        loop = asyncio.get_running_loop()
        loop.create_task(self._connect(up))

    async def _connect(self, up: _Side) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: up, *self.upstream)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        assert up.transport is not None
        if self.pending:
            up.transport.write(b"".join(self.pending))
            self.pending = []
        if self.eof:
            up.transport.write_eof()
        if self.transport is not None and self.transport.is_closing():
            up.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    Client.upstream = (host, int(port))

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Client, "127.0.0.1", args.port, backlog=4096)
        print(f"{args.loop}_proxy: listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}",
              flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with server:
            await stop.wait()

    if args.loop == "uvloop":
        import uvloop
        uvloop.run(serve())
    else:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
