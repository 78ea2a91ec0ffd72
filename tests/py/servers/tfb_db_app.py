"""The TechEmpower database app (pyparallel.examples.tfb_db) with two routes
the database tests need besides: /sleep runs ``pg_sleep(seconds)`` on the
handling worker, /pool reports the app's open connections.

    python tfb_db_app.py --db DSN [--workers K]
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from _common import int_arg, serve

from pyparallel.examples.tfb_db import app_class
from pyparallel.http import route

if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    dsn = sys.argv[sys.argv.index("--db") + 1]
    base = app_class(dsn)

    class App(base):  # type: ignore[valid-type,misc]
        @route("/sleep")
        def sleep(self, request: Any, seconds: str = "1") -> dict[str, float]:
            self.db.fetchone("SELECT pg_sleep(%s)", (float(seconds),))
            return {"slept": float(seconds)}

        @route("/pool")
        def pool(self, request: Any) -> dict[str, int]:
            return self.db.stats()

    serve("tfb_db", {"http": App}, workers=int_arg("--workers", None))
