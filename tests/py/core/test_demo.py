"""The demo ``make run`` starts: it prints its URLs, serves the dashboard at /,
/stats, /metrics and the TechEmpower endpoints, echo and chargen, and Ctrl-C
(SIGINT) stops it promptly with exit status 0."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time

from helpers import CRASH_MARKERS, child_env, connect, recv_until_line
from http_helpers import Conn, request

URL = re.compile(r"^\s+(\w+)\s+(?:http://)?([\d.]+):(\d+)(/\S*)?$")


def start_demo(backend: str) -> tuple[subprocess.Popen[str], dict[str, tuple[int, str]]]:
    proc = subprocess.Popen([sys.executable, "-m", "pyparallel.demo", "--port", "0",
                             "--workers", "2"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(backend))
    assert proc.stdout is not None
    urls: dict[str, tuple[int, str]] = {}
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = URL.match(line.rstrip("\n"))
        if m:
            urls.setdefault(m.group(1), (int(m.group(3)), m.group(4) or ""))
        if line.startswith("Ctrl-C stops it."):
            return proc, urls
    proc.kill()
    raise AssertionError("the demo did not start:\n" + "".join(lines) + proc.stderr.read())


def test_demo_serves_everything_and_stops_on_sigint(backend: str) -> None:
    proc, urls = start_demo(backend)
    try:
        assert set(urls) >= {"dashboard", "stats", "metrics", "tfb", "echo", "chargen"}, urls
        port, path = urls["dashboard"]
        assert path == "/" and urls["stats"] == (port, "/stats") and urls["metrics"] == (port, "/metrics")
        with Conn(port) as conn:
            conn.send(request("GET", "/"))
            page = conn.read_reply()
            assert page.status == 200 and b'data-stats-url="/stats"' in page.body
            for target, expect in (("/json", b'{"message":"Hello, World!"}'),
                                   ("/plaintext", b"Hello, World!"),
                                   ("/plaintext-c", b"Hello, World!")):
                conn.send(request("GET", target))
                reply = conn.read_reply()
                assert reply.status == 200 and reply.body == expect, (target, reply)
            conn.send(request("GET", "/stats"))
            stats = json.loads(conn.read_reply().body)
            assert stats["total"]["requests"] == 4
            conn.send(request("GET", "/metrics"))
            assert b"pyparallel_http_requests_total" in conn.read_reply().body
        with connect(urls["echo"][0]) as s:
            s.sendall(b"hello\n")
            assert recv_until_line(s) == b"hello\n"
        with connect(urls["chargen"][0]) as s:
            assert len(s.recv(100)) > 0
        # Ctrl-C with an idle keep-alive client connected that, like a browser,
        # closes its side when the server closes (a peer that never does holds
        # the server's linger, 2 s).
        with Conn(port) as idle:
            idle.send(request("GET", "/json"))
            assert idle.read_reply().status == 200
            closer = threading.Thread(target=lambda: (idle.read_to_eof(), idle.close()))
            closer.start()
            start = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(10)
            elapsed = time.monotonic() - start
            closer.join(5)
        out, err = proc.communicate(timeout=5)
        assert rc == 0, err
        assert elapsed < 1.5, f"SIGINT took {elapsed:.2f} s"
        assert "stopped." in out
        assert "Traceback" not in err
        for marker in CRASH_MARKERS:
            assert marker not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
