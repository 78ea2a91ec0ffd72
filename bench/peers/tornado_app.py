"""TechEmpower /json and /plaintext on tornado.web, one process, asyncio's default loop.

    python tornado_app.py [--host HOST] [--port PORT]     (PORT 0 picks a free port)
"""

import argparse
import asyncio
import json
import signal

import tornado.httpserver
import tornado.netutil
import tornado.web

HELLO = b"Hello, World!"


class JsonHandler(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode())


class PlaintextHandler(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.finish(HELLO)


async def main(host: str, port: int) -> None:
    app = tornado.web.Application([(r"/json", JsonHandler), (r"/plaintext", PlaintextHandler)])
    server = tornado.httpserver.HTTPServer(app)
    sockets = tornado.netutil.bind_sockets(port, host, backlog=4096)
    server.add_sockets(sockets)
    print(f"tornado: listening on {host}:{sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    asyncio.run(main(args.host, args.port))
