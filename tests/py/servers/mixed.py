"""Chargen, echo, a watched echo and a bulk sender on one engine.

    python mixed.py [--workers K] [--shutdown-timeout S]

The bulk protocol answers a line "N" with N bytes of a known pattern (the
pattern of offset i is byte i * 7 mod 251), queued at once.
"""

from __future__ import annotations

import sys

from _common import int_arg, say, serve

from pyparallel.examples.chargen import Chargen
from pyparallel.examples.echo import Echo

PATTERN = bytes(i * 7 % 251 for i in range(251 * 4096))


def pattern(n: int) -> bytes:
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


class WatchedEcho:
    """Echo that records how much output was queued whenever data was handed to
    it: reading must stop once send_high_water is queued, so no callback should
    ever see more. Prints ``QUEUED-MAX client-port bytes`` when the peer goes."""

    def connection_made(self, transport):
        self.port = transport.peername[1]
        self.max_unsent = 0

    def data_received(self, transport, data):
        self.max_unsent = max(self.max_unsent, transport.unsent)
        return data

    def connection_lost(self, transport, exc):
        say(f"QUEUED-MAX {self.port} {self.max_unsent}")


class Bulk:
    """One line "N" -> N pattern bytes, all queued before the callback returns."""

    line_mode = True

    def lines_received(self, transport, lines):
        return [pattern(int(line)) for line in lines]


if __name__ == "__main__":
    timeout = float(sys.argv[sys.argv.index("--shutdown-timeout") + 1]) \
        if "--shutdown-timeout" in sys.argv else 5.0
    serve("mixed", {"echo": Echo, "chargen": Chargen, "bulk": Bulk, "watched": WatchedEcho},
          workers=int_arg("--workers", 1), shutdown_timeout=timeout)
