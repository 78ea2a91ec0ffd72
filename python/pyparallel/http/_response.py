"""What a handler answers with besides a plain value: a Response with full
control, or an HttpError raised for a status (own module, so that the static
and monitor modules need not import the package that imports them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["HttpError", "Response"]


class HttpError(Exception):
    """Raise in a handler to answer with this status."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


class Response:
    """A response with full control of status, headers and body.

    ``headers``: a dict, or (name, value) pairs where a name repeats
    (``Set-Cookie``). Names must be tokens and values, like ``content_type``,
    free of control bytes but HTAB (no CR, LF or NUL): a response breaking
    that is not sent; the client gets 500 and the log names the header."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, body: Any = b"", status: int = 200, content_type: str | None = None,
                 headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}
