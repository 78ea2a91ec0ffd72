"""Clients (px.client) in an engine of their own.

    python client.py remote PORT COUNT     COUNT clients of an echo server on PORT;
                                           no server here, so run() returns by
                                           itself once every client has closed
    python client.py local COUNT           an echo server and COUNT clients of it
                                           in the same engine; the last client to
                                           finish calls px.shutdown()
    python client.py refused PORT          one client of a port nobody listens on

Each client sends a payload unique to it (initial_bytes_to_send), checks the
echo and closes; connection_lost prints ``CLIENT ok|bad N exc``.
"""

from __future__ import annotations

import json
import sys
import threading

from _common import HOST, say, totals

import pyparallel as px

SIZE = 200_000
_lock = threading.Lock()
_state = {"next": 0, "left": 0}


def payload(n: int) -> bytes:
    return (b"client %d;" % n) * (SIZE // 12)


class EchoClient:
    def __init__(self):
        with _lock:
            self.n = _state["next"]
            _state["next"] += 1
        self.want = payload(self.n)
        self.got = bytearray()

    def initial_bytes_to_send(self):
        return self.want

    def data_received(self, transport, data):
        self.got += data
        if len(self.got) >= len(self.want):
            transport.close()

    def connection_lost(self, transport, exc):
        say(f"CLIENT {'ok' if self.got == self.want else 'bad'} {self.n} {exc!r}")
        if LOCAL:
            with _lock:
                _state["left"] -= 1
                last = _state["left"] == 0
            if last:
                px.shutdown()


class Echo:
    def data_received(self, transport, data):
        return data


LOCAL = sys.argv[1] == "local"

if __name__ == "__main__":
    mode = sys.argv[1]
    eng = px.engine(2)
    if mode == "local":
        count = int(sys.argv[2])
        _state["left"] = count
        server = px.register(transport=px.server(HOST, 0), protocol=Echo)
        port = server.port
    else:
        port = int(sys.argv[2])
        count = int(sys.argv[3]) if mode == "remote" else 1
    for _ in range(count):
        px.register(transport=px.client(HOST, port), protocol=EchoClient)
    try:
        px.run()
        say("RUN returned")
    except Exception as exc:
        say(f"RAISED {type(exc).__name__}: {exc}")
        px.run()  # the failed client is accounted for: this returns
        say("RUN returned")
    finally:
        say("STATS " + json.dumps(totals(eng)))
