"""``make run`` (python -m pyparallel.demo) with a database: the database
tests served and listed; without a reachable one: a line that says how to
start one, and the rest of the demo serving as before."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from helpers import child_env
from http_helpers import Conn, request


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "pyparallel.demo", "--port", "0",
                             "--workers", "2", "--wiki-pages", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C stops it."):
            return proc, lines
    proc.kill()
    raise AssertionError("the demo did not start:\n" + "\n".join(lines) + proc.stderr.read())


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.wait(5)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def _port(lines: list[str]) -> int:
    dashboard = next(line for line in lines if line.strip().startswith("dashboard"))
    return int(dashboard.rsplit(":", 1)[1].strip("/"))


def test_demo_serves_the_database_tests(backend: str, pg_dsn: str) -> None:
    proc, lines = _start(child_env(backend, {"PX_DB_DSN": pg_dsn}))
    try:
        listed = {line.split()[-1].split("/", 3)[-1] for line in lines if " tfb " in line}
        assert {"db", "fortunes", "queries?queries=20", "updates?queries=20",
                "cached-queries?count=20"} <= listed, lines
        with Conn(_port(lines)) as conn:
            conn.send(request("GET", "/db"))
            reply = conn.read_reply()
            assert reply.status == 200 and set(json.loads(reply.body)) == {"id", "randomNumber"}
            conn.send(request("GET", "/fortunes"))
            assert conn.read_reply().status == 200
    finally:
        _stop(proc)


def test_demo_without_a_database_says_how_to_start_one(backend: str) -> None:
    env = child_env(backend, {"PX_DB_DSN": "host=127.0.0.1 port=1 user=x dbname=x "
                                           "connect_timeout=2"})
    proc, lines = _start(env)
    try:
        note = [line for line in lines if "database tests off" in line]
        assert note and "make db" in note[0] and "Connection refused" in note[0], lines
        with Conn(_port(lines)) as conn:
            conn.send(request("GET", "/json"))
            assert conn.read_reply().status == 200
            conn.send(request("GET", "/db"))
            assert conn.read_reply().status == 404
    finally:
        _stop(proc)
