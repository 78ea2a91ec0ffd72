"""The chat server of pyparallel.examples.chat on asyncio (uvloop's loop, or
asyncio's own), for bench/broadcast_bench.py.

    python chat_asyncio.py uvloop|asyncio [HOST] [PORT] [MAX_BACKLOG]

Every line a client sends goes to every client, the sender included; each read
is split into lines and its complete lines go to every client in one write.
The same limits as the example: a line over 4096 bytes closes the connection;
a client whose unsent output passes MAX_BACKLOG bytes (default 1 MiB) is
aborted. No join/leave notices (the example runs with --no-notices).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast

MAX_LINE = 4096


def main() -> None:
    kind = sys.argv[1]
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    max_backlog = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 20
    room: set[asyncio.Transport] = set()

    class Chat(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports are not asyncio.Transport subclasses
            transport = cast(asyncio.Transport, transport)
            self.transport = transport
            self.partial = b""
            room.add(transport)

        def data_received(self, data: bytes) -> None:
            data = self.partial + data
            end = data.rfind(b"\n") + 1
            self.partial = data[end:]
            if len(self.partial) > MAX_LINE:
                self.transport.close()
                return
            if not end:
                return
            lines = data[:end]
            for t in list(room):
                t.write(lines)
                if t.get_write_buffer_size() > max_backlog:
                    room.discard(t)
                    t.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            room.discard(self.transport)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Chat, host, port, backlog=4096)
        bound = server.sockets[0].getsockname()[1]
        print(f"{kind}: listening on {host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with server:
            await stop.wait()

    if kind == "uvloop":
        import uvloop
        uvloop.run(serve())
    else:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
