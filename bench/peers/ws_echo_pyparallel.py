"""WebSocket echo on pyparallel's HttpServer (bench/ws_bench.py).

    python ws_echo_pyparallel.py PORT [WORKERS]
"""

import sys

import pyparallel as px
from pyparallel.http import HttpServer, websocket


class Echo(HttpServer):
    @websocket("/", ping_interval=None)
    def echo(self, ws, message):
        return message


if __name__ == "__main__":
    port = int(sys.argv[1])
    px.register(transport=px.server("127.0.0.1", port), protocol=Echo)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    px.run(workers=int(sys.argv[2]) if len(sys.argv) > 2 else 1)
