"""A graceful shutdown keeps finished work: a handler still running when SIGTERM
arrives finishes (within the shutdown timeout) and its answer is sent — over
HTTP with ``Connection: close`` — before its connection closes; idle
keep-alive connections close at once and new connections are refused
meanwhile; a handler that outlives the timeout is cut off at the timeout
(servers/drain_app.py, one worker)."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from helpers import ServerProcess, closed_by_peer, connect, recv_exact, recv_until_eof

# handoff_ms 2 (the default): a spare thread runs the worker while the handler
# sleeps, so the shutdown starts at once; 0: it starts when the handler returns.
HANDOFF = pytest.mark.parametrize("handoff", ["2", "0"], ids=["handoff", "no-handoff"])


def get(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def read_all(sock: socket.socket, out: dict[str, object]) -> threading.Thread:
    """Read sock to its end in a thread: out["data"] (or out["error"]), out["at"]."""
    def run() -> None:
        try:
            out["data"] = recv_until_eof(sock)
        except OSError as exc:
            out["error"] = repr(exc)
        out["at"] = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def sigterm_during_sleep(srv: ServerProcess, ms: int
                         ) -> tuple[socket.socket, dict[str, object], threading.Thread, float]:
    """GET /sleep/ms, SIGTERM once its handler sleeps: the socket, what its
    reader thread (running) will find, that thread, when the signal went."""
    busy = connect(srv.ports["http"], timeout=20)
    get(busy, f"/sleep/{ms}")
    srv.wait_line(rf"^SLEEPING {ms}$")
    result: dict[str, object] = {}
    reader = read_all(busy, result)
    return busy, result, reader, srv.send_signal(signal.SIGTERM)


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    return status, {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines)}, body


@HANDOFF
def test_sigterm_mid_request_sends_the_answer_with_connection_close(
        spawn, backend: str, handoff: str) -> None:
    srv: ServerProcess = spawn("drain_app.py", "--handoff-ms", handoff, "--shutdown-timeout", "10",
                               backend=backend)
    idle = connect(srv.ports["http"], timeout=20)
    get(idle, "/fast")
    assert recv_exact(idle, 17).startswith(b"HTTP/1.1 200 OK\r\n")
    idle.settimeout(20)
    while not idle.recv(4096).endswith(b"fast"):
        pass
    busy, result, reader, signaled = sigterm_during_sleep(srv, 2000)
    if handoff != "0":
        # The worker is free: the idle connection closes and the listener is
        # gone while the handler still sleeps.
        assert closed_by_peer(idle, timeout=20)
        assert not srv.matching(r"^SLEPT"), "the idle connection waited for the handler"
        with pytest.raises(ConnectionRefusedError):
            connect(srv.ports["http"], timeout=5).close()
    reader.join(30)
    assert "data" in result, result
    status, headers, body = split_response(result["data"])  # type: ignore[arg-type]
    assert status == "HTTP/1.1 200 OK", result
    assert headers.get("connection") == "close", result
    assert body == b"slept 2000", result
    assert closed_by_peer(idle, timeout=20)
    idle.close()
    busy.close()
    finished = srv.finish(timeout=20, sig=None)
    finished.assert_clean()
    assert time.monotonic() - signaled < 15


@HANDOFF
def test_sigterm_mid_callback_sends_a_plain_protocols_answer(
        spawn, backend: str, handoff: str) -> None:
    srv = spawn("drain_app.py", "--handoff-ms", handoff, "--shutdown-timeout", "10",
                backend=backend)
    with connect(srv.ports["lines"], timeout=20) as s:
        s.sendall(b"sleep 1500\n")
        srv.wait_line(r"^SLEEPING 1500$")
        srv.send_signal(signal.SIGTERM)
        assert recv_until_eof(s) == b"slept 1500\n"
    srv.finish(timeout=20, sig=None).assert_clean()


def test_a_handler_outliving_the_shutdown_timeout_is_cut_off(spawn, backend: str) -> None:
    srv = spawn("drain_app.py", "--shutdown-timeout", "0.5", backend=backend)
    busy, result, reader, signaled = sigterm_during_sleep(srv, 6000)
    reader.join(30)
    # Cut off at the timeout (0.5 s), long before the handler's 6 s are over:
    # no answer, a close or a reset.
    assert result.get("data", b"") == b"", result
    assert float(result["at"]) - signaled < 4.0, result  # type: ignore[arg-type]
    assert not srv.matching(r"^SLEPT")
    busy.close()
    srv.finish(timeout=20, sig=None).assert_clean()
