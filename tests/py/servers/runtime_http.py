"""An HttpServer whose handlers hand work to the main thread.

    python runtime_http.py [--workers K]

Routes:
  /main/{n}     call_from_main_thread_and_wait (decorated function) -> JSON
                {"n": n, "main": ran on the main thread, "seq": order of the call}
  /main_error   a main-thread call that raises ValueError: the handler reports
                what it caught as JSON {"type": ..., "message": ...}
  /fire/{n}     call_from_main_thread(record, n); answers {"posted": n} at once
  /state        the main-thread counters as JSON: calls, max_running (calls
                running at the same time, must stay 1), off_main (calls that ran
                elsewhere), fired (numbers recorded by /fire)
  /map/{n}      px.map(square, range(n)) inside the handler; JSON
                {"ok": ordered and right, "sum": ...}
"""

from __future__ import annotations

import threading
import time

from _common import int_arg, serve

import pyparallel as px
from pyparallel.http import HttpServer, route

MAIN = threading.get_ident()
_counter_lock = threading.Lock()  # only to observe overlap, should there be any
STATE = {"calls": 0, "running": 0, "max_running": 0, "off_main": 0, "fired": []}


def _enter() -> int:
    with _counter_lock:
        STATE["running"] += 1
        STATE["max_running"] = max(STATE["max_running"], STATE["running"])
        STATE["calls"] += 1
        if threading.get_ident() != MAIN:
            STATE["off_main"] += 1
        return STATE["calls"]


def _leave() -> None:
    with _counter_lock:
        STATE["running"] -= 1


@px.call_from_main_thread_and_wait
def on_main(n: int) -> dict:
    seq = _enter()
    try:
        time.sleep(0.0002)  # long enough for an overlap to show, were calls concurrent
        return {"n": n, "main": threading.get_ident() == MAIN, "seq": seq}
    finally:
        _leave()


def fail_on_main(message: str) -> None:
    raise ValueError(message)


def record(n: int) -> None:
    _enter()
    STATE["fired"].append(n)
    _leave()


def snapshot() -> dict:
    with _counter_lock:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in STATE.items()}


def square(x: int) -> int:
    return x * x


class App(HttpServer):
    @route("/main/{n}")
    def main(self, request, n):
        return on_main(int(n))

    @route("/main_error")
    def main_error(self, request):
        try:
            px.call_from_main_thread_and_wait(fail_on_main, "raised on the main thread")
        except ValueError as exc:
            return {"type": type(exc).__name__, "message": str(exc),
                    "worker": px._core.worker_index() is not None}
        return {"type": None}

    @route("/fire/{n}")
    def fire(self, request, n):
        px.call_from_main_thread(record, int(n))
        return {"posted": int(n)}

    @route("/state")
    def state(self, request):
        return px.call_from_main_thread_and_wait(snapshot)()

    @route("/map/{n}")
    def map(self, request, n):
        n = int(n)
        res = px.map(square, range(n))
        return {"ok": res == [x * x for x in range(n)], "sum": sum(res)}


if __name__ == "__main__":
    serve("runtime_http", {"http": App}, workers=int_arg("--workers", 2))
