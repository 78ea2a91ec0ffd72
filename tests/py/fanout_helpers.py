"""Clients of the chat and pub/sub examples: many sockets read by one
selector, line by line, and connections spread over every worker."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

from helpers import connect


class Lines:
    """Complete lines received on each of many sockets, read with one selector."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.socks = socks
        self.lines: dict[socket.socket, list[bytes]] = {s: [] for s in socks}
        self.closed: set[socket.socket] = set()
        self._partial: dict[socket.socket, bytes] = {s: b"" for s in socks}
        self._sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ)

    def pump(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        """Read until done() is true; AssertionError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for lines"
            for key, _ in self._sel.select(0.2):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(1 << 16)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if not data:
                    self._sel.unregister(s)
                    self.closed.add(s)
                    continue
                *full, self._partial[s] = (self._partial[s] + data).split(b"\n")
                self.lines[s].extend(full)

    def until_count(self, want: Callable[[socket.socket], int], timeout: float = 30.0,
                    match: Callable[[bytes], bool] = lambda line: True) -> None:
        """Read until each socket has want(sock) lines for which match is true."""
        def done() -> bool:
            return all(sum(1 for line in self.lines[s] if match(line)) >= want(s)
                       for s in self.socks if s not in self.closed)
        self.pump(done, timeout)

    def close(self) -> None:
        self._sel.close()
        for s in self.socks:
            s.close()


def spread(port: int, count: int, workers: int, worker_of: Callable[[socket.socket], int],
           limit: int = 500) -> list[socket.socket]:
    """At least count connections, at least one on each worker (the kernel
    picks the worker: connections are added until every worker has one)."""
    socks: list[socket.socket] = []
    seen: set[int] = set()
    while len(socks) < count or len(seen) < workers:
        assert len(socks) < count + limit, f"connections only on workers {seen}"
        s = connect(port)
        socks.append(s)
        seen.add(worker_of(s))
    return socks


class LineReader:
    """One blocking socket read line by line (what follows a line is kept)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def line(self) -> bytes:
        """The next line with its newline; AssertionError if the peer closes first."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed before a full line: {self._buf!r}"
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"
