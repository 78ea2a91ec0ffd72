"""An echo server whose engine admits at most N connections at a time.

    python limits.py N

The limit is an Engine option, given to px.engine() before run(); the stats
port's own connection counts against it too, so tests query stats only while
a slot is free.
"""

from __future__ import annotations

import sys

from _common import serve

from pyparallel.examples.echo import Echo

if __name__ == "__main__":
    serve("limits", {"echo": Echo}, workers=1, max_connections=int(sys.argv[1]))
