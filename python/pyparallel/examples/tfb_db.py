"""TechEmpower's database test types on PostgreSQL: /db, /queries, /fortunes,
/updates and /cached-queries, beside /json and /plaintext.

``python -m pyparallel.examples.tfb --db DSN`` (or ``PX_DB_DSN=DSN``) serves
them; the database holds TechEmpower's tables ``World(id, randomNumber)``
(10,000 rows) and ``Fortune(id, message)``. The rules followed are the
benchmark's: one query per World row (pipelined, not one ``IN (...)``),
fortunes sorted after the extra one is added at request time and rendered by
a template engine that escapes, updates written back in one batch, the
cached rows loaded once at start-up and shared by every worker.
"""

from __future__ import annotations

import random
from typing import Any

import jinja2

import pyparallel as px
from pyparallel.db import Database
from pyparallel.http import HttpServer, Response, route

__all__ = ["EXTRA_FORTUNE", "HTML", "MAX_QUERIES", "WORLD_ROWS", "TfbDb", "app_class",
           "clamp_count"]

WORLD_ROWS = 10_000
MAX_QUERIES = 500
EXTRA_FORTUNE = "Additional fortune added at request time."
HTML = "text/html; charset=utf-8"

_SELECT_WORLD = "SELECT id, randomNumber FROM World WHERE id = %s"
_SELECT_FORTUNES = "SELECT id, message FROM Fortune"
# One statement writes the batch; ids sorted so that concurrent batches lock
# their rows in the same order (no deadlock between two /updates).
_UPDATE_WORLDS = ("UPDATE World SET randomNumber = v.r FROM "
                  "(SELECT unnest(%s::int[]) AS id, unnest(%s::int[]) AS r) AS v "
                  "WHERE World.id = v.id")

_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "{% for id, message in fortunes %}<tr><td>{{ id }}</td><td>{{ message }}</td></tr>"
    "{% endfor %}</table></body></html>")


def clamp_count(value: str | None) -> int:
    """TechEmpower's rule for ``queries``/``count``: an integer clamped to
    1..500; missing or not an integer counts as 1."""
    try:
        n = int(value) if value is not None else 1
    except ValueError:
        return 1
    return min(max(n, 1), MAX_QUERIES)


def _random_id() -> int:
    return random.randint(1, WORLD_ROWS)


class TfbDb(HttpServer):
    """The TechEmpower database test types (``db`` and ``cache`` set by
    :func:`app_class`, which adds them to an app class)."""

    db: Database
    #: World rows by id (index 0 unused), {"id", "randomNumber"} dicts
    cache: list[dict[str, int] | None] = []

    @route("/db")
    async def single(self, request: Any) -> dict[str, int]:
        row = await self.db.afetchone(_SELECT_WORLD, (_random_id(),))
        return {"id": row[0], "randomNumber": row[1]}

    @route("/queries")
    async def queries(self, request: Any, queries: str | None = None) -> list[dict[str, int]]:
        return await self._worlds(clamp_count(queries))

    @route("/fortunes")
    async def fortunes(self, request: Any) -> Response:
        rows = await self.db.afetchall(_SELECT_FORTUNES)
        rows.append((0, EXTRA_FORTUNE))
        rows.sort(key=_message)
        return Response(_TEMPLATE.render(fortunes=rows), content_type=HTML)

    @route("/updates")
    async def updates(self, request: Any, queries: str | None = None) -> list[dict[str, int]]:
        worlds = await self._worlds(clamp_count(queries))
        # A row drawn twice gets one new number, so the answer matches the table.
        fresh = {w["id"]: random.randint(1, 10_000) for w in worlds}
        for w in worlds:
            w["randomNumber"] = fresh[w["id"]]
        ids = sorted(fresh)
        numbers = [fresh[i] for i in ids]
        # One statement is one transaction; a deadlock with another batch is retried.
        await self.db.aexecute(_UPDATE_WORLDS, (ids, numbers), retries=5)
        return worlds

    @route("/cached-queries")
    def cached_queries(self, request: Any, count: str | None = None) -> list[Any]:
        cache = self.cache
        return [cache[_random_id()] for _ in range(clamp_count(count))]

    async def _worlds(self, n: int) -> list[dict[str, int]]:
        rows = await self.db.afetch_many(_SELECT_WORLD, [(_random_id(),) for _ in range(n)])
        return [{"id": r[0], "randomNumber": r[1]} for r in rows]


def _message(row: tuple[int, str]) -> str:
    return row[1]


def app_class(dsn: str, base: type[HttpServer] = HttpServer, **options: Any) -> type[TfbDb]:
    """A subclass of TfbDb and base (base's routes kept) bound to the
    database at dsn (``options`` go to :class:`~pyparallel.db.Database`), its
    World cache loaded (on this thread, before serving) and shared with
    every worker.

    Raises :class:`~pyparallel.db.DatabaseUnavailable` when the database
    cannot be reached."""
    db = Database(dsn, **options)
    cache: list[dict[str, int] | None] = [None] * (WORLD_ROWS + 1)
    for wid, number in db.fetchall("SELECT id, randomNumber FROM World"):
        if 0 < wid <= WORLD_ROWS:
            cache[wid] = {"id": wid, "randomNumber": number}
    px.share(cache)
    return type(base.__name__, (TfbDb, base), {"db": db, "cache": cache,
                                                "__module__": base.__module__})
