"""The statistics under test: an HTTP application with the stats routes
mounted, and TCP protocols that report what the introspection functions see
from inside their callbacks.

    python stats_app.py [--workers K]

Ports (``PORTS`` line): ``http`` (the app), ``slow`` (echoes each message
after sleeping 5 ms in the callback), ``probe`` (answers each line with a JSON
report taken inside the callback: context_stats, thread_seq_id, socket_stats
of its own transport, and its state as another thread reads it), and
``stats`` (px.stats() as JSON).
"""

from __future__ import annotations

import json
import threading
import time

from _common import int_arg, serve

import pyparallel as px
from pyparallel.http import HttpServer, mount_stats, route

SLOW_SECONDS = 0.005


@mount_stats()
class App(HttpServer):
    """/json, /plaintext-c (a C static route), and the mounted /stats, /metrics,
    /dashboard."""

    static_routes = {"/plaintext-c": ("text/plain", b"Hello, World!")}

    @route("/json")
    def json(self, request):
        return {"message": "Hello, World!"}

    @route("/both")
    def both(self, request):
        """Stats and metrics taken back to back in one callback: nothing can
        move the counters of the test's traffic in between."""
        return {"stats": px.stats(), "metrics": px.metrics_text(),
                "memory": px.memory_stats(), "context": px.context_stats()}


class Slow:
    """Echo, after SLOW_SECONDS in the callback: known callback latencies."""

    def data_received(self, transport, data):
        time.sleep(SLOW_SECONDS)
        return data


class Probe:
    """Each line: a report of the introspection functions, seen from here."""

    line_mode = True

    def lines_received(self, transport, lines):
        elsewhere: list[str] = []

        def from_another_thread() -> None:
            # Read on the transport's worker, which this callback's wait for
            # the thread hands to a spare meanwhile.
            elsewhere.append(px.socket_stats(transport)["state"])

        t = threading.Thread(target=from_another_thread)
        t.start()
        t.join()
        report = {
            "worker": transport.worker,
            "thread_seq_id": px.thread_seq_id(),
            "context": px.context_stats(),
            "socket": px.socket_stats(transport),
            "other_thread_seq_id": None,
            "elsewhere": elsewhere[0],
            "lines": len(lines),
        }
        ids: list[int] = []
        t = threading.Thread(target=lambda: ids.append(px.thread_seq_id()))
        t.start()
        t.join()
        report["other_thread_seq_id"] = ids[0]
        return json.dumps(report).encode() + b"\n"


if __name__ == "__main__":
    serve("stats_app", {"http": App, "slow": Slow, "probe": Probe},
          workers=int_arg("--workers", 2))
