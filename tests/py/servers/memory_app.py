"""An HTTP server for the memory tests: /plaintext (a Python handler) and
/big (BIG_MIB MiB of body, queued at once). The body is one bytes object made
at start, so that what a burst of them holds is the engine's output queue, not
the interpreter's allocator (which keeps memory of its own: mimalloc in a
free-threaded build).

    python memory_app.py [--pool-idle-ms MS] [--workers K]

Without --pool-idle-ms the engine runs with its default configuration.
"""

from __future__ import annotations

from typing import Any

from _common import int_arg, serve

from pyparallel.http import HttpServer, route

MiB = 1 << 20
_HELLO = b"Hello, World!"
BIG_MIB = 4
_BIG = b"x" * (BIG_MIB * MiB)


class App(HttpServer):
    @route("/plaintext")
    def plaintext(self, request: Any) -> bytes:
        return _HELLO

    @route("/big")
    def big(self, request: Any) -> bytes:
        return _BIG


if __name__ == "__main__":
    options: dict[str, Any] = {}
    idle = int_arg("--pool-idle-ms", None)
    if idle is not None:
        options["pool_idle_ms"] = idle
    serve("memory_app", {"http": App}, workers=int_arg("--workers", None), **options)
