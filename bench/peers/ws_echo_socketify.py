"""WebSocket echo on socketify (bench/ws_bench.py).

    python ws_echo_socketify.py PORT [deflate]

deflate: permessage-deflate with socketify's shared compressor (no context
kept between messages, as pyparallel answers).
"""

import sys

from socketify import App, CompressOptions, OpCode

port = int(sys.argv[1])
app = App()


def message(ws, data, opcode):
    ws.send(data, OpCode.TEXT if isinstance(data, str) else OpCode.BINARY)


compression = (CompressOptions.SHARED_COMPRESSOR if sys.argv[2:] == ["deflate"]
               else CompressOptions.DISABLED)
app.ws("/*", {"compression": compression, "message": message})
app.listen(port, lambda config: print(f"listening on 127.0.0.1:{port}", flush=True))
app.run()
