"""Transactions on the engine's workers.

``count``: every line received is one transaction that increments a shared
tdict counter (total and per connection) and answers the new total; the
increments of parallel callbacks must never be lost.
``io``: each line runs a transaction that tries ``transport.send`` (and then
``close``) inside it; the answer names the exception each raised, and the
connection must stay open and usable.
"""

from __future__ import annotations

from _common import int_arg, serve

import pyparallel as px

counts: px.tdict = px.tdict({"total": 0}, name="counts")


def _increment(conn: int) -> int:
    total = counts["total"] + 1
    counts["total"] = total
    counts[conn] = counts.get(conn, 0) + 1
    return total


class Count:
    line_mode = True

    def lines_received(self, transport, lines):
        return b"".join(b"%d\n" % px.atomic(_increment, transport.id) for _ in lines)


class IOInside:
    line_mode = True

    def lines_received(self, transport, lines):
        out = []
        for _ in lines:
            for attempt in (lambda: transport.send(b"leak\n"), transport.close):
                try:
                    px.atomic(attempt)
                    out.append(b"none")
                except px.IOInTransactionError:
                    out.append(b"IOInTransactionError")
        return b" ".join(out) + b"\n"


if __name__ == "__main__":
    serve("stm", {"count": Count, "io": IOInside}, workers=int_arg("--workers", 2))
