"""One worker serving echoes with timers: none (``plain``), an idle timeout of
0.5 s given in seconds (``idle``) or as a timedelta (``idle_delta``), and a
rate limit of 0.5 s (``rate``). A single worker makes its sleeps and wake-ups
predictable: a round trip on ``plain`` wakes it at a known moment.

The idle protocols print ``LOST client-port exc`` from connection_lost.
"""

from __future__ import annotations

import datetime

from _common import say, serve


class Echo:
    def data_received(self, transport, data):
        return data


class Idle(Echo):
    timeout = 0.5

    def connection_made(self, transport):
        self.port = transport.peername[1]

    def connection_lost(self, transport, exc):
        say(f"LOST {self.port} {exc!r}")


class IdleDelta(Idle):
    timeout = datetime.timedelta(milliseconds=500)


class RateLimited(Echo):
    rate_limit = 0.5


if __name__ == "__main__":
    serve("timers", {"plain": Echo, "idle": Idle, "idle_delta": IdleDelta,
                     "rate": RateLimited}, workers=1)
