"""PostgreSQL from callbacks and handlers on every worker (psycopg 3).

::

    from pyparallel.db import Database
    from pyparallel.http import HttpServer, route

    db = Database("host=127.0.0.1 dbname=app user=app")

    class App(HttpServer):
        @route("/user/{uid}")
        def user(self, request, uid):
            row = db.fetchone("SELECT id, name FROM users WHERE id = %s", (int(uid),))
            return {"id": row[0], "name": row[1]} if row else self.error(request, 404)

Each worker keeps its own connections (no lock shared between workers);
statements are prepared on the server; :meth:`Database.fetch_many` and
:meth:`Database.execute_many` pipeline a batch into one round trip;
:meth:`Database.transaction` retries on serialization failures and deadlocks.
A lost or refused database raises :class:`DatabaseUnavailable`, an
``HttpError(503)``: handlers answer 503, one line is logged per outage on
the ``pyparallel.db`` logger, and the next request after the server is back
reconnects by itself.
"""

from ._database import RETRYABLE, Database
from ._errors import DatabaseUnavailable, PoolTimeout

__all__ = ["RETRYABLE", "Database", "DatabaseUnavailable", "PoolTimeout"]
