"""Holds N idle WebSockets open to a server, in a process of its own.

    python idle_client.py PORT PATH N

Opens the N connections (handshakes in batches), prints ``OPEN N``, then
waits for a line on stdin; on it, pings every connection and checks each
answers with its pong (so each was alive, not only open), prints ``PONGS
N``, closes them all and exits."""

from __future__ import annotations

import base64
import os
import resource
import selectors
import socket
import sys

PING = b"\x89\x84" + b"\x00\x00\x00\x00" + b"idle"  # masked with a zero key


def main() -> None:
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
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
