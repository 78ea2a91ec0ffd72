"""One peer cannot stop the server: by default, an exception of a connection
callback that no exception_handler takes is logged with its traceback, counted
(``unhandled_errors``) and closes that connection only; run() goes on serving.
run(raise_errors=True) re-raises instead (test_exceptions.py covers that)."""

from __future__ import annotations

import time

import scenarios
from helpers import connect, recv_exact, recv_until_eof


def test_default_logs_closes_and_serves_on(spawn, backend: str) -> None:
    srv = spawn("raiser.py", "--no-handler", "--log", backend=backend)
    port = srv.ports["echo"]
    with connect(port) as bystander:
        with connect(port) as s:
            s.sendall(b"boom")
            assert recv_until_eof(s) == b""
        scenarios.echo_once(port)  # run() did not leave: the next client is served
        with connect(srv.ports["made"]) as s:
            assert recv_until_eof(s) == b""
        with connect(srv.ports["drain"]) as s:
            assert recv_until_eof(s) == b"first\n"
        with connect(port) as s:
            s.sendall(b"badtype")
            assert recv_until_eof(s) == b""
        with connect(srv.ports["lost"]) as s:  # raises once the peer has closed
            s.sendall(b"x")
            assert recv_exact(s, 1) == b"x"
        bystander.sendall(b"still here")
        assert recv_exact(bystander, 10) == b"still here"
    scenarios.echo_once(port)
    deadline = time.monotonic() + 10
    while "Lost.connection_lost raised" not in srv.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    finished = srv.finish()
    stats = finished.assert_clean(allow_tracebacks=True)
    assert srv.matching(r"^RAISED") == [], "an exception reached run() without raise_errors"
    assert stats["unhandled_errors"] == 5
    assert stats["errors"] == 5
    err = finished.stderr
    for where, what in (("Echo.data_received", "Boom: boom in data_received"),
                        ("Made.connection_made", "Boom: boom in connection_made"),
                        ("Drain.send_complete", "Boom: boom in send_complete"),
                        ("Echo.data_received", "TypeError: cannot send int"),
                        ("Lost.connection_lost", "Boom: boom in connection_lost")):
        assert f"pyparallel: {where} raised" in err, err[-3000:]
        assert what in err, err[-3000:]
    assert err.count("Traceback (most recent call last)") == 4  # the TypeError comes from C


def test_default_logs_an_exception_handler_that_raises(spawn, backend: str) -> None:
    srv = spawn("raiser.py", "--handler", "--log", backend=backend)
    with connect(srv.ports["echo"]) as s:
        s.sendall(b"double")
        assert recv_until_eof(s) == b""
    srv.wait_line(r"^HANDLER data_received Boom first of two ")
    scenarios.echo_once(srv.ports["echo"])
    with connect(srv.ports["echo"]) as s:  # a handler that returns still handles
        s.sendall(b"boom")
        assert recv_until_eof(s) == b"handled\n"
    finished = srv.finish()
    stats = finished.assert_clean(allow_tracebacks=True)
    assert srv.matching(r"^RAISED") == []
    assert stats["unhandled_errors"] == 1
    err = finished.stderr
    assert "pyparallel: EchoH.exception_handler raised" in err, err[-3000:]
    assert "Boom: first of two" in err and "RuntimeError: the handler failed too" in err, err
