"""SIGTERM (and SIGINT) under load: the server stops accepting, finishes the
sends in flight, closes every connection and exits 0 within seconds."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from helpers import MiB, ServerProcess, connect, example, recv_exact, recv_until_eof

PATTERN = bytes(i * 7 % 251 for i in range(251 * 4096))


def pattern(n: int) -> bytes:
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


class Drinker(threading.Thread):
    """A chargen client reading as fast as it can until the server closes."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = connect(port, timeout=15)
        self.received = 0
        self.ended = ""

    def run(self) -> None:
        try:
            while data := self.sock.recv(1 << 20):
                self.received += len(data)
            self.ended = "eof"
        except OSError as exc:
            self.ended = repr(exc)
        finally:
            self.sock.close()


def wait_for_bytes_in(srv: ServerProcess, expected: int, timeout: float = 30.0) -> None:
    """Until the server has read `expected` bytes (its bytes_in counter)."""
    deadline = time.monotonic() + timeout
    while (got := srv.stats()["total"]["bytes_in"]) < expected:
        assert time.monotonic() < deadline, f"the server read {got} of {expected} bytes"
        time.sleep(0.05)


def read_in_thread(sock: socket.socket, out: dict[str, bytes | str], key: str) -> threading.Thread:
    def run() -> None:
        try:
            out[key] = recv_until_eof(sock)
        except OSError as exc:
            out[key] = repr(exc)
        finally:
            sock.close()  # the server lingers until its peers have closed
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_under_load_completes_inflight_sends(spawn, backend: str, sig: int) -> None:
    srv: ServerProcess = spawn("mixed.py", "--workers", "2", backend=backend)
    drinkers = [Drinker(srv.ports["chargen"]) for _ in range(4)]
    for d in drinkers:
        d.start()
    # Echo clients with tiny receive windows: their replies stay queued in the server.
    payload = pattern(512 * 1024)
    echoes = [connect(srv.ports["echo"], timeout=15, rcvbuf=4096) for _ in range(4)]
    for s in echoes:
        s.sendall(payload)
    # A bulk reply far larger than any socket buffer, partly read before the signal.
    bulk = connect(srv.ports["bulk"], timeout=15)
    bulk.sendall(b"%d\n" % (16 * MiB))
    head = recv_exact(bulk, 64 * 1024)
    # The signal must find every request read and its reply in flight: data the
    # server has not read yet is not in flight, and a loaded machine can take
    # longer than any fixed pause to read 2 MiB.
    wait_for_bytes_in(srv, len(echoes) * len(payload) + len(b"%d\n" % (16 * MiB)))
    assert all(d.received > 0 for d in drinkers)

    signaled = srv.send_signal(sig)
    results: dict[str, bytes | str] = {}
    readers = [read_in_thread(s, results, f"echo{i}") for i, s in enumerate(echoes)]
    readers.append(read_in_thread(bulk, results, "bulk"))
    for t in readers:
        t.join(20)
    for d in drinkers:
        d.join(20)
    finished = srv.finish(timeout=15, sig=None)
    exited = time.monotonic() - signaled
    for i in range(len(echoes)):
        got = results.get(f"echo{i}")
        assert got == payload, (f"echo client {i} got "
                                f"{len(got) if isinstance(got, bytes) else got} of {len(payload)}")
    got = results.get("bulk")
    assert isinstance(got, bytes) and head + got == pattern(16 * MiB), (
        f"bulk client got {len(head) + len(got) if isinstance(got, bytes) else got} "
        f"of {16 * MiB} bytes")
    assert [d.ended for d in drinkers] == ["eof"] * len(drinkers)
    finished.assert_clean()
    assert exited < 5.0, f"exit {exited:.2f} s after the signal"


def test_sigterm_with_a_stuck_client_exits_after_shutdown_timeout(spawn, backend: str) -> None:
    """A peer that never reads cannot hold the process: after shutdown_timeout
    (1 s here) its connection is aborted and the process exits 0."""
    srv = spawn("mixed.py", "--workers", "1", "--shutdown-timeout", "1", backend=backend)
    stuck = connect(srv.ports["chargen"], rcvbuf=4096)
    try:
        with connect(srv.ports["echo"]) as s:
            s.sendall(b"ping")
            assert recv_exact(s, 4) == b"ping"
        time.sleep(0.2)
        finished = srv.finish(timeout=10)
    finally:
        stuck.close()
    finished.assert_clean()
    assert 0.8 <= finished.elapsed < 3.0, f"exit {finished.elapsed:.2f} s after SIGTERM"


def test_new_connections_refused_after_sigterm(spawn, backend: str) -> None:
    """While a stuck peer keeps the process in its shutdown, new connections
    are refused rather than accepted and dropped."""
    srv = spawn("mixed.py", "--workers", "2", "--shutdown-timeout", "2", backend=backend)
    stuck = connect(srv.ports["chargen"], rcvbuf=4096)
    try:
        time.sleep(0.2)
        srv.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert srv.proc.poll() is None, "exited before the shutdown timeout"
        for name in ("echo", "bulk", "chargen"):
            with pytest.raises(ConnectionRefusedError):
                connect(srv.ports[name], timeout=3)
        finished = srv.finish(timeout=10, sig=None)
    finally:
        stuck.close()
    finished.assert_clean()


def test_sigterm_right_after_listening_line_exits_cleanly(spawn, backend: str) -> None:
    """From the listening line on, a SIGTERM is a graceful shutdown. Several
    attempts: each signal lands somewhere in the start-up of run()."""
    for _ in range(8):
        srv = spawn(*example("echo", "--workers", "2"), backend=backend)
        srv.finish(timeout=10).assert_clean()
