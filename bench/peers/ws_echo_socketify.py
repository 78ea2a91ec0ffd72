"""WebSocket echo on socketify (bench/ws_bench.py).

    python ws_echo_socketify.py PORT
"""

import sys

from socketify import App, CompressOptions, OpCode

port = int(sys.argv[1])
app = App()


def message(ws, data, opcode):
    ws.send(data, OpCode.TEXT if isinstance(data, str) else OpCode.BINARY)


app.ws("/*", {"compression": CompressOptions.DISABLED, "message": message})
app.listen(port, lambda config: print(f"listening on 127.0.0.1:{port}", flush=True))
app.run()
