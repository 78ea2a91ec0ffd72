"""Handlers still running when the shutdown starts, for the drain suite.

    python drain_app.py [--workers K] [--handoff-ms N] [--shutdown-timeout S]

HTTP (port ``http``): ``/sleep/{ms}`` prints ``SLEEPING ms``, sleeps that
long in the handler, prints ``SLEPT ms`` and answers ``slept {ms}``; ``/fast``
answers ``fast``. Lines (port ``lines``): ``sleep MS`` does the same in
lines_received and answers ``slept MS``.
"""

from __future__ import annotations

import sys
import time

from _common import int_arg, say, serve

from pyparallel.http import HttpServer, route


def nap(ms: str) -> None:
    say(f"SLEEPING {ms}")
    time.sleep(int(ms) / 1000)
    say(f"SLEPT {ms}")


class App(HttpServer):
    @route("/sleep/{ms}")
    def sleep(self, request, ms):
        nap(ms)
        return f"slept {ms}".encode()

    @route("/fast")
    def fast(self, request):
        return b"fast"


class Lines:
    line_mode = True

    def lines_received(self, transport, lines):
        slept = []
        for line in lines:  # each b"sleep MS"
            ms = line.split()[-1].decode()
            nap(ms)
            slept.append(f"slept {ms}\n".encode())
        return slept


if __name__ == "__main__":
    timeout = sys.argv[sys.argv.index("--shutdown-timeout") + 1] \
        if "--shutdown-timeout" in sys.argv else "5"
    serve("drain", {"http": App, "lines": Lines}, workers=int_arg("--workers", 1),
          shutdown_timeout=float(timeout), handoff_ms=int_arg("--handoff-ms", 2))
