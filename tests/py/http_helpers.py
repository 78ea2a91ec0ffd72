"""Helpers of the HTTP suites: a raw HTTP/1.1 client connection that reads
responses exactly as framed (to check pipelining, HEAD and closes byte by
byte), the test application's server process, and the document tree it serves.
"""

from __future__ import annotations

import os
import random
import select
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helpers import SERVERS, ServerProcess, child_env, connect

BIG_SIZE = 5 * (1 << 20) + 4321  # not a multiple of a page
HEAD_TIMEOUT = 1.5
NO_BODY = (204, 304)


@dataclass
class Reply:
    status: int
    reason: str
    version: str
    headers: dict[str, str]            # lower-case names; repeats joined with ", "
    lines: list[tuple[str, str]] = field(default_factory=list)  # as received
    body: bytes = b""

    def header_names(self) -> list[str]:
        return [name.lower() for name, _ in self.lines]


class Conn:
    """A client connection with a read buffer: responses are read one at a
    time, exactly as the server framed them."""

    def __init__(self, port: int, timeout: float = 10.0, rcvbuf: int | None = None) -> None:
        self.sock = connect(port, timeout, rcvbuf)  # a small rcvbuf: a slow reader
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_until(self, marker: bytes) -> bytes:
        while True:
            at = self.buf.find(marker)
            if at >= 0:
                out = bytes(self.buf[:at + len(marker)])
                del self.buf[:at + len(marker)]
                return out
            assert self._fill(), f"connection closed before {marker!r}: {bytes(self.buf)!r}"

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            assert self._fill(), f"connection closed after {len(self.buf)} of {n} bytes"
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_reply(self, head: bool = False) -> Reply:
        """The next response; head: it answers a HEAD request (no body)."""
        raw = self.read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *header_lines = raw[:-4].split("\r\n")
        version, status, reason = (status_line.split(" ", 2) + [""])[:3]
        assert version in ("HTTP/1.1", "HTTP/1.0") and len(status) == 3 and status.isdigit(), \
            f"not a status line: {status_line!r}"
        lines = []
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            assert sep and name == name.strip(), f"malformed response header {line!r}"
            value = value.strip()
            lines.append((name, value))
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        reply = Reply(int(status), reason, version, headers, lines)
        if head or reply.status in NO_BODY or 100 <= reply.status < 200:
            return reply
        if "content-length" in headers:
            reply.body = self.read_exact(int(headers["content-length"]))
        else:
            reply.body = self.read_to_eof()
        return reply

    def read_to_eof(self, timeout: float = 10.0) -> bytes:
        self.sock.settimeout(timeout)
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def closed_cleanly(self, timeout: float = 5.0) -> bytes | None:
        """None when the server closed the connection (EOF) within timeout and
        sent nothing more; else what it sent or the reason, for the message."""
        self.sock.settimeout(timeout)
        try:
            extra = self.read_to_eof(timeout)
        except ConnectionResetError:
            return b"<connection reset instead of an orderly close>"
        except TimeoutError:
            return b"<still open after %.1f s>" % timeout + bytes(self.buf)
        return extra or None

    def still_open(self, wait: float = 0.3) -> bool:
        """Nothing arrives and the connection stays open for wait seconds."""
        r, _, _ = select.select([self.sock], [], [], wait)
        return not r and not self.buf


def request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"",
            version: str = "HTTP/1.1", host: bool = True) -> bytes:
    """One request's bytes; Content-Length is added for a body."""
    lines = [f"{method} {target} {version}"]
    if host:
        lines.append("Host: test")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, sizes: list[int], ext: bool = False, trailers: bytes = b"") -> bytes:
    """body in chunks of the given sizes (cycled), optionally with extensions."""
    out = bytearray()
    pos = i = 0
    while pos < len(body):
        n = min(sizes[i % len(sizes)], len(body) - pos)
        out += b"%x" % n + (b';name=value;q="a \\"b\\""' if ext else b"") + b"\r\n"
        out += body[pos:pos + n] + b"\r\n"
        pos += n
        i += 1
    return bytes(out + b"0\r\n" + trailers + b"\r\n")


# ---- the server under test ---------------------------------------------------

def app_argv(*args: str) -> list[str]:
    return [sys.executable, str(SERVERS / "http_app.py"), *args]


@contextmanager
def app_server(backend: str, *args: str, allow_tracebacks: bool = False,
               script: str = "http_app.py") -> Iterator[ServerProcess]:
    """The test application (or another servers/ script) on backend; it must
    exit cleanly (no connection left open, no crash) when stopped at the end."""
    proc = ServerProcess([sys.executable, str(SERVERS / script), *args], child_env(backend))
    passed = False
    try:
        yield proc
        passed = True
    finally:
        try:
            if passed:
                proc.finish().assert_clean(allow_tracebacks)
        finally:
            proc.close()


@dataclass
class Site:
    root: Path          # served at /static/
    big: bytes          # root/big.bin
    outside: Path       # a directory next to root, never to be served
    secret: bytes       # outside/secret.txt


def make_site(base: Path) -> Site:
    """The document tree of the static-file tests."""
    root = base / "root"
    outside = base / "outside"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "withindex").mkdir()
    (root / "empty-dir").mkdir()
    outside.mkdir()
    rng = random.Random(20240501)
    big = rng.randbytes(BIG_SIZE)
    (root / "big.bin").write_bytes(big)
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "page.html").write_bytes(b"<p>page</p>\n")
    (root / "data.json").write_bytes(b'{"a": 1}\n')
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b\x08\x00not really")
    (root / "noext").write_bytes(b"\x00\x01\x02")
    (root / "sp ace & <b>.txt").write_bytes(b"odd name\n")
    (root / "caf\u00e9.txt").write_bytes(b"utf-8 name\n")
    (root / "%41.txt").write_bytes(b"percent name\n")
    (root / "sub" / "a.txt").write_bytes(b"in sub\n")
    (root / "sub" / "deeper" / "b.txt").write_bytes(b"in deeper\n")
    (root / "withindex" / "index.html").write_bytes(b"<h1>index</h1>\n")
    (root / "withindex" / "other.txt").write_bytes(b"other\n")
    secret = b"TOP SECRET outside the root\n"
    (outside / "secret.txt").write_bytes(secret)
    os.symlink(outside / "secret.txt", root / "link-out")        # file out of the root
    os.symlink(outside, root / "dir-out")                        # directory out of the root
    os.symlink("../outside/secret.txt", root / "sub" / "rel-out")  # relative, out
    os.symlink("hello.txt", root / "link-in")                    # stays inside: served
    os.symlink(root / "nowhere", root / "dangling")
    os.mkfifo(root / "fifo")                                     # would block a reader
    (root / "unreadable.txt").write_bytes(b"no\n")
    os.chmod(root / "unreadable.txt", 0)
    return Site(root, big, outside, secret)


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
