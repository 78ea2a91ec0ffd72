"""wsgi.input.read() of a large body in one call costs about what reading
it piecewise does (CPU of the app's thread): the buffer grows
geometrically, not by a copy of everything read so far each step, and a
Content-Length body ends in a buffer of its size (no last copy)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from wsgi_helpers import served

from helpers import BACKENDS, ServerProcess
from http_helpers import request

MIB = 1 << 20
SIZE = 128 * MIB


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with served(request.param, "upload_app:app", "--workers", "2",
                "--max-body", str(1 << 30)) as proc:
        yield proc


def upload(port: int, path: str, chunked: bool = False) -> tuple[int, float]:
    block = b"y" * MIB
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(SIZE)}
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(request("POST", path, {**framing, "Connection": "close"}))
        for _ in range(SIZE // MIB):
            s.sendall(b"%x\r\n%s\r\n" % (MIB, block) if chunked else block)
        if chunked:
            s.sendall(b"0\r\n\r\n")
        reply = s.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    length, cpu = reply.split(b"\r\n\r\n", 1)[1].split()
    return int(length), float(cpu)


def least_cpu(port: int, path: str, chunked: bool) -> float:
    """The least CPU of three uploads: a fresh page's first touch costs the
    app's thread very different times from one run to the next on a
    virtual machine, and the least is what the code itself costs."""
    runs = [upload(port, path, chunked) for _ in range(3)]
    assert all(length == SIZE for length, _ in runs)
    return min(cpu for _, cpu in runs)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_read_all_is_linear(server: ServerProcess, chunked: bool) -> None:
    pieces_cpu = least_cpu(server.port, "/read-pieces", chunked)
    all_cpu = least_cpu(server.port, "/read-all", chunked)
    # copying all that was read at each 1 MiB step is ~64x the body in memcpy
    # (and page faults): seconds, where linear is a fraction of one
    assert all_cpu < 4 * pieces_cpu + 0.5, (
        f"read() of {SIZE // MIB} MiB took {all_cpu:.2f} s of CPU, "
        f"piecewise {pieces_cpu:.2f} s")
