"""Helpers of the WSGI suites: ``pyparallel serve`` as a test server process
(servers/wsgi_serve.py: the command itself, with the engine's counters at
exit), and plain HTTP requests to it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import SERVERS, ServerProcess, child_env
from http_helpers import Conn, Reply

APPS = Path(__file__).resolve().parent / "apps"


def serve_argv(target: str, *args: str, app_dir: Path = APPS) -> list[str]:
    return [sys.executable, str(SERVERS / "wsgi_serve.py"), target, "--port", "0",
            "--app-dir", str(app_dir), *args]


@contextmanager
def served(backend: str, target: str, *args: str, env: dict[str, str] | None = None,
           app_dir: Path = APPS, allow_tracebacks: bool = False,
           ready_timeout: float = 30.0) -> Iterator[ServerProcess]:
    """``pyparallel serve target args...`` on backend; it must exit cleanly
    (status 0, no connection left open, no crash) when stopped at the end."""
    proc = ServerProcess(serve_argv(target, *args, app_dir=app_dir), child_env(backend, env),
                         ready_timeout=ready_timeout)
    passed = False
    try:
        yield proc
        passed = True
    finally:
        try:
            if passed:
                proc.finish(timeout=20).assert_clean(allow_tracebacks)
        finally:
            proc.close()


def read_reply(c: Conn, head: bool = False) -> Reply:
    """The next response on c, its body framed by Content-Length, chunked
    (decoded; reply.chunked set) or the close."""
    reply = c.read_reply(head=True)
    reply.chunked = False  # type: ignore[attr-defined]
    if head or reply.status in (204, 304) or reply.status < 200:
        return reply
    if reply.headers.get("transfer-encoding", "").lower() == "chunked":
        reply.chunked = True  # type: ignore[attr-defined]
        body = bytearray()
        while True:
            size = int(c.read_until(b"\r\n")[:-2].split(b";")[0], 16)
            if size == 0:
                assert c.read_until(b"\r\n") == b"\r\n"  # no trailers from us
                break
            body += c.read_exact(size)
            assert c.read_exact(2) == b"\r\n"
        reply.body = bytes(body)
    elif "content-length" in reply.headers:
        reply.body = c.read_exact(int(reply.headers["content-length"]))
    else:
        reply.body = c.read_to_eof()
    return reply
