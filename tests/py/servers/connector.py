"""Outbound connections (px.client) and how they end, in an engine of their own.

    python connector.py fail HOST PORT [TIMEOUT]   one client from the main
        thread; run() re-raises why it failed: ``RAISED Type: message``,
        then ``ELAPSED seconds``
    python connector.py failed-cb HOST PORT        the same, reported to the
        protocol's connection_failed: ``FAILED Type: message``
    python connector.py ok HOST PORT               one client of the echo
        server this script runs on PORT (0: a free one) on 127.0.0.1:
        ``CONNECTED peer`` once echoed
    python connector.py caller-outside             worker='caller' from the
        main thread: ``REFUSED ValueError: ...``
    python connector.py freed PORT                 200 clients made by factories
        (closures holding an object each), to the echo server this script
        runs and to a refused PORT: ``ALIVE n`` counts the objects still
        alive once all are done (the engine keeps nothing of a finished client)

Names may be answered by the engine's test hook PX_TEST_RESOLVE.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
import weakref

from _common import HOST, say, totals

import pyparallel as px

_serving = sys.argv[1] == "ok"  # a server keeps run() going: the client ends it


class Once:
    def connection_made(self, transport: px.Transport) -> bytes:
        return b"ping"

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        say(f"CONNECTED {transport.peername[0]}")
        transport.close()
        if _serving:
            px.shutdown()


class OnceReported(Once):
    def connection_failed(self, exc: BaseException) -> None:
        say(f"FAILED {type(exc).__name__}: {exc}")


class Echo:
    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        return data


def main() -> None:
    mode = sys.argv[1]
    eng = px.engine(2)
    if mode == "caller-outside":
        try:
            px.client(HOST, 9, Once, worker="caller")
        except ValueError as exc:
            say(f"REFUSED ValueError: {exc}")
        return
    if mode == "freed":
        freed(int(sys.argv[2]))
        return
    host, port = sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    if mode == "ok":
        server = px.server(HOST, port)
        port = server.port
        px.register(transport=server, protocol=Echo)
    protocol = OnceReported if mode == "failed-cb" else Once
    start = time.monotonic()
    px.client(host, port, protocol, timeout=timeout, attempt_delay=0.1)
    try:
        px.run()
        say("RUN returned")
    except Exception as exc:
        say(f"RAISED {type(exc).__name__}: {exc}")
        px.run()  # the failed client is accounted for: this returns
    say(f"ELAPSED {time.monotonic() - start:.3f}")
    say("STATS " + json.dumps(totals(eng)))


class Held:
    """What a factory's closure holds: it dies with the closure."""


_done = {"count": 0}
_done_lock = threading.Lock()


class Quiet(Once):
    """Closes once echoed; the 200th client to end stops the engine."""

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        transport.close()

    def connection_lost(self, transport: px.Transport, exc: BaseException | None) -> None:
        self.ended()

    def connection_failed(self, exc: BaseException) -> None:
        self.ended()

    def ended(self) -> None:
        with _done_lock:
            _done["count"] += 1
            last = _done["count"] == 200
        if last:
            px.shutdown()


def freed(refused_port: int) -> None:
    refs = []
    server = px.register(transport=px.server(HOST, 0), protocol=Echo)
    for i in range(200):
        held = Held()
        refs.append(weakref.ref(held))
        port = server.port if i % 2 else refused_port
        px.client(HOST, port, lambda held=held: Quiet(), share=False)  # type: ignore[misc]
        del held
    px.run()
    gc.collect()
    say(f"ALIVE {sum(r() is not None for r in refs)}")


if __name__ == "__main__":
    main()
