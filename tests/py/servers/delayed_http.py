"""A plain HTTP/1.1 server with known behaviour, for the load generator tests.

One thread per connection (so a slow answer never holds up another
connection), standard library only, so that what it does is independent of
the engine under test. Modes (``--mode``):

    delay        every request waits 1 ms (``time.sleep``, precise to tens of
                 microseconds) before its answer; every 1,000th request (the
                 500th, the 1,500th, ...) waits 50 ms instead
    close        reads each request, then closes without answering
    silent       reads requests and never answers
    status500    answers every request 500
    framing      answers in turn with Content-Length, a chunked body in pieces,
                 Connection: close, a body delimited by the close, a 100
                 Continue before a 204; heads and bodies are written in pieces

Prints ``delayed: listening on HOST:PORT``; at SIGTERM prints
``SERVED {"requests": N}`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
BODY = b'{"message":"Hello, World!"}'


class Counter:
    """Requests seen, over all connections."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.n = 0

    def next(self) -> int:
        with self.lock:
            self.n += 1
            return self.n


def ok(body: bytes = BODY, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def read_request(conn: socket.socket, buf: bytearray) -> bool:
    """Wait for one request head (the generator sends GETs without bodies)."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        buf += chunk
    del buf[:buf.index(b"\r\n\r\n") + 4]
    return True


def send_pieces(conn: socket.socket, *pieces: bytes) -> None:
    """Write pieces with tiny pauses, so the client sees them in separate reads."""
    for i, piece in enumerate(pieces):
        if i:
            time.sleep(0.002)
        conn.sendall(piece)


def framing_answer(conn: socket.socket, n: int) -> bool:
    """One of the framings in turn; False when the connection must close."""
    kind = n % 5
    if kind == 0:
        send_pieces(conn, b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 5\r\n\r\nhel", b"lo")
    elif kind == 1:
        send_pieces(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                    b"lo\r\n6\r\n world\r\n0\r\n", b"X-Trailer: 1\r\n\r\n")
    elif kind == 2:
        conn.sendall(ok(extra=b"Connection: close\r\n"))
        return False
    elif kind == 3:
        send_pieces(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ",
                    b"part two")
        return False
    else:
        send_pieces(conn, b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n")
    return True


def handle(conn: socket.socket, mode: str, counter: Counter) -> None:
    buf = bytearray()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while read_request(conn, buf):
                n = counter.next()
                if mode == "delay":
                    time.sleep(0.050 if n % 1000 == 500 else 0.001)
                    conn.sendall(ok())
                elif mode == "close":
                    return
                elif mode == "silent":
                    continue
                elif mode == "status500":
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                elif not framing_answer(conn, n):
                    return
        except OSError:
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="delay",
                        choices=("delay", "close", "silent", "status500", "framing"))
    args = parser.parse_args()
    # Under a GIL a thread woken from its 1 ms sleep may wait a whole switch
    # interval (5 ms) for the lock: keep the promised precision there too.
    sys.setswitchinterval(0.0002)
    counter = Counter()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(1024)
    stop = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    listener.settimeout(0.1)
    print(f"delayed: listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        threading.Thread(target=handle, args=(conn, args.mode, counter), daemon=True).start()
    listener.close()
    print("SERVED " + json.dumps({"requests": counter.n}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
