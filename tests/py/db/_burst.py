"""Many concurrent requests from one thread: each on its own connection,
connected first, then every request sent at once and every answer timed
from that moment to its last byte (a select loop: no thread of the client
delays another's reading)."""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass
class Answer:
    status: int
    body: bytes
    latency: float  # seconds from the send to the last byte


def _complete(buf: bytes) -> tuple[int, bytes] | None:
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(rest) < length:
        return None
    return status, rest[:length]


def burst(port: int, target: str, n: int, timeout: float = 30.0) -> list[Answer]:
    """n GETs of target sent together on n connections; their answers."""
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection((HOST, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
        req = f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
        bufs: dict[socket.socket, bytearray] = {}
        answers: list[Answer] = []
        t0 = time.monotonic()
        for s in socks:
            s.sendall(req)
        for s in socks:
            s.setblocking(False)
            bufs[s] = bytearray()
            sel.register(s, selectors.EVENT_READ)
        deadline = t0 + timeout
        while len(answers) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{n - len(answers)} of {n} answers to {target} "
                                     f"missing after {timeout} s")
            for key, _ in sel.select(left):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                data = s.recv(65536)
                if not data:
                    raise AssertionError(f"connection closed before the answer to {target}")
                buf = bufs[s]
                buf += data
                done = _complete(bytes(buf))
                if done is not None:
                    answers.append(Answer(done[0], done[1], time.monotonic() - t0))
                    sel.unregister(s)
        return answers
    finally:
        sel.close()
        for s in socks:
            s.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]
