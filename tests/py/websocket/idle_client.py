"""Holds N idle WebSockets open to a server, in a process of its own.

    python idle_client.py PORT PATH N [deflate]

Opens the N connections (handshakes in batches), prints ``OPEN N``, then
waits for a line on stdin; on it, pings every connection and checks each
answers with its pong (so each was alive, not only open), prints ``PONGS
N``, closes them all and exits. With ``deflate`` each connection offers
permessage-deflate, must have it agreed, and before ``OPEN`` sends one
compressed message and reads its echo back, compressed (so what the server
keeps of an idle connection is measured after it inflated and deflated)."""

from __future__ import annotations

import base64
import os
import resource
import selectors
import socket
import struct
import sys
import zlib

PING = b"\x89\x84" + b"\x00\x00\x00\x00" + b"idle"  # masked with a zero key
MESSAGE = b'{"user": "idle", "text": "' + b"hello " * 300 + b'"}'


def compressed_message() -> bytes:
    """MESSAGE compressed as a text frame's payload, masked with a zero key."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    z = (c.compress(MESSAGE) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(z) < 126
    return bytes([0xC1, 0x80 | len(z)]) + b"\x00\x00\x00\x00" + z


def read_frame(s: socket.socket, buf: bytes) -> tuple[int, bytes, bytes]:
    """The first byte and payload of the next frame, and what follows it."""
    while True:
        if len(buf) >= 2:
            n, at = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, at = struct.unpack(">H", buf[2:4])[0], 4
            if n < 126 and len(buf) >= at + n:
                return buf[0], buf[at:at + n], buf[at + n:]
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("closed before the echo")
        buf += chunk


def check_echo(s: socket.socket, rest: bytes) -> None:
    b0, payload, after = read_frame(s, rest)
    if b0 != 0xC1 or after:
        raise SystemExit(f"not one compressed text frame: {b0:#x}")
    d = zlib.decompressobj(-15)
    if d.decompress(payload + b"\x00\x00\xff\xff") != MESSAGE:
        raise SystemExit("the echo is not the message")


def main() -> None:
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    deflate = sys.argv[4:] == ["deflate"]
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n").encode()
    socks: list[socket.socket] = []
    batch = 500
    for start in range(0, n, batch):
        group = []
        for _ in range(min(batch, n - start)):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(req)
            group.append(s)
        for s in group:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("closed during the handshake")
                head += chunk
            if not head.startswith(b"HTTP/1.1 101 "):
                raise SystemExit("refused: " + head[:60].decode(errors="replace"))
            if deflate:
                if b"permessage-deflate" not in head:
                    raise SystemExit("permessage-deflate not agreed")
                s.sendall(compressed_message())
                check_echo(s, head.split(b"\r\n\r\n", 1)[1])
        socks.extend(group)
    print(f"OPEN {len(socks)}", flush=True)
    sys.stdin.readline()
    sel = selectors.DefaultSelector()
    for s in socks:
        s.sendall(PING)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    pongs, want = 0, b"\x8a\x04idle"
    got: dict[int, bytes] = {}
    while pongs < len(socks):
        events = sel.select(timeout=30)
        if not events:
            break
        for k, _ in events:
            s = k.fileobj  # type: ignore[assignment]
            data = got.get(s.fileno(), b"") + s.recv(64)  # type: ignore[union-attr]
            got[s.fileno()] = data  # type: ignore[union-attr]
            if len(data) >= len(want):
                if data[:len(want)] == want:
                    pongs += 1
                sel.unregister(s)
    print(f"PONGS {pongs}", flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
