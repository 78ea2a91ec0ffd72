"""Instructions per HTTP request, counted by callgrind: a figure that does not
move with the machine's load, for comparing two versions of the server.

The server (an HttpServer with a Python ``/json`` handler, a ``{param}`` route
and a static route answered in C; one worker, epoll, since valgrind does not
run io_uring) runs under ``valgrind --tool=callgrind`` twice per endpoint: once
answering SMALL keep-alive requests, once LARGE. The difference of the two
programs' instruction totals divided by LARGE - SMALL is the cost of one request
with start-up and shutdown taken out (timers and collections still add noise:
run several times and read the spread).

    python bench/http_instructions.py [--small 2000] [--large 8000] [--runs 2]
                                      [--per-connection]

--per-connection serves the same app with ``per_connection = True`` (one app
instance per connection, made at its first request).
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
ENDPOINTS = ("/json", "/hello/pyparallel", "/plaintext-c")

APP = """
import sys
import pyparallel as px
from pyparallel.http import HttpServer, route

class App(HttpServer):
    per_connection = sys.argv[2:] == ["per_connection"]
    static_routes = {"/plaintext-c": ("text/plain", b"Hello, World!")}

    @route("/json")
    def json(self, request):
        return {"message": "Hello, World!"}

    @route("/hello/{name}")
    def hello(self, request, name):
        return b"Hello, World!"

px.register(transport=px.server("127.0.0.1", int(sys.argv[1])), protocol=App)
px.run(workers=1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def drive(port: int, path: str, n: int, timeout: float = 120.0, conns: int = 1) -> None:
    """n requests one after another over `conns` keep-alive connections
    taking turns (one by default)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socks = [socket.create_connection((HOST, port), timeout=timeout)]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    socks += [socket.create_connection((HOST, port), timeout=timeout) for _ in range(conns - 1)]
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    bufs = [b""] * len(socks)
    try:
        for i in range(n):
            k = i % len(socks)
            conn, buf = socks[k], bufs[k]
            conn.sendall(request)
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = buf[:end].lower()
                    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                    if len(buf) >= end + 4 + length:
                        buf = buf[end + 4 + length:]
                        break
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                buf += chunk
            bufs[k] = buf
    finally:
        for conn in socks:
            conn.close()


def total_instructions(out_prefix: str) -> int:
    total = 0
    for path in glob.glob(out_prefix + ".*"):
        with open(path) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    total += int(line.split()[1])
                    break
    return total


def count(app: str, path: str, n: int, workdir: str, extra: tuple[str, ...] = (),
          conns: int = 1) -> int:
    """Instructions of the server answering n requests (over conns
    connections); its callgrind files stay in workdir as cg-PORT.PID."""
    port = free_port()
    prefix = os.path.join(workdir, f"cg-{port}")
    env = dict(os.environ, PX_BACKEND="epoll")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p",
                             sys.executable, app, str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        drive(port, path, n, conns=conns)
    finally:
        proc.terminate()
        proc.wait(120)
    return total_instructions(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--per-connection", action="store_true",
                        help="one app instance per connection (HttpServer.per_connection)")
    args = parser.parse_args()
    if args.large <= args.small:
        parser.error("--large must be more than --small")
    with tempfile.TemporaryDirectory() as workdir:
        app = os.path.join(workdir, "app.py")
        with open(app, "w") as f:
            f.write(APP)
        extra = ("per_connection",) if args.per_connection else ()
        print(f"instructions per request (callgrind, epoll, 1 worker, "
              f"{args.large} - {args.small} requests{', per_connection' * bool(extra)})")
        for path in ENDPOINTS:
            per = []
            for _ in range(args.runs):
                small = count(app, path, args.small, workdir, extra)
                large = count(app, path, args.large, workdir, extra)
                per.append((large - small) / (args.large - args.small))
            print(f"  {path:20} " + "  ".join(f"{p:8,.0f}" for p in per))


if __name__ == "__main__":
    main()
