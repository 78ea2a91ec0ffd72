"""px.client(host, port, protocol=...): names looked up off the workers,
every address tried (RFC 8305), a connect timeout, and the true cause of a
failure (servers/connector.py, servers/dialer.py). Names come from the
engine's test hook PX_TEST_RESOLVE (deterministic: no DNS involved) unless
said otherwise."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from helpers import CRASH_MARKERS, SERVERS, child_env, connect, recv_exact

NAMES = ("nowhere.test=;mixed.test=::1,224.0.0.1;two.test=::1,127.0.0.1;"
         "stagger.test=127.0.0.2,127.0.0.1;slow.test=127.0.0.1;")


def run_connector(backend: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    res = subprocess.run([sys.executable, str(SERVERS / "connector.py"), *args],
                         env=child_env(backend, {"PX_TEST_RESOLVE": NAMES, **(env or {})}),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    for marker in CRASH_MARKERS + ("Traceback",):
        assert marker not in res.stderr, res.stderr
    lines = res.stdout.splitlines()
    stats = [json.loads(l[6:]) for l in lines if l.startswith("STATS ")]
    if stats:  # every attempt's connection closed, nothing pooled left
        assert stats[-1]["connections"] == 0 and stats[-1]["pool_in_use"] == 0, stats
    return lines


def elapsed(lines: list[str]) -> float:
    return float([l for l in lines if l.startswith("ELAPSED ")][-1].split()[1])


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.2 whose listener's backlog is full: SYNs go
    unanswered, a connect neither succeeds nor fails."""
    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.2", port))
        fillers.append(s)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.2", port))
        pytest.skip("this kernel answers SYNs past a full backlog: no blackhole on loopback")
    except TimeoutError:
        pass
    finally:
        probe.close()
    yield port
    for s in fillers:
        s.close()
    listener.close()


def test_bad_name_is_gaierror(backend: str) -> None:
    lines = run_connector(backend, "fail", "nowhere.test", "80")
    assert "RAISED gaierror: [Errno -2] Name or service not known" in lines


def test_unknown_name_of_the_real_resolver_is_gaierror(backend: str) -> None:
    # .invalid never resolves (RFC 6761); whatever the resolver says, it is a
    # gaierror (no name, or no resolver reachable), never EADDRNOTAVAIL.
    lines = run_connector(backend, "fail", "no-such-host.invalid", "80")
    assert any(re.match(r"RAISED gaierror: \[Errno -\d+\] ", l) for l in lines), lines


def test_refused_is_connection_refused(backend: str) -> None:
    with socket.socket() as reserved:  # bound, not listening
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        lines = run_connector(backend, "fail", "127.0.0.1", str(port))
        assert "RAISED ConnectionRefusedError: [Errno 111] Connection refused" in lines
        # The protocol's connection_failed gets it instead, and run() returns.
        lines = run_connector(backend, "failed-cb", "127.0.0.1", str(port))
        assert "FAILED ConnectionRefusedError: [Errno 111] Connection refused" in lines
        assert "RUN returned" in lines


def test_different_errors_are_listed(backend: str) -> None:
    # ::1 refuses; a multicast address is unreachable for TCP.
    with socket.socket(socket.AF_INET6) as reserved:
        reserved.bind(("::1", 0))
        port = reserved.getsockname()[1]
        lines = run_connector(backend, "fail", "mixed.test", str(port))
    assert (f"RAISED OSError: Multiple exceptions: [Errno 111] Connection refused "
            f"('::1', {port}), [Errno 101] Network is unreachable ('224.0.0.1', {port})"
            in lines), lines


def test_unanswered_connect_times_out(backend: str, blackhole: int) -> None:
    lines = run_connector(backend, "fail", "127.0.0.2", str(blackhole), "1.0")
    assert "RAISED TimeoutError: [Errno 110] Connection timed out" in lines, lines
    assert 0.9 <= elapsed(lines) < 20


def test_first_address_refuses_second_accepts(backend: str) -> None:
    lines = run_connector(backend, "ok", "two.test", "0")
    assert "CONNECTED 127.0.0.1" in lines and "RUN returned" in lines


def test_first_address_silent_second_accepts_after_the_delay(backend: str,
                                                             blackhole: int) -> None:
    # 127.0.0.2 never answers: the next address is tried attempt_delay later
    # (0.1 s here), long before the 30 s timeout; the silent attempt is
    # cancelled (no connection left at exit).
    lines = run_connector(backend, "ok", "stagger.test", str(blackhole))
    assert "CONNECTED 127.0.0.1" in lines and "RUN returned" in lines
    assert elapsed(lines) < 20


def test_caller_worker_needs_a_callback(backend: str) -> None:
    lines = run_connector(backend, "caller-outside")
    assert any(l.startswith("REFUSED ValueError: worker='caller'") for l in lines), lines


def test_a_slow_lookup_never_blocks_the_worker(spawn, backend: str) -> None:
    # One worker; a callback asks for a name whose lookup takes 5 s. Meanwhile
    # that worker serves another connection.
    srv = spawn("dialer.py", "--workers", "1", backend=backend,
                env={"PX_TEST_RESOLVE": NAMES, "PX_TEST_RESOLVE_DELAY_MS": "5000",
                     "DIAL_HOST": "slow.test"})
    with connect(srv.ports["dial"]):
        srv.wait_line(r"^DIALING 0$")
        with connect(srv.ports["echo"]) as sock:
            sock.sendall(b"served")
            assert recv_exact(sock, 6) == b"served"
        assert not srv.matching(r"^DIAL 0 "), "the lookup ended before the echo"
        line = srv.wait_line(r"^DIAL 0 ", timeout=30)
    assert line == "DIAL 0 caller=0 up=0"
    srv.finish().assert_clean()


@pytest.mark.parametrize("worker", ["caller", "any"])
def test_clients_from_callbacks_on_the_chosen_worker(spawn, backend: str, worker: str) -> None:
    srv = spawn("dialer.py", "--workers", "2", "--worker", worker, backend=backend,
                env={"PX_TEST_RESOLVE": NAMES, "DIAL_HOST": "two.test"})
    socks = [connect(srv.ports["dial"]) for _ in range(8)]
    try:
        for n in range(8):
            srv.wait_line(rf"^DIAL {n} ", timeout=30)
    finally:
        for s in socks:
            s.close()
    dials = [re.match(r"DIAL \d+ caller=(\d) up=(\d)$", l) for l in srv.matching(r"^DIAL \d")]
    assert all(dials), srv.matching(r"^DIAL \d")
    pairs = [(int(m.group(1)), int(m.group(2))) for m in dials if m]
    if worker == "caller":
        assert all(caller == up for caller, up in pairs), pairs
    else:  # the engine's choice: round robin over both workers
        assert {up for _, up in pairs} == {0, 1}, pairs
    srv.finish().assert_clean()


def test_a_finished_client_leaves_nothing_behind(backend: str) -> None:
    # 200 clients made by factories whose closures hold an object each, half
    # refused: once all have ended, the engine holds none of those objects.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        lines = run_connector(backend, "freed", str(reserved.getsockname()[1]))
    assert "ALIVE 0" in lines, lines
