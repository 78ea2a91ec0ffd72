"""An echo server whose process may hold at most N file descriptors.

    python fd_limit.py N

The soft RLIMIT_NOFILE is lowered to N before the engine starts, so that a
test can run the process out of descriptors with a few hundred connections.
"""

from __future__ import annotations

import resource
import sys

from _common import serve

from pyparallel.examples.echo import Echo

if __name__ == "__main__":
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), hard))
    serve("fd_limit", {"echo": Echo})
