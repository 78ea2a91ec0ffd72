"""The example services (python -m pyparallel.examples.NAME) behave as their
RFCs say on both backends and exit cleanly; the serving life cycle of the API."""

from __future__ import annotations

import json
import time

from helpers import ServerProcess, connect, example, recv_exact, recv_until_eof
from pyparallel.examples import chargen, qotd


def run_example(spawn, name: str, backend: str) -> ServerProcess:
    return spawn(*example(name, "--workers", "2"), backend=backend)


def test_echo(spawn, backend: str) -> None:
    srv = run_example(spawn, "echo", backend)
    with connect(srv.port) as s:
        for size in (1, 100, 70000):
            data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
            s.sendall(data)
            assert recv_exact(s, len(data)) == data
    srv.finish().assert_clean()


def test_chargen_streams_the_cycle(spawn, backend: str) -> None:
    srv = run_example(spawn, "chargen", backend)
    with connect(srv.port) as s:
        data = recv_exact(s, 1 << 20)
    cycle = chargen._CYCLE * 2
    lines = data.split(b"\r\n")[:-1]
    assert lines[0] == chargen._CYCLE[:72]
    assert all(len(line) == 72 for line in lines)
    # Any run of lines is a slice of the repeating 95-line cycle.
    start = 0
    for i in range(0, len(data) - 7400, 7400):
        assert data[i:i + 7400] in cycle
        start += 1
    srv.finish().assert_clean()


def test_daytime_one_line_then_close(spawn, backend: str) -> None:
    srv = run_example(spawn, "daytime", backend)
    for _ in range(3):
        with connect(srv.port) as s:
            data = recv_until_eof(s)
        assert data.endswith(b"\r\n") and data.count(b"\n") == 1
        assert str(time.localtime().tm_year).encode() in data
    srv.finish().assert_clean()


def test_qotd_one_quote_then_close(spawn, backend: str) -> None:
    srv = run_example(spawn, "qotd", backend)
    for _ in range(5):
        with connect(srv.port) as s:
            data = recv_until_eof(s)
        assert data[:-2] in qotd.Qotd.QUOTES and data.endswith(b"\r\n")
    srv.finish().assert_clean()


def test_discard_swallows(spawn, backend: str) -> None:
    srv = run_example(spawn, "discard", backend)
    with connect(srv.port) as s:
        s.sendall(b"z" * 500_000)
        s.shutdown(1)
        assert recv_until_eof(s) == b""
    stats = srv.finish().assert_clean()
    assert stats["bytes_in"] == 500_000 and stats["bytes_out"] == 0


def test_listening_line_means_accepting(spawn, backend: str) -> None:
    srv = spawn("api_checks.py", "announce", "echo", backend=backend)
    assert srv.wait_line(r"^CONNECT ") == "CONNECT ok"
    with connect(srv.port) as s:
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"


def test_run_after_run_once_keeps_serving(spawn, backend: str) -> None:
    srv = spawn("api_checks.py", "run_once", backend=backend)
    time.sleep(0.6)  # run() checks twice a second
    assert srv.proc.poll() is None, "run() returned: the server stopped"
    with connect(srv.port) as s:
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"


def test_stats_after_run_returns(spawn, backend: str) -> None:
    srv = spawn("api_checks.py", "stats_after_run", backend=backend)
    with connect(srv.port) as s:
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"
    finished = srv.finish()
    assert finished.rc == 0
    after = json.loads([l for l in finished.stdout if l.startswith("AFTER ")][0][6:])
    assert after["total"].get("accepts", 0) >= 1
    assert after["total"]["connections"] == 0


def test_sigterm_between_reraise_and_rerun_is_graceful(spawn, backend: str) -> None:
    srv = spawn("api_checks.py", "rerun", backend=backend)
    with connect(srv.port) as s:
        s.sendall(b"boom")
        assert recv_until_eof(s) == b""
    srv.wait_line(r"^RAISED Boom\('boom'\)$")
    with connect(srv.port) as s:  # the engine still serves meanwhile
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"
    finished = srv.finish(timeout=5)  # 1 s of handling, then a quick shutdown
    finished.assert_clean()
    assert "RUN returned" in finished.stdout
