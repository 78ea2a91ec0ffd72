"""What every test server shares: the readiness line, a live stats port, and
the engine's counters printed at exit.

Protocol of the output lines (stdout, one per line, flushed):

    PORTS {"name": port, ...}        the ports of the registered endpoints
    NAME: listening on HOST:PORT     the sockets accept connections from now on
    STATS {"backend": ..., ...}      totals of the engine's counters, at exit

Connecting to the ``stats`` port returns ``px.stats()`` as one JSON line,
taken inside a protocol callback on a worker.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pyparallel as px

HOST = "127.0.0.1"


def say(line: str) -> None:
    """One line to the test, flushed at once (workers print too)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class StatsProtocol:
    """Answers each connection with the running engine's counters, then closes."""

    def connection_made(self, transport: px.Transport) -> None:
        transport.send(json.dumps(px.stats()).encode() + b"\n")
        transport.close()


def totals(eng: px.Engine) -> dict[str, Any]:
    """The engine's counters summed over its workers, with its backend."""
    out: dict[str, Any] = {}
    for worker in eng.worker_stats():
        for key, value in worker.items():
            out[key] = out.get(key, 0) + value
    out["backend"] = eng.backend
    out["workers"] = eng.workers
    out["uring_error"] = eng.uring_error
    return out


def serve(name: str, protocols: dict[str, type], workers: int | None = None,
          rerun_after_error: bool = False, shutdown_timeout: float = 5.0,
          **engine_options: Any) -> None:
    """Register each protocol on a port of its own (plus ``stats``) and serve
    until SIGTERM; with rerun_after_error, run(raise_errors=True) re-raises
    what callbacks raised, which is printed as ``RAISED Type: message
    [(context Type: message)]``, and serving carries on."""
    ports = {}
    for key, protocol in protocols.items():
        server = px.register(transport=px.server(HOST, 0), protocol=protocol)
        ports[key] = server.port
    ports["stats"] = px.register(transport=px.server(HOST, 0), protocol=StatsProtocol).port
    eng = px.engine(workers, **engine_options)
    # px.server() listens at once: clients may connect from here on.
    say("PORTS " + json.dumps(ports))
    say(f"{name}: listening on {HOST}:{next(iter(ports.values()))}")
    try:
        while True:
            try:
                px.run(shutdown_timeout=shutdown_timeout, raise_errors=rerun_after_error)
                break
            except Exception as exc:
                if not rerun_after_error:
                    raise
                context = exc.__context__
                say(f"RAISED {type(exc).__name__}: {exc}" +
                    (f" (context {type(context).__name__}: {context})" if context else ""))
    finally:
        say("STATS " + json.dumps(totals(eng)))


def report_runs() -> None:
    """Make px.run() print ``STATS {...}`` for its engine when it returns, for
    scripts that call run() through code of the package (the examples)."""
    real_run = px.run

    def run_and_report(workers: int | None = None, *args: Any, **kwargs: Any) -> None:
        eng = px.engine(workers)  # the engine run() is about to start
        try:
            real_run(workers, *args, **kwargs)
        finally:
            say("STATS " + json.dumps(totals(eng)))

    px.run = run_and_report


def int_arg(flag: str, default: int | None) -> int | None:
    """The value of ``--flag N`` on the command line, else default."""
    if flag in sys.argv:
        return int(sys.argv[sys.argv.index(flag) + 1])
    return default
