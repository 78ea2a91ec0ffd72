"""Protocol factories: a callable that returns a protocol instance works
wherever a protocol class does (servers, clients); one that raises or returns
something that is not a protocol costs that connection only, reported, and
the server keeps serving (servers/factories.py)."""

from __future__ import annotations

import re
import time

from helpers import closed_by_peer, connect, recv_exact


def exchange(port: int, data: bytes, want: int) -> bytes:
    with connect(port) as sock:
        sock.sendall(data)
        return recv_exact(sock, want)


def test_factories_serve_like_classes(spawn, backend: str) -> None:
    srv = spawn("factories.py", backend=backend)
    assert exchange(srv.ports["lambda"], b"abc", 3) == b"abc"
    with connect(srv.ports["partial"]) as sock:
        assert recv_exact(sock, 6) == b"hello\n"
        sock.sendall(b"xyz")
        assert recv_exact(sock, 3) == b"xyz"
    # One call of the factory object per connection.
    seen = set()
    for _ in range(3):
        with connect(srv.ports["object"]) as sock:
            line = recv_exact(sock, 7)
            assert line.startswith(b"made ")
            seen.add(line)
    assert seen == {b"made 1\n", b"made 2\n", b"made 3\n"}
    # The instance's class decides the behaviour: line mode here.
    assert exchange(srv.ports["lines"], b"one\ntwo\n", 8) == b"ONE\nTWO\n"
    srv.finish().assert_clean()


def wait_reported(srv, pattern: str, timeout: float = 20.0) -> None:
    """The error was reported: re-raised by run() (a RAISED line) or logged."""
    deadline = time.monotonic() + timeout
    while not (srv.matching(pattern) or re.search(pattern, srv.stderr_text())):
        assert time.monotonic() < deadline, f"{pattern!r} never reported\n{srv.stderr_text()}"
        time.sleep(0.05)


def check_refused(srv, name: str, message: str) -> None:
    with connect(srv.ports[name]) as sock:
        assert closed_by_peer(sock), f"{name}: the connection stays open"
    wait_reported(srv, message)
    # The server serves on: the same port again, and another.
    with connect(srv.ports[name]) as sock:
        assert closed_by_peer(sock)
    assert exchange(srv.ports["lambda"], b"still", 5) == b"still"


def test_factory_failures_close_that_connection_only(spawn, backend: str) -> None:
    srv = spawn("factories.py", backend=backend)
    srv.allow_tracebacks = True  # reported errors may be logged with their traceback
    check_refused(srv, "raises", r"ValueError: factory refused the connection")
    check_refused(srv, "none", r"TypeError: .*returned None, not a protocol")
    check_refused(srv, "notproto", r"TypeError: .*returned an instance of object, not a protocol")
    check_refused(srv, "http", r"TypeError: .*HttpServer.*register the class")
    srv.finish().assert_clean(allow_tracebacks=True)


def test_client_with_a_factory(spawn, backend: str) -> None:
    srv = spawn("factories.py", "--client", backend=backend)
    srv.wait_line(r"^CLIENT got b'ping'$", timeout=20)
    srv.finish().assert_clean()


def test_an_instance_is_not_a_protocol_class() -> None:
    import pyparallel as px
    try:
        px.register(transport=px.client("127.0.0.1", 9), protocol=object())  # type: ignore[arg-type]
    except TypeError as exc:
        assert "protocol" in str(exc)
    else:
        raise AssertionError("an instance that is not callable was accepted")
