"""A raw WebSocket client for the malformed-frame cases: the handshake by
hand, frames built byte by byte (masked or not, any bits, any length
encoding), sent whole or in pieces, and what the server answers read back
frame by frame until it closes the TCP connection. When the server agreed
to permessage-deflate its compressed messages are inflated (each afresh:
it answers server_no_context_takeover)."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
import zlib

TEXT, BINARY, CLOSE, PING, PONG, CONT = 1, 2, 8, 9, 10, 0


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
          mask: bool = True, length: int | None = None, long16: bool = False,
          long64: bool = False) -> bytes:
    """One frame; length overrides the announced length, long16/long64
    force an extended length encoding (a non-minimal one for short payloads)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if long64 or n > 0xFFFF:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    elif long16 or n > 125:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | n])
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack(">H", code) + reason


class Raw:
    def __init__(self, port: int, path: str = "/echo", timeout: float = 10.0,
                 extra: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.head = head.decode()
        self.deflate = "permessage-deflate" in self.head.lower()
        self.compressed = False  # the last message received had RSV1

    def _until(self, end: bytes) -> bytes:
        while end not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before " + repr(end))
            self.buf += chunk
        i = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("closed mid-frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data: bytes, piece: int = 0) -> None:
        if piece <= 0:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), piece):
            self.sock.sendall(data[i:i + piece])

    def recv_frame(self) -> tuple[int, bool, bytes]:
        b0, b1 = self._exact(2)
        assert b1 & 0x80 == 0, "a server frame must not be masked"
        assert b0 & 0x30 == 0, "no RSV2/RSV3 from the server"
        assert b0 & 0x40 == 0 or (self.deflate and b0 & 0x0F in (TEXT, BINARY)), \
            "RSV1 only on a data frame, once permessage-deflate was agreed"
        self.rsv1 = bool(b0 & 0x40)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._exact(8))[0]
        return b0 & 0x0F, bool(b0 & 0x80), self._exact(n)

    def recv_message(self) -> tuple[int, bytes]:
        """The next data message (pings answered are skipped? no: returned as is)."""
        op, fin, data = self.recv_frame()
        self.compressed = self.rsv1
        while not fin:
            _, fin, more = self.recv_frame()
            data += more
        if self.compressed:
            d = zlib.decompressobj(-15)
            data = d.decompress(data + b"\x00\x00\xff\xff") + d.flush()
        return op, data

    def expect_close(self, code: int | None, timeout: float = 10.0) -> bytes:
        """Read until a close frame: its code must be code (None: empty
        payload); then the server must close TCP."""
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            op, _, data = self.recv_frame()
            if op == CLOSE:
                break
        if code is None:
            assert data == b"", data
        else:
            assert len(data) >= 2 and struct.unpack(">H", data[:2])[0] == code, data
        self.expect_eof(timeout)
        return data[2:]

    def expect_eof(self, timeout: float = 10.0) -> None:
        self.sock.settimeout(timeout)
        rest = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
        except ConnectionResetError:
            pass
        assert self.buf + rest == b"", f"bytes after the close: {(self.buf + rest)[:100]!r}"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
