"""What a handler answers with besides a plain value: a Response with full
control, or an HttpError raised for a status (own module, so that the static
and monitor modules need not import the package that imports them)."""

from __future__ import annotations

from typing import Any

__all__ = ["HttpError", "Response"]


class HttpError(Exception):
    """Raise in a handler to answer with this status."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


class Response:
    """A response with full control of status, headers and body."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(self, body: Any = b"", status: int = 200, content_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}
