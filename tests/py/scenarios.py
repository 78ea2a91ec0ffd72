"""Scenarios shared by several suites (run on each backend, and again with
io_uring refused): each drives a running server and asserts what it promises."""

from __future__ import annotations

import os
import threading

from helpers import ServerProcess, connect, recv_exact, recv_until_eof


def echo_many(port: int, clients: int = 50, size: int = 256 * 1024) -> None:
    """Concurrent clients each get back exactly the random bytes they sent."""
    failures: list[str] = []

    def one(i: int) -> None:
        data = os.urandom(size)
        try:
            with connect(port, timeout=20) as s:
                reader_result: list[bytes] = []
                reader = threading.Thread(target=lambda: reader_result.append(recv_exact(s, size)))
                reader.start()
                for pos in range(0, size, 7919):  # odd-sized writes
                    s.sendall(data[pos:pos + 7919])
                reader.join(20)
                if reader_result != [data]:
                    failures.append(f"client {i}: wrong echo")
        except (OSError, AssertionError) as exc:
            failures.append(f"client {i}: {exc!r}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:5]


def echo_once(port: int, msg: bytes = b"still serving") -> None:
    with connect(port) as s:
        s.sendall(msg)
        assert recv_exact(s, len(msg)) == msg


def exceptions_with_handler(srv: ServerProcess) -> None:
    """raiser.py --handler: the handler gets (transport, syscall, exc_info), may
    still send, and the server goes on serving every other connection."""
    port = srv.ports["echo"]
    with connect(port) as bystander:
        bystander.sendall(b"before")
        assert recv_exact(bystander, 6) == b"before"

        with connect(port) as s:
            s.sendall(b"boom")
            assert recv_until_eof(s) == b"handled\n"
        srv.wait_line(r"^HANDLER data_received Boom boom in data_received Transport "
                      r"traceback True$")

        with connect(srv.ports["made"]) as s:
            assert recv_until_eof(s) == b""  # a failed connection_made closes the connection
        srv.wait_line(r"^HANDLER connection_made Boom boom in connection_made Transport "
                      r"traceback True$")

        with connect(srv.ports["drain"]) as s:
            assert recv_until_eof(s) == b"first\nhandled\n"
        srv.wait_line(r"^HANDLER send_complete Boom boom in send_complete Transport "
                      r"traceback True$")

        with connect(port) as s:
            s.sendall(b"badtype")
            assert recv_until_eof(s) == b"handled\n"
        # Raised from C code: no Python frame, so no traceback object.
        srv.wait_line(r"^HANDLER data_received TypeError cannot send int: .* Transport "
                      r"NoneType True$")

        # The connection that was open all along still works, and new ones too.
        bystander.sendall(b"after")
        assert recv_exact(bystander, 5) == b"after"
    echo_once(port)
    assert srv.matching(r"^RAISED") == [], "an exception with a handler reached run()"


def handler_that_raises(srv: ServerProcess) -> None:
    """An exception_handler that raises: that exception (chained to the first)
    is re-raised from run() in the main thread."""
    with connect(srv.ports["echo"]) as s:
        s.sendall(b"double")
        assert recv_until_eof(s) == b""
    srv.wait_line(r"^RAISED RuntimeError: the handler failed too "
                  r"\(context Boom: first of two\)$")
    echo_once(srv.ports["echo"])


def exceptions_without_handler(srv: ServerProcess) -> None:
    """raiser.py --no-handler on one worker: each exception is re-raised from
    run() in the main thread, the connection that raised is closed, and the
    worker keeps serving the others and later ones."""
    port = srv.ports["echo"]
    with connect(port) as bystander:
        with connect(port) as s:
            s.sendall(b"boom")
            assert recv_until_eof(s) == b""
        srv.wait_line(r"^RAISED Boom: boom in data_received$")
        echo_once(port)

        with connect(srv.ports["made"]) as s:
            assert recv_until_eof(s) == b""
        srv.wait_line(r"^RAISED Boom: boom in connection_made$")

        with connect(srv.ports["drain"]) as s:
            assert recv_until_eof(s) == b"first\n"
        srv.wait_line(r"^RAISED Boom: boom in send_complete$")

        bystander.sendall(b"still here")
        assert recv_exact(bystander, 10) == b"still here"
    echo_once(port)
    assert len(srv.matching(r"^RAISED")) == 3
