"""Half-close through the Python API (servers/half_close_app.py, two
workers): a protocol with recv_shutdown stays open for sending after the
client's end and shuts its own side (the client reads all, then EOF); a
protocol that shuts first keeps receiving, refuses sends, and closes once
the client ends too; without recv_shutdown the client's end closes the
connection; shutdown_send from a plain thread comes after what it sent; a
factory's protocol gets send_complete and recv_shutdown as a class's does."""

from __future__ import annotations

import socket
import time

from helpers import connect, recv_exact, recv_until_eof

ROUNDS = 4  # connections per case: the kernel spreads them over both workers


def test_answer_after_the_clients_end(spawn, backend: str) -> None:
    srv = spawn("half_close_app.py", backend=backend)
    for _ in range(ROUNDS):
        with connect(srv.ports["answer"]) as s:
            s.sendall(b"hello")
            s.shutdown(socket.SHUT_WR)
            assert recv_until_eof(s) == b"hellobye"
    deadline = time.monotonic() + 30
    while len(srv.matching("^LOST answer None$")) < ROUNDS and time.monotonic() < deadline:
        time.sleep(0.05)
    fin = srv.finish().assert_clean()
    assert fin["connections"] == 0
    assert len(srv.matching("^EOF answer$")) == ROUNDS
    assert len(srv.matching("^SENT-SHUT answer$")) == ROUNDS
    assert len(srv.matching("^LOST answer None$")) == ROUNDS


def test_server_shuts_first_and_keeps_receiving(spawn, backend: str) -> None:
    srv = spawn("half_close_app.py", backend=backend)
    for i in range(ROUNDS):
        with connect(srv.ports["first"]) as s:
            assert recv_until_eof(s) == b"data"
            start = len(srv.lines)
            srv.wait_line("^SENT-SHUT first$", start=0)
            s.sendall(b"more%d" % i)
            srv.wait_line(f"^GOT more{i}$", start=start)
            assert len(srv.matching("^LOST first")) == i  # open while the client sends
            s.shutdown(socket.SHUT_WR)
            srv.wait_line("^EOF first$", start=start)
            assert s.recv(1) == b""
        # both sides shut: the server closes it (before the next round counts)
        srv.wait_line("^LOST first", start=start)
    srv.finish().assert_clean()
    assert len(srv.matching("^REFUSED BrokenPipeError$")) == ROUNDS
    assert len(srv.matching("^LOST first None$")) == ROUNDS


def test_without_recv_shutdown_the_end_closes(spawn, backend: str) -> None:
    srv = spawn("half_close_app.py", backend=backend)
    for _ in range(ROUNDS):
        with connect(srv.ports["plain"]) as s:
            s.sendall(b"hi")
            s.shutdown(socket.SHUT_WR)
            assert recv_until_eof(s) == b"hi"
    srv.finish().assert_clean()
    assert len(srv.matching("^LOST plain None$")) == ROUNDS
    assert not srv.matching("^SENT-SHUT plain")


def test_shutdown_send_from_a_plain_thread(spawn, backend: str) -> None:
    srv = spawn("half_close_app.py", backend=backend)
    for _ in range(ROUNDS):
        with connect(srv.ports["thread"]) as s:
            assert recv_until_eof(s) == b"posted"
            start = len(srv.lines)
            s.sendall(b"x")  # still read: the side is only half shut
            s.shutdown(socket.SHUT_WR)
            srv.wait_line("^LOST thread None$", start=start)  # closed once both ends are over
    srv.finish().assert_clean()
    assert len(srv.matching("^THREAD-REFUSED BrokenPipeError$")) == ROUNDS
    assert len(srv.matching("^SENT-SHUT thread$")) == ROUNDS
    assert len(srv.matching("^EOF thread$")) == ROUNDS
    assert len(srv.matching("^LOST thread None$")) == ROUNDS


def test_a_factorys_protocol_gets_drain_and_end(spawn, backend: str) -> None:
    srv = spawn("half_close_app.py", backend=backend)
    for _ in range(ROUNDS):
        with connect(srv.ports["factory"]) as s:
            assert recv_exact(s, 2) == b"hi"
            s.shutdown(socket.SHUT_WR)
            assert recv_until_eof(s) == b"bye"
    srv.finish().assert_clean()
    assert len(srv.matching("^COMPLETE$")) >= ROUNDS
    assert len(srv.matching("^EOF factory$")) == ROUNDS
    assert len(srv.matching("^LOST factory None$")) == ROUNDS


def test_the_peers_end_while_reading_is_paused_after_ours(spawn, backend: str) -> None:
    # Both directions are over while nothing reads: the unread input and the
    # end wait for the resumed read instead of being reported as a reset.
    srv = spawn("half_close_app.py", backend=backend)
    payload = 64 << 10
    for _ in range(ROUNDS):
        with connect(srv.ports["held"]) as s:
            assert recv_until_eof(s) == b""  # the server's end is out
            s.sendall(b"x" * payload)
            s.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 30
    while len(srv.matching("^LOST held ")) < ROUNDS and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.finish().assert_clean()
    assert len(srv.matching(f"^HELD {payload}$")) == ROUNDS
    assert len(srv.matching("^LOST held None$")) == ROUNDS


def test_the_end_read_while_paused_waits_for_the_input(spawn, backend: str) -> None:
    # The input and the end read past a pause are held; our FIN, out once the
    # client reads the answer, must not close the connection over them.
    srv = spawn("half_close_app.py", backend=backend)
    payload = 64 << 10
    for _ in range(ROUNDS):
        with connect(srv.ports["lagging"]) as s:
            s.sendall(b"x")
            time.sleep(0.05)  # the first input alone
            s.sendall(b"x" * (payload - 1))
            s.shutdown(socket.SHUT_WR)
            time.sleep(0.5)  # the server holds the end meanwhile
            assert recv_until_eof(s) == b"y" * (16 << 20)
    deadline = time.monotonic() + 30
    while len(srv.matching("^LOST lagging ")) < ROUNDS and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.finish().assert_clean()
    assert len(srv.matching(f"^HELD {payload}$")) == ROUNDS
    assert len(srv.matching("^LOST lagging None$")) == ROUNDS


def test_a_file_does_not_overtake_a_posted_shutdown(spawn, backend: str) -> None:
    # The owner sends a file (sent directly, never posted) while another
    # thread's shutdown_send waits on the worker: refused, not sent first.
    srv = spawn("half_close_app.py", backend=backend)
    for _ in range(ROUNDS):
        with connect(srv.ports["filerace"]) as s:
            s.sendall(b"go")
            assert recv_until_eof(s) == b""
            s.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 30
    while len(srv.matching("^LOST filerace ")) < ROUNDS and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.finish().assert_clean()
    assert len(srv.matching("^FILE-REFUSED BrokenPipeError$")) == ROUNDS
    assert len(srv.matching("^LOST filerace None$")) == ROUNDS
