"""The errors of pyparallel.db: what a handler sees when the database is not there."""

from __future__ import annotations

from ..http._response import HttpError

__all__ = ["DatabaseUnavailable", "PoolTimeout"]


class DatabaseUnavailable(HttpError):
    """The database cannot be reached (refused, lost mid-query, timed out).

    An :class:`~pyparallel.http.HttpError` with status 503: raised through an
    HttpServer handler it answers ``503 Service Unavailable``; the original
    psycopg error is its ``__cause__``. The pool replaces the connection by
    itself; nothing needs to be reset by the caller."""

    def __init__(self, detail: str) -> None:
        # The client learns that the database is away, not where it lives.
        super().__init__(503, "503 Service Unavailable: database unavailable")
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class PoolTimeout(DatabaseUnavailable):
    """Every connection this worker may open is busy and none came back in
    time (``pool_timeout``): answered as 503 too, the database is saturated."""
