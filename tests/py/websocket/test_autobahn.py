"""The Autobahn test suite's server cases (sections 1-7, 9, 10), as this
project's own tests against servers/ws_app.py on both backends. Valid traffic
goes through a raw client that builds every frame itself (so that splits,
masking and bits are exactly the case's); each family runs on one server.
Case numbers are Autobahn's. Compression (12.x, 13.x) is out of scope: no
extension is negotiated, so RSV1 is a protocol error (3.x)."""

from __future__ import annotations

import time

import pytest
from ws_raw import BINARY, CLOSE, CONT, PING, PONG, TEXT, Raw, close_payload, frame

from helpers import ServerProcess


@pytest.fixture
def srv(spawn, backend) -> ServerProcess:
    return spawn("ws_app.py", backend=backend)


def echo(port: int, frames: bytes, piece: int = 0) -> tuple[int, bytes]:
    with Raw(port) as ws:
        ws.send(frames, piece)
        got = ws.recv_message()
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_close(1000)
        return got


def fails(port: int, data: bytes, code: int, before: bytes = b"", piece: int = 0,
          path: str = "/echo") -> None:
    """The server answers what came before (echoed), then fails the
    connection with code on data."""
    with Raw(port, path) as ws:
        if before:
            ws.send(before)
            op, _ = ws.recv_message()
            assert op in (TEXT, BINARY)
        ws.send(data, piece)
        ws.expect_close(code)


def test_1_framing(srv):
    """1.1.1-1.1.8 text, 1.2.1-1.2.8 binary: 0..65536 bytes, whole or in
    997-byte pieces; each echoed exactly."""
    for op in (TEXT, BINARY):
        for n in (0, 125, 126, 127, 128, 65535, 65536):
            payload = b"*" * n if op == TEXT else bytes(i & 0xFF for i in range(n))
            assert echo(srv.port, frame(op, payload)) == (op, payload)
        payload = b"\xfe" * 65536 if op == BINARY else b"*" * 65536
        assert echo(srv.port, frame(op, payload), piece=997) == (op, payload)


def test_2_pings(srv):
    with Raw(srv.port) as ws:
        ws.send(frame(PING))                        # 2.1
        assert ws.recv_frame() == (PONG, True, b"")
        ws.send(frame(PING, b"Hello, world!"))      # 2.2
        assert ws.recv_frame() == (PONG, True, b"Hello, world!")
        ws.send(frame(PING, b"\x00\xff\xfe\xfd"))   # 2.3
        assert ws.recv_frame() == (PONG, True, b"\x00\xff\xfe\xfd")
        ws.send(frame(PING, b"x" * 125))            # 2.4
        assert ws.recv_frame() == (PONG, True, b"x" * 125)
        ws.send(frame(PING, b"y" * 125), piece=1)   # 2.6
        assert ws.recv_frame() == (PONG, True, b"y" * 125)
        ws.send(frame(PONG) + frame(PONG, b"unsolicited"))  # 2.7, 2.8: ignored
        ws.send(frame(PONG, b"u") + frame(PING, b"after"))  # 2.9
        assert ws.recv_frame() == (PONG, True, b"after")
        ws.send(b"".join(frame(PING, b"%d" % i) for i in range(10)))  # 2.10
        for i in range(10):
            assert ws.recv_frame() == (PONG, True, b"%d" % i)
        ws.send(b"".join(frame(PING, b"%d" % i) for i in range(10)), piece=1)  # 2.11
        for i in range(10):
            assert ws.recv_frame() == (PONG, True, b"%d" % i)
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_close(1000)
    fails(srv.port, frame(PING, b"z" * 126), 1002)  # 2.5: control over 125 bytes


def test_3_reserved_bits(srv):
    fails(srv.port, frame(TEXT, b"Hello", rsv=1), 1002)                          # 3.1
    fails(srv.port, frame(TEXT, b"Hello", rsv=2), 1002, before=frame(TEXT, b"a"))  # 3.2
    fails(srv.port, frame(TEXT, b"Hello", rsv=3), 1002, before=frame(TEXT, b"a"))  # 3.3
    fails(srv.port, frame(TEXT, b"a") + frame(TEXT, b"Hello", rsv=4), 1002, piece=1)  # 3.4
    fails(srv.port, frame(BINARY, b"\xff" * 8, rsv=5), 1002)                     # 3.5
    fails(srv.port, frame(PING, b"Hello", rsv=6), 1002)                          # 3.6
    fails(srv.port, frame(CLOSE, close_payload(1000), rsv=7), 1002)              # 3.7


def test_4_opcodes(srv):
    for op in (3, 4, 5, 6, 7):              # 4.1.1-4.1.5
        fails(srv.port, frame(op, b"reserved"), 1002, before=frame(TEXT, b"a"))
    for op in (11, 12, 13, 14, 15):         # 4.2.1-4.2.5
        fails(srv.port, frame(op, b"reserved"), 1002, before=frame(TEXT, b"a"))


def test_5_fragmentation(srv):
    fails(srv.port, frame(PING, b"frag", fin=False) + frame(CONT, b"ment"), 1002)  # 5.1
    fails(srv.port, frame(PONG, b"frag", fin=False) + frame(CONT, b"ment"), 1002)  # 5.2
    two = frame(TEXT, b"frag", fin=False) + frame(CONT, b"ment")
    for piece in (0, 7, 1):                                     # 5.3, 5.4, 5.5
        assert echo(srv.port, two, piece) == (TEXT, b"fragment")
    with_ping = frame(TEXT, b"frag", fin=False) + frame(PING, b"p") + frame(CONT, b"ment")
    for piece in (0, 7, 1):                                     # 5.6, 5.7, 5.8
        with Raw(srv.port) as ws:
            ws.send(with_ping, piece)
            assert ws.recv_frame() == (PONG, True, b"p")
            assert ws.recv_message() == (TEXT, b"fragment")
    for piece in (0, 1):
        fails(srv.port, frame(CONT, b"x") + frame(TEXT, b"y"), 1002, piece=piece)     # 5.9-5.11
        fails(srv.port, frame(CONT, b"x", fin=False) + frame(CONT, b"y"), 1002,       # 5.12-5.14
              piece=piece)
        fails(srv.port, frame(TEXT, b"a", fin=False) + frame(CONT, b"b") +            # 5.15
              frame(CONT, b"c", fin=False) + frame(TEXT, b"d"), 1002, piece=piece)
        fails(srv.port, frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002,        # 5.16-5.18
              piece=piece)
    # 5.19, 5.20: fragments with pings between them, in time
    with Raw(srv.port) as ws:
        for i, part in enumerate((b"frag1", b"frag2", b"frag3", b"frag4", b"frag5")):
            op = TEXT if i == 0 else CONT
            ws.send(frame(op, part, fin=i == 4))
            if i == 4:
                assert ws.recv_message() == (TEXT, b"frag1frag2frag3frag4frag5")
            ws.send(frame(PING, b"ping %d" % i))
            assert ws.recv_frame() == (PONG, True, b"ping %d" % i)
            time.sleep(0.02)


VALID_UTF8 = [
    "", "κόσμε", "Hello-µ@ßöäüàá-UTF-8!!", "\u0080", "\u0800", "\U00010000", "\u007f",
    "\u07ff", "\uffff", "\U0010ffff", "\ud7ff", "\ue000", "\ufffd",
]
INVALID_UTF8 = [
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",  # 6.3
    b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80",             # 6.6-6.8 continuations
    b"\xc0\x20", b"\xe0\x80\x20", b"\xf0\x80\x80\x20",          # 6.9 lonely starts
    b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",          # 6.10 overlong
    b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",       # 6.11 5-, 6-byte
    b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",          # 6.12 maximal overlong
    b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xbf\xbf",          # 6.13 surrogates
    b"\xed\xa0\x80\xed\xb0\x80",                                # 6.14 pairs
    b"\xf4\x90\x80\x80", b"\xfe", b"\xff", b"\xfe\xfe\xff\xff",  # 6.15-6.17
]


def test_6_utf8(srv):
    for text in VALID_UTF8:                   # 6.1, 6.2, 6.5, 6.7, 6.22, 6.23
        raw = text.encode()
        assert echo(srv.port, frame(TEXT, raw)) == (TEXT, raw)
        # split at every byte into fragments (6.2.x, 6.4 across fragments)
        if 0 < len(raw) <= 40:
            frags = b"".join(frame(TEXT if i == 0 else CONT, raw[i:i + 1], fin=i == len(raw) - 1)
                             for i in range(len(raw)))
            assert echo(srv.port, frags) == (TEXT, raw)
    for raw in INVALID_UTF8:                  # 6.3-6.21
        fails(srv.port, frame(TEXT, raw), 1007)
        fails(srv.port, frame(TEXT, raw[:1], fin=False) + frame(CONT, raw[1:]), 1007)
    # 6.4.1-6.4.4 fail fast: the invalid fragment alone closes it, the rest
    # of the message never sent
    head = "κόσμε".encode()
    for raw in (head + b"\xf4\x90\x80\x80",):
        with Raw(srv.port) as ws:
            ws.send(frame(TEXT, raw, fin=False))
            ws.expect_close(1007)
        with Raw(srv.port) as ws:  # within one frame: the rest of it never sent
            whole = frame(TEXT, raw + b"edited" * 100)
            ws.send(whole[:len(whole) - 500])
            ws.expect_close(1007)


def test_7_close(srv):
    with Raw(srv.port) as ws:                 # 7.1.1 echo then close
        ws.send(frame(TEXT, b"Hello"))
        assert ws.recv_message() == (TEXT, b"Hello")
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_close(1000)
    with Raw(srv.port) as ws:                 # 7.1.2-7.1.4 nothing after the close
        ws.send(frame(CLOSE, close_payload(1000)) + frame(CLOSE, close_payload(1000)) +
                frame(PING, b"p") + frame(TEXT, b"after"))
        ws.expect_close(1000)
    with Raw(srv.port) as ws:                 # 7.1.5 a close in the middle of a message
        ws.send(frame(TEXT, b"frag", fin=False) + frame(CLOSE, close_payload(1000)) +
                frame(CONT, b"ment"))
        ws.expect_close(1000)
    with Raw(srv.port) as ws:                 # 7.1.6 a big message, then the close
        ws.send(frame(TEXT, b"B" * 262144) + frame(CLOSE, close_payload(1000)))
        assert ws.recv_message() == (TEXT, b"B" * 262144)
        ws.expect_close(1000)
    with Raw(srv.port) as ws:                 # 7.3.1 empty close payload
        ws.send(frame(CLOSE))
        ws.expect_close(None)
    fails(srv.port, frame(CLOSE, b"\x03"), 1002)          # 7.3.2 one byte
    with Raw(srv.port) as ws:                 # 7.3.3-7.3.5 code, reason, 123-byte reason
        ws.send(frame(CLOSE, close_payload(1000, b"*" * 123)))
        ws.expect_close(1000)
    fails(srv.port, frame(CLOSE, close_payload(1000, b"*" * 124)), 1002)  # 7.3.6
    fails(srv.port, frame(CLOSE, close_payload(1000, b"\xce\xba\xed\xa0\x80")), 1007)  # 7.5.1
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
        with Raw(srv.port) as ws:             # 7.7.x valid codes are echoed
            ws.send(frame(CLOSE, close_payload(code)))
            ws.expect_close(code)
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
        fails(srv.port, frame(CLOSE, close_payload(code)), 1002)  # 7.9.x, 7.13.x


def test_9_limits_and_performance(srv):
    """9.1, 9.2: text and binary of 64 KiB to 1 MiB (the suite goes to 16
    MiB; these sizes keep the test quick); 9.3, 9.4: 256 KiB in frames of 64
    bytes to 64 KiB; 9.5, 9.6: 64 KiB sent in pieces of 64 bytes to 4 KiB;
    9.7, 9.8: 500 round trips of small messages."""
    for op in (TEXT, BINARY):
        for n in (65536, 262144, 1 << 20):
            payload = b"*" * n
            assert echo(srv.port, frame(op, payload)) == (op, payload)
        msg = b"f" * 262144
        for size in (64, 4096, 65536):
            parts = [msg[i:i + size] for i in range(0, len(msg), size)]
            frags = b"".join(frame(op if i == 0 else CONT, p, fin=i == len(parts) - 1)
                             for i, p in enumerate(parts))
            assert echo(srv.port, frags) == (op, msg)
        for piece in (64, 4096):
            assert echo(srv.port, frame(op, b"c" * 65536), piece) == (op, b"c" * 65536)
    with Raw(srv.port) as ws:
        for i in range(500):
            ws.send(frame(TEXT if i % 2 else BINARY, b"m%d" % i))
            assert ws.recv_message() == (TEXT if i % 2 else BINARY, b"m%d" % i)
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_close(1000)


def test_10_autofragmentation(srv):
    """10.1.1: 65536 bytes of text in 1300-byte fragments, echoed whole."""
    msg = ("é" * 32768).encode()
    parts = [msg[i:i + 1300] for i in range(0, len(msg), 1300)]  # characters cut across
    frags = b"".join(frame(TEXT if i == 0 else CONT, p, fin=i == len(parts) - 1)
                     for i, p in enumerate(parts))
    assert echo(srv.port, frags) == (TEXT, msg)


def test_framing_errors_beyond_the_suite(srv):
    """Client frames must be masked; lengths minimally encoded, 63 bits."""
    fails(srv.port, frame(TEXT, b"Hello", mask=False), 1002)
    fails(srv.port, frame(TEXT, b"Hello", long16=True), 1002)
    fails(srv.port, frame(BINARY, b"x" * 200, long64=True), 1002)
    fails(srv.port, frame(BINARY, length=1 << 63)[:10], 1002)


def test_limits_close_1009(srv):
    """Over max_message (1000) across frames, over max_frame (500): closed
    with 1009 from the header, before the payload is sent."""
    limited = srv.port
    with Raw(limited, "/limited") as ws:
        ws.send(frame(BINARY, b"x" * 500))
        assert ws.recv_message() == (BINARY, b"x" * 500)
        ws.send(frame(BINARY, length=501)[:8])  # the header only
        ws.expect_close(1009)
    with Raw(limited, "/limited") as ws:
        ws.send(frame(TEXT, b"a" * 500, fin=False) + frame(CONT, b"b" * 400, fin=False))
        ws.send(frame(CONT, length=101)[:6])
        ws.expect_close(1009)
    with Raw(limited, "/limited") as ws:  # a 1 GiB announcement costs nothing
        ws.send(frame(BINARY, length=1 << 30)[:14])
        ws.expect_close(1009)
