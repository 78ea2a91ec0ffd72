"""The TechEmpower database app (pyparallel.examples.tfb_db) with two routes
the database tests need besides: /sleep runs ``pg_sleep(seconds)`` on the
handling worker (/asleep the same from a coroutine, on the worker loop's
pipelined connections), /bad runs a statement PostgreSQL refuses (a 500), /pool
reports the app's open connections. Its connections are named ``px-tfb-test``
(``application_name``) for pg_stat_activity.

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
    base = app_class(dsn, application_name="px-tfb-test")

    class App(base):  # type: ignore[valid-type,misc]
        @route("/sleep")
        def sleep(self, request: Any, seconds: str = "1") -> dict[str, float]:
            self.db.fetchone("SELECT pg_sleep(%s)", (float(seconds),))
            return {"slept": float(seconds)}

        @route("/asleep")
        async def asleep(self, request: Any, seconds: str = "1") -> dict[str, float]:
            await self.db.afetchone("SELECT pg_sleep(%s)", (float(seconds),))
            return {"slept": float(seconds)}

        @route("/bad")
        def bad(self, request: Any) -> Any:
            return self.db.fetchone("SELECT no_such_column FROM World WHERE id = %s", (1,))

        @route("/abad")
        async def abad(self, request: Any) -> Any:
            return await self.db.afetchone("SELECT no_such_column FROM World WHERE id = %s", (1,))

        @route("/pool")
        def pool(self, request: Any) -> dict[str, int]:
            return self.db.stats()

    serve("tfb_db", {"http": App}, workers=int_arg("--workers", None))
