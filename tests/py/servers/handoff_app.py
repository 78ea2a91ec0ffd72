"""Callbacks that block, for the hand-off suite: an HTTP app and a line protocol.

    python handoff_app.py [--workers K] [--handoff-ms N] [--pool-idle-ms N]

HTTP (port ``http``): ``/req/{i}`` answers ``req {i}``, after sleeping
``SLOW_SECONDS`` when i is a multiple of 10; ``/fast`` answers ``fast``.

Lines (port ``lines``), one reply line per request line:

* ``ping`` -> ``ping``
* ``sleep S`` -> sleeps S seconds in the callback (time.sleep) -> ``slept``
* ``spin S`` -> spins S seconds in pure Python (no system call) -> ``spun``
* ``sleep-send S`` -> sleeps S/2, sends ``mid`` through the transport, sleeps
  S/2 -> ``end``
* ``work S`` -> submits work that sleeps S seconds (to this worker, the least
  loaded of one) -> ``submitted``; ``timer S`` -> starts a timer on this worker
  that sleeps S seconds when it fires (at once) -> ``armed``; ``done`` ->
  how many of those have finished
"""

from __future__ import annotations

import time

from _common import int_arg, serve

import pyparallel as px
from pyparallel.http import HttpServer, route

SLOW_SECONDS = 0.5


class App(HttpServer):
    @route("/req/{i}")
    def req(self, request, i):
        if int(i) % 10 == 0:
            time.sleep(SLOW_SECONDS)
        return f"req {i}".encode()

    @route("/fast")
    def fast(self, request):
        return b"fast"


def spin(seconds: float) -> None:
    """Burn the CPU in the interpreter: perf_counter reads the clock in user space."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1


FINISHED = []  # list.append is atomic: work and timers on any thread


def nap(seconds: float) -> None:
    time.sleep(seconds)
    FINISHED.append(seconds)


class Lines:
    line_mode = True

    def lines_received(self, transport, lines):
        out = []
        for line in lines:
            cmd, _, arg = line.decode().partition(" ")
            if cmd == "ping":
                out.append(b"ping\n")
            elif cmd == "sleep":
                time.sleep(float(arg))
                out.append(b"slept\n")
            elif cmd == "spin":
                spin(float(arg))
                out.append(b"spun\n")
            elif cmd == "sleep-send":
                time.sleep(float(arg) / 2)
                transport.send(b"mid\n")
                time.sleep(float(arg) / 2)
                out.append(b"end\n")
            elif cmd == "work":
                px.submit_work(nap, (float(arg),))
                out.append(b"submitted\n")
            elif cmd == "timer":
                px.timer(0, lambda s=float(arg): nap(s))
                out.append(b"armed\n")
            elif cmd == "done":
                out.append(f"{len(FINISHED)}\n".encode())
            else:
                out.append(b"what?\n")
        return out


if __name__ == "__main__":
    idle = int_arg("--pool-idle-ms", None)
    serve("handoff", {"http": App, "lines": Lines}, workers=int_arg("--workers", 1),
          handoff_ms=int_arg("--handoff-ms", 2), **({} if idle is None else {"pool_idle_ms": idle}))
