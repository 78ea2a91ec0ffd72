"""A server on a given port, for the tests of a port that another process
serves: echoes each line, prints its counters at exit.

    python port_user.py PORT [--reuse-port]
"""

from __future__ import annotations

import json
import sys

from _common import HOST, say, totals

import pyparallel as px


class Echo:
    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        return data


if __name__ == "__main__":
    server = px.server(HOST, int(sys.argv[1]), reuse_port="--reuse-port" in sys.argv)
    px.register(transport=server, protocol=Echo)
    eng = px.engine()
    say(f"port: listening on {HOST}:{server.port}")
    try:
        px.run()
    finally:
        say("STATS " + json.dumps(totals(eng)))
