"""PROXY protocol on the listener (``--proxy-protocol``): the client address
the balancer's header names is what the application sees (remote_addr,
REMOTE_ADDR), for version 1 and version 2 headers however they are split;
LOCAL (the balancer's own checks) keeps the connection's own address; a
connection that starts with anything else is closed without an answer."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from helpers import HOST, SERVERS, ServerProcess, child_env, connect, recv_until_eof
from ops_helpers import SERVE

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
TARGETS = pytest.mark.parametrize("target,path", [("ops_app:App", "/addr"),
                                                  ("ops_app:wsgi_app", "/"),
                                                  ("ops_app:asgi_app", "/")],
                                  ids=["http", "wsgi", "asgi"])


def v2(src: str, dst: str, sport: int, dport: int, local: bool = False) -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return SIG + bytes([0x20 if local else 0x21, 0x11]) + struct.pack("!H", len(body)) + body


def server(backend: str, target: str) -> ServerProcess:
    argv = [*SERVE, target, "--app-dir", str(SERVERS),
            "--host", HOST, "--port", "0", "--workers", "2", "--proxy-protocol"]
    return ServerProcess(argv, child_env(backend), ready=True, ready_timeout=30)


def ask(port: int, pieces: list[bytes], path: str) -> bytes:
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    with connect(port) as s:
        for piece in pieces[:-1]:
            s.sendall(piece)
            time.sleep(0.02)
        s.sendall(pieces[-1] + request)
        return recv_until_eof(s)


@TARGETS
def test_client_address_from_the_header(backend: str, target: str, path: str) -> None:
    proc = server(backend, target)
    try:
        out = ask(proc.port, [b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"], path)
        assert out.startswith(b"HTTP/1.1 200"), out
        assert out.endswith(f"{proc.pid} 192.0.2.1 56324".encode()), out
        out = ask(proc.port, [b"PROXY TCP6 2001:db8::7 ::1 40000 443\r\n"], path)
        assert out.endswith(b" 2001:db8::7 40000"), out
        header = v2("203.0.113.9", "10.0.0.1", 1234, 80)
        out = ask(proc.port, [header[i:i + 1] for i in range(len(header))] + [b""], path)
        assert out.endswith(b" 203.0.113.9 1234"), out
        # LOCAL: the balancer speaking for itself; the socket's own peer.
        out = ask(proc.port, [v2("1.1.1.1", "2.2.2.2", 1, 2, local=True)], path)
        assert b" 127.0.0.1 " in out, out
        # Keep-alive: every request of the connection is the header's client.
        with connect(proc.port) as s:
            s.sendall(b"PROXY TCP4 192.0.2.5 198.51.100.7 5 443\r\n")
            for last in (False, True):
                close = "Connection: close\r\n" if last else ""
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{close}\r\n".encode())
                time.sleep(0.1)
            assert recv_until_eof(s).count(b" 192.0.2.5 5") == 2
    finally:
        proc.close()


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.7 080 443\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.7 1 443 \r\n",
    SIG + b"\x21\x12\x00\x0c" + bytes(12),
    b"PROXY " + b"x" * 200,
], ids=["plain-http", "leading-zero", "trailing-space", "v2-udp", "too-long"])
def test_garbage_is_closed_without_an_answer(backend: str, garbage: bytes) -> None:
    proc = server(backend, "ops_app:App")
    try:
        with connect(proc.port) as s:
            s.settimeout(10)
            s.sendall(garbage)
            assert recv_until_eof(s) == b""
    finally:
        proc.close()


def test_header_timeout_closes(backend: str) -> None:
    proc = server(backend, "ops_app:App")
    try:
        with connect(proc.port) as s:
            s.settimeout(30)
            s.sendall(b"PROXY TCP4 192.0.2.1")
            start = time.monotonic()
            assert recv_until_eof(s) == b""
            assert 3 < time.monotonic() - start < 25  # the 5 s header deadline
        # The server still serves.
        assert ask(proc.port, [b"PROXY UNKNOWN\r\n"], "/addr").startswith(b"HTTP/1.1 200")
    finally:
        proc.close()
