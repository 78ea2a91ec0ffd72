"""permessage-deflate (RFC 7692) on HttpServer's WebSocket routes
(servers/ws_app.py), both backends: the websockets library's client (which
offers it, as browsers do) round-trips compressed messages both ways; the
answers to offers of every shape; the Autobahn suite's compression cases
(12.x, 13.x: messages of many sizes, fragmented, in pieces, after one
another) driven frame by frame; and what must fail: RSV1 where it may not
be, data that is not deflate, compressed text that is not UTF-8, and
inflation bombs, stopped at the message limit with 1009."""

from __future__ import annotations

import asyncio
import random
import zlib
from typing import Any

import pytest
from websockets.asyncio.client import connect
from ws_raw import BINARY, CLOSE, CONT, PING, PONG, TEXT, Raw, close_payload, frame

from helpers import ServerProcess

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


@pytest.fixture
def srv(spawn, backend) -> ServerProcess:
    return spawn("ws_app.py", backend=backend)


def deflate(data: bytes, wbits: int = 15, final: bool = False) -> bytes:
    """A message's payload as a client compresses it (section 7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    if final:  # ends with a BFINAL block instead of a flush (section 7.2.3.5)
        return c.compress(data) + c.flush(zlib.Z_FINISH)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def zframe(op: int, payload: bytes, fin: bool = True) -> bytes:
    """The first frame of a compressed message: RSV1 set."""
    return frame(op, payload, fin=fin, rsv=4)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_websockets_client_both_ways(srv):
    """The websockets client offers permessage-deflate; messages of every
    size go both ways compressed, on the default route, one that compresses
    everything, and one whose clients keep their context (and say so)."""
    rng = random.Random(7)
    words = [bytes(rng.choices(b"abcdefghij ", k=rng.randint(1, 9))) for _ in range(200)]
    messages: list[str | bytes] = ["", "hi", "a" * 127, "b" * 128, "é€😀" * 5000,
                                   b"\x00" * 70000, b"".join(rng.choices(words, k=30000))]

    async def go() -> None:
        for path, answer in (("/echo", "client_no_context_takeover"),
                             ("/zall", "client_no_context_takeover"),
                             ("/ctx", "client_max_window_bits=10")):
            async with connect(f"ws://127.0.0.1:{srv.port}{path}", max_size=None) as ws:
                ext = ws.response.headers["Sec-WebSocket-Extensions"]
                assert ext.startswith("permessage-deflate; server_no_context_takeover"), ext
                assert answer in ext, ext
                for m in messages:
                    await ws.send(m)
                    assert await ws.recv() == m
                # similar messages one after another (the context a /ctx
                # client keeps refers back into earlier ones)
                for i in range(50):
                    m = f'{{"user": "u{i % 3}", "text": "{"hello " * (i % 7)}", "n": {i}}}' * 3
                    await ws.send(m)
                    assert await ws.recv() == m
                # a fragmented message, compressed as one
                await ws.send(["part one " * 100, "part two " * 100])
                assert await ws.recv() == "part one " * 100 + "part two " * 100
        async with connect(f"ws://127.0.0.1:{srv.port}/compression") as ws:
            await ws.send("?")
            assert await ws.recv() == "deflate"
        # refused by the route, or not offered: plain frames
        async with connect(f"ws://127.0.0.1:{srv.port}/plain") as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000
        async with connect(f"ws://127.0.0.1:{srv.port}/compression", compression=None) as ws:
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            await ws.send("?")
            assert await ws.recv() == "None"
    run(go())


def test_compressed_sends_from_many_threads(srv):
    """Four threads send compressed messages on one WebSocket at once (each
    with its own compressor, no lock): every message arrives whole, and
    each thread's in its order."""
    async def go() -> None:
        async with connect(f"ws://127.0.0.1:{srv.port}/zfanout") as ws:
            await ws.send("go 300")
            nxt = [0, 0, 0, 0]
            while (m := await ws.recv()) != "done":
                assert isinstance(m, str)
                t, i = int(m.split()[1]), int(m.split()[3])
                assert i == nxt[t] and m.endswith("payload " * (50 + i % 50)), m[:40]
                nxt[t] += 1
            assert nxt == [300] * 4
    run(go())


def answer(srv: ServerProcess, offer: str) -> str | None:
    with Raw(srv.port, "/echo", extra=f"Sec-WebSocket-Extensions: {offer}\r\n") as ws:
        assert ws.status == 101
        lines = [ln.split(":", 1)[1].strip() for ln in ws.head.split("\r\n")
                 if ln.lower().startswith("sec-websocket-extensions:")]
        assert len(lines) <= 1
        return lines[0] if lines else None


def test_offers_and_answers(srv):
    base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    assert answer(srv, "permessage-deflate") == base
    assert answer(srv, "permessage-deflate; client_max_window_bits") == base
    assert answer(srv, "permessage-deflate; server_max_window_bits=10") == \
        base + "; server_max_window_bits=10"
    assert answer(srv, 'permessage-deflate; client_max_window_bits="12"') == \
        base + "; client_max_window_bits=12"
    # declined offers, the next one taken
    assert answer(srv, "permessage-deflate; server_max_window_bits=8, permessage-deflate") == base
    assert answer(srv, "permessage-deflate; foo=1, permessage-deflate") == base
    assert answer(srv, "x-webkit-deflate-frame, permessage-deflate") == base
    # nothing acceptable, or a malformed header: no extension, still a WebSocket
    for offer in ("permessage-deflate; server_max_window_bits", "x-other",
                  "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                  'permessage-deflate; client_max_window_bits="1', "; permessage-deflate"):
        assert answer(srv, offer) is None, offer


def echo(port: int, frames: bytes, piece: int = 0, path: str = "/echo") -> tuple[int, bytes, bool]:
    with Raw(port, path, extra=OFFER) as ws:
        assert ws.deflate
        ws.send(frames, piece)
        op, data = ws.recv_message()
        compressed = ws.compressed
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_close(1000)
        return op, data, compressed


def test_autobahn_12_13_compressed_messages(srv):
    """12.x/13.x: compressed text and binary of 16 B .. 128 KiB, whole and
    in 997-byte pieces, echoed; replies over min_size (128) come compressed,
    and each inflates on its own (server_no_context_takeover)."""
    rng = random.Random(12)
    for n in (16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072):
        text = "".join(rng.choices("the quick brown fox jumps over é😀 ", k=n)).encode()[:n]
        text = text.decode("utf-8", "ignore").encode()
        data = bytes(rng.choices(range(16), k=n))
        for op, payload in ((TEXT, text), (BINARY, data)):
            got = echo(srv.port, zframe(op, deflate(payload)), piece=997 if n > 4096 else 0)
            assert got[:2] == (op, payload), (op, n)
            assert got[2] == (len(payload) >= 128), (op, n)  # compressed when worth it
    # several messages on one connection, each its own stream; BFINAL ending
    with Raw(srv.port, "/zall", extra=OFFER) as ws:
        for i in range(20):
            m = b"message %d " % i * (i + 1)
            ws.send(zframe(TEXT, deflate(m, final=i % 2 == 1)))
            assert ws.recv_message() == (TEXT, m)
            # everything is compressed unless that does not make it shorter
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            assert ws.compressed == (len(c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)) - 4 < len(m))
        ws.send(zframe(BINARY, deflate(b"")))  # an empty compressed message
        assert ws.recv_message() == (BINARY, b"")
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_close(1000)


def test_fragmented_compressed_messages(srv):
    """A compressed message in fragments (RSV1 on the first only), control
    frames between them, sent byte by byte; a character cut between
    fragments; a plain message after a compressed one."""
    payload = ("fragment é " * 500).encode()
    z = deflate(payload)
    third = len(z) // 3
    frames = (zframe(TEXT, z[:third], fin=False) + frame(PING, b"between")
              + frame(CONT, z[third:2 * third], fin=False) + frame(CONT, b"", fin=False)
              + frame(CONT, z[2 * third:]))
    with Raw(srv.port, "/echo", extra=OFFER) as ws:
        ws.send(frames, piece=1)
        assert ws.recv_frame() == (PONG, True, b"between")
        assert ws.recv_message() == (TEXT, payload)
        ws.send(frame(TEXT, b"plain after compressed " * 10))
        assert ws.recv_message() == (TEXT, b"plain after compressed " * 10)
        ws.send(frame(CLOSE, close_payload(1000)))
        ws.expect_close(1000)


def fails(port: int, data: bytes, code: int, path: str = "/echo",
          offer: str = OFFER) -> bytes:
    with Raw(port, path, extra=offer) as ws:
        ws.send(data)
        return ws.expect_close(code)


def test_what_fails(srv):
    z = deflate(b"hello hello hello")
    # RSV1 on a continuation frame, on a control frame; RSV2/RSV3 still errors
    fails(srv.port, zframe(TEXT, z[:2], fin=False) + frame(CONT, z[2:], rsv=4), 1002)
    fails(srv.port, frame(PING, b"x", rsv=4), 1002)
    fails(srv.port, frame(TEXT, z, rsv=2), 1002)
    # RSV1 where nothing was agreed: a route that refuses compression, a
    # client that did not offer it
    fails(srv.port, zframe(TEXT, z), 1002, path="/plain")
    fails(srv.port, zframe(TEXT, z), 1002, offer="")
    # not deflate data; a reserved block type; compressed text that is not UTF-8
    assert fails(srv.port, zframe(BINARY, b"\xff\xfe\xfd"), 1007) == b"invalid compressed data"
    assert fails(srv.port, zframe(TEXT, deflate(b"ok \xc3\x28 not")), 1007) == b"invalid UTF-8"
    # a text message whose inflated end cuts a character
    assert fails(srv.port, zframe(TEXT, deflate("é".encode()[:1])), 1007) == b"invalid UTF-8"


def test_inflation_bombs(srv):
    """Small on the wire, huge inflated: stopped at the route's message
    limit with 1009 (the server inflates no more than a piece past it), and
    the server serves the next client."""
    bomb = deflate(b"\x00" * (1 << 20))      # 1 MiB inflated, ~1 KiB on the wire
    assert len(bomb) < 2000
    assert fails(srv.port, zframe(BINARY, bomb), 1009, path="/zlimited") == b"message too big"
    big = deflate(b"A" * (64 << 20))        # 64 MiB inflated, ~64 KiB on the wire
    assert fails(srv.port, zframe(TEXT, big), 1009) == b"message too big"
    # the same bomb in fragments: the message as a whole is limited
    frames = zframe(BINARY, bomb[:500], fin=False) + frame(CONT, bomb[500:])
    fails(srv.port, frames, 1009, path="/zlimited")
    # exactly the limit inflated is fine
    assert echo(srv.port, zframe(BINARY, deflate(b"\x01" * 1000)), path="/zlimited")[:2] == \
        (BINARY, b"\x01" * 1000)
    assert echo(srv.port, zframe(TEXT, deflate(b"next"))) == (TEXT, b"next", False)


def test_cut_compressed_data(srv):
    """A message cut inside a deflate block (a stored block announcing 10
    bytes and carrying 3): 1007, not the tail taken as data."""
    stored = b"\x00\x0a\x00\xf5\xff" + b"abc"
    assert fails(srv.port, zframe(BINARY, stored), 1007) == b"invalid compressed data"


def test_inflated_messages_keep_the_memory_budget(spawn, backend):
    """A compressed message asks for up to max_message (32 MiB here) with a
    thousandth of it on the wire: an unfinished one that would take the
    process over its memory budget (24 MiB) closes with 1013, and the
    server serves the next client."""
    srv = spawn("ws_app.py", "--memory-budget", str(24 << 20), backend=backend)
    part = deflate(b"\x00" * (30 << 20))
    with Raw(srv.port, "/zbig", extra=OFFER) as ws:
        ws.send(zframe(BINARY, part, fin=False))  # never finished
        assert ws.expect_close(1013) == b"server over its memory budget"
    assert echo(srv.port, zframe(TEXT, deflate(b"after" * 100)), path="/zbig") == \
        (TEXT, b"after" * 100, True)
