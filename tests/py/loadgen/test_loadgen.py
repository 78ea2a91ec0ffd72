"""pyparallel-bench, the open-loop load generator (pyparallel.loadgen).

The generator runs in the test process on the backend under test; the servers
are plain threaded Python (servers/delayed_http.py) with a known behaviour:
1 ms per request plus a 50 ms stall once every 1,000 requests, or closing,
refusing, never answering, answering 500, or framing responses every legal
way. Latencies are measured from each request's scheduled time, so the stall
must show in the tail even though the generator's connection was busy while the
later requests came due."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import HOST, SERVERS, ServerProcess, child_env
from pyparallel.loadgen import LoadgenError, Result, build_request, parse_url, run

StartServer = Callable[[str], ServerProcess]


@pytest.fixture
def http_server() -> Iterator[StartServer]:
    """http_server(mode) -> a running servers/delayed_http.py; stopped (and
    checked to exit cleanly) at teardown."""
    procs: list[ServerProcess] = []

    def start(mode: str) -> ServerProcess:
        proc = ServerProcess([sys.executable, str(SERVERS / "delayed_http.py"), "--mode", mode],
                             child_env(None))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        try:
            done = proc.finish()
            assert done.rc == 0, done.describe()
            assert "Traceback" not in done.stderr, done.describe()
        finally:
            proc.close()


def served(proc: ServerProcess) -> int:
    """Requests the server saw (after it stopped)."""
    done = proc.finish()
    lines = [l for l in done.stdout if l.startswith("SERVED ")]
    assert lines, done.describe()
    return int(json.loads(lines[-1][7:])["requests"])


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port where nothing listens for as long as the test runs: bound by a
    socket that never listens, so that no other process (a server started by a
    test running beside this one) can take it meanwhile."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        yield int(s.getsockname()[1])


def url(proc: ServerProcess, path: str = "/json") -> str:
    return f"http://{HOST}:{proc.port}{path}"


def check_accounting(r: Result) -> None:
    """Every scheduled request ended exactly one way."""
    assert r["responses"] + r.failed + r["cancelled"] == r["scheduled"], r
    assert r["latency_us"]["count"] == r["responses"]


# ---- the stall test: open loop, latency from the scheduled time ------------

def test_stall_shows_in_the_tail_and_rate_holds(http_server: StartServer, backend: str) -> None:
    srv = http_server("delay")
    r = run(url(srv), rate=2000, duration=3, connections=10, backend=backend)
    print(json.dumps({k: v for k, v in r.items() if k != "latency_us"}))
    print(r["latency_us"]["percentiles"])
    check_accounting(r)
    assert r["backend"] == {"uring": "io_uring", "epoll": "epoll"}[backend]
    assert r["scheduled"] == 6000
    assert r["responses"] == 6000, r["errors"]
    assert r.failed == 0 and r["non_2xx_3xx"] == 0
    assert served(srv) == 6000
    # 1 ms of service: the median is never below it and stays near it.
    assert 1.0 <= r.percentile(50) < 3.0, r["latency_us"]["percentiles"]
    # Six 50 ms stalls, each also delaying the requests queued behind it on its
    # connection (due every 5 ms: 51, 47, 43 ... ms): p99.9 and the max carry them.
    assert r.percentile(99.9) >= 45.0, r["latency_us"]["percentiles"]
    assert r.percentile(100) >= 50.0
    # The schedule was kept: 6000 responses over 3 s (plus the last latency).
    assert abs(r.achieved_rate - 2000) / 2000 < 0.03, r.achieved_rate
    assert 2.99 <= r["elapsed"] < 3.1


# ---- failures, counted by cause ---------------------------------------------

def test_refused_connections_count_as_connect_errors(backend: str, refused_port: int) -> None:
    r = run(f"http://{HOST}:{refused_port}/", rate=200, duration=0.5, connections=4,
            backend=backend)
    check_accounting(r)
    assert r["scheduled"] == 100
    assert r["errors"]["connect"] == 100
    assert r["responses"] == 0 and r["sent"] == 0
    assert 4 <= r["connect_errors"] <= 104  # at most one attempt per request


def test_server_closing_counts_read_errors(http_server: StartServer, backend: str) -> None:
    srv = http_server("close")
    r = run(url(srv), rate=200, duration=0.5, connections=4, backend=backend)
    check_accounting(r)
    assert r["responses"] == 0
    assert r["errors"]["read"] + r["errors"]["write"] == 100, r["errors"]
    assert r["errors"]["connect"] == r["errors"]["timeout"] == 0
    assert served(srv) >= r["errors"]["read"]


def test_silent_server_counts_timeouts(http_server: StartServer, backend: str) -> None:
    srv = http_server("silent")
    r = run(url(srv), rate=40, duration=0.5, connections=2, timeout=0.3, backend=backend)
    check_accounting(r)
    assert r["responses"] == 0
    assert r["errors"]["timeout"] == 20, r["errors"]
    # The run ends one timeout after its schedule, not later.
    assert r["elapsed"] < 2.0


def test_non_2xx_responses_are_counted(http_server: StartServer, backend: str) -> None:
    srv = http_server("status500")
    r = run(url(srv), rate=400, duration=0.5, connections=4, backend=backend)
    check_accounting(r)
    assert r["responses"] == 200 == r["non_2xx_3xx"]
    assert r.failed == 0


def test_every_framing_is_read_to_its_end(http_server: StartServer, backend: str) -> None:
    srv = http_server("framing")
    r = run(url(srv), rate=200, duration=1, connections=4, backend=backend)
    check_accounting(r)
    assert r["responses"] == 200, (r["errors"], r["protocol_errors"])
    assert r.failed == 0 and r["protocol_errors"] == 0 and r["non_2xx_3xx"] == 0
    # Connection: close and close-delimited bodies (2 of every 5) reconnect.
    assert r["connects"] >= 80
    assert served(srv) == 200


# ---- URLs, requests and the command line -----------------------------------

def test_parse_url_and_request() -> None:
    t = parse_url("http://127.0.0.1:8080/a/b?x=1")
    assert (t.host, t.port, t.target, t.host_header) == ("127.0.0.1", 8080, "/a/b?x=1",
                                                         "127.0.0.1:8080")
    t6 = parse_url("http://[::1]/")
    assert (t6.host, t6.port, t6.host_header) == ("::1", 80, "[::1]")
    assert parse_url("http://example.com").target == "/"
    req = build_request(t, "POST", ("X-A: 1",), b"hello")
    assert req.startswith(b"POST /a/b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\n")
    assert req.endswith(b"Content-Length: 5\r\n\r\nhello")
    for bad, why in [("ftp://x/", "not an http:// URL"), ("https://x/", "https is not supported"),
                     ("http:///x", "no host"), ("http://x:99999/", "bad port"),
                     ("http://u:p@x/", "user information"), ("http://x/a b", "space"),
                     ("x:80", "not an http:// URL")]:
        with pytest.raises(LoadgenError, match=why):
            parse_url(bad)
    for header in ("NoColon", "Bad Name: x", "Host: other", "X: a\r\nY: b"):
        with pytest.raises(LoadgenError):
            build_request(t, headers=(header,))
    with pytest.raises(LoadgenError, match="not an HTTP token"):
        build_request(t, method="GE T")


def bench_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyparallel.loadgen", *args],
                          capture_output=True, text=True, timeout=timeout, env=child_env(None))


@pytest.mark.parametrize("args, status, message", [
    (["ftp://127.0.0.1/", "--rate", "10"], 2, "not an http:// URL"),
    (["https://127.0.0.1/", "--rate", "10"], 2, "https is not supported"),
    (["http://127.0.0.1:1/"], 2, "--rate"),                       # required
    (["http://127.0.0.1:1/", "--rate", "0"], 2, "--rate must be"),
    (["http://127.0.0.1:1/", "--rate", "10", "-d", "soon"], 2, "not a duration"),
    (["http://127.0.0.1:1/", "--rate", "10", "-c", "0"], 2, "--connections must be"),
    (["http://127.0.0.1:1/", "--rate", "10", "-t", "0"], 2, "--workers must be"),
    (["http://127.0.0.1:1/", "--rate", "10", "-H", "nonsense"], 2, "not 'Name: value'"),
    (["http://no-such-host.invalid/", "--rate", "10"], 1, "cannot resolve host"),
])
def test_cli_rejects_bad_arguments(args: list[str], status: int, message: str) -> None:
    res = bench_cli(*args)
    assert res.returncode == status, res.stderr
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def check_spectrum(doc: dict[str, Any]) -> None:
    rows = doc["percentiles"]
    assert rows[0]["percentile"] == 0.0 and rows[-1]["percentile"] == 100.0
    assert rows[-1]["value_ms"] == doc["latency_ms"]["max"]
    assert rows[-1]["total_count"] == doc["responses"]
    for a, b in zip(rows, rows[1:]):
        assert a["percentile"] < b["percentile"]
        assert a["value_ms"] <= b["value_ms"]
        assert a["total_count"] <= b["total_count"]


def test_cli_report_json_and_chart(http_server: StartServer, backend: str,
                                   tmp_path: Path) -> None:
    srv = http_server("delay")
    outs = []
    for i, rate in enumerate((300, 600)):
        out = tmp_path / f"run{i}.json"
        res = bench_cli(url(srv), "--rate", str(rate), "--duration", "1s", "-c", "5",
                        "--backend", backend, "--json", str(out), "--label", f"r{rate}",
                        "--spectrum")
        assert res.returncode == 0, res.stderr
        text = res.stdout
        assert f"Running 1s test @ {url(srv)}" in text
        for level in ("50.000%", "99.900%", "99.999%", "100.000%", "Detailed Percentile"):
            assert level in text
        assert "Requests/sec:" in text and f"(asked {rate}.00)" in text
        doc = json.loads(out.read_text())
        assert doc["label"] == f"r{rate}" and doc["rate"] == rate
        assert doc["responses"] == doc["requests"] == rate
        assert doc["latency_ms"]["summary"][0]["percentile"] == 50.0
        check_spectrum(doc)
        outs.append(str(out))
    pytest.importorskip("matplotlib", reason="the chart needs matplotlib "
                        "(tools/requirements-test.txt installs it)")
    png = tmp_path / "chart.png"
    res = bench_cli("chart", *outs, "-o", str(png), "--title", "two rates")
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = bench_cli("chart", str(bad), "-o", str(png))
    assert res.returncode == 2 and "not a pyparallel-bench --json file" in res.stderr


def test_ctrl_c_stops_early_and_reports(http_server: StartServer, backend: str) -> None:
    srv = http_server("delay")
    proc = subprocess.Popen([sys.executable, "-m", "pyparallel.loadgen", url(srv), "--rate", "200",
                             "--duration", "60", "-c", "4", "--backend", backend],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(None))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed as the run starts
        assert first.startswith("Running 60s test @ "), first
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in out and "Cancelled by the stop:" in out
    m = re.search(r"(\d+) responses to 12000 scheduled requests", out)
    assert m is not None, out
    assert 100 <= int(m.group(1)) <= 800  # about 1.5 s of 200 requests/s (plus start-up)


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("pyparallel-bench")
    assert script.exists(), "pyproject's [project.scripts] installs pyparallel-bench"
    res = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60,
                         env=child_env(None))
    assert res.returncode == 0 and "--rate" in res.stdout
