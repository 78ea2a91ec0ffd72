"""Hold many idle HTTP/1.1 keep-alive connections open against one server.

Opens CONNS connections to HOST:PORT, sends one ``GET PATH`` on each, reads each
full response (head plus Content-Length bytes of body), and keeps every
connection open. Then it prints one line::

    ready opened=15000 failed=0 non200=0 seconds=1.83

and waits until a line arrives on standard input (or HOLD seconds pass), so the
caller can measure the server in the meantime. Before exiting it checks which
connections the server closed (or wrote to) while they were idle and prints::

    done closed_by_server=0

The soft RLIMIT_NOFILE is raised to the hard limit first.

    python bench/http_idle.py --port 8080 [--conns 15000] [--path /plaintext] [--hold 120]
"""

from __future__ import annotations

import argparse
import resource
import select
import socket
import sys
import time

BATCH = 100  # connections opened, then asked, then read, at a time


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def read_response(sock: socket.socket) -> int:
    """Read one response with a Content-Length body; return its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head ended")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(max(length - len(body), 4096))
        if not chunk:
            raise ConnectionError("closed inside the response body")
        body += chunk
    if len(body) != length:
        raise ConnectionError("more bytes than Content-Length (unexpected)")
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=15000)
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--hold", type=float, default=120.0,
                    help="longest time to keep the connections open (seconds)")
    args = ap.parse_args(argv)

    limit = raise_nofile()
    if args.conns + 16 > limit:
        print(f"http_idle: {args.conns} connections need more than the {limit} open files "
              "allowed", file=sys.stderr)
        return 1

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n").encode()
    socks: list[socket.socket] = []
    failed = non200 = 0
    t0 = time.monotonic()
    deadline = t0 + 60  # the opening phase is bounded too
    while len(socks) + failed < args.conns and time.monotonic() < deadline:
        batch = []
        for _ in range(min(BATCH, args.conns - len(socks) - failed)):
            try:
                s = socket.create_connection((args.host, args.port), timeout=5)
                s.sendall(request)
                batch.append(s)
            except OSError:
                failed += 1
        for s in batch:
            try:
                if read_response(s) != 200:
                    non200 += 1
                socks.append(s)
            except (OSError, ValueError, IndexError):
                failed += 1
                s.close()
        if failed > 100:  # the server is refusing: stop rather than hammer it
            break
    seconds = time.monotonic() - t0
    print(f"ready opened={len(socks)} failed={failed} non200={non200} seconds={seconds:.2f}",
          flush=True)

    # Hold until told to stop (a line or end of file on stdin), HOLD at most.
    select.select([sys.stdin], [], [], args.hold)

    # An idle connection has nothing to read: readable means closed (or written to).
    ep = select.epoll(len(socks) or 1)
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    closed = len(ep.poll(0, maxevents=len(socks) or 1))
    ep.close()
    print(f"done closed_by_server={closed}", flush=True)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
