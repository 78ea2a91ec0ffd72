"""The original PyParallel's response helpers, with its signatures:
``json_serialization(request, obj)``, ``text_response(request, text)``,
``html_response(request, text)``; and the fields of a Request made in Python
(``request.range``, ``request.response``)."""

from __future__ import annotations

import json
from typing import Any

from ._ranges import RangedRequest, header_range
from ._response import Response

__all__ = ["json_serialization", "text_response", "html_response", "header_range",
           "new_response", "RangedRequest"]

_HELLO = "Hello, World!"


def new_response(request: Any) -> Response:
    """``request.response`` when first read: a 200 with no body whose
    content_type, status and headers the handler may set; sendfile and the
    helpers below answer with them."""
    return Response(None, 200, None, {})


def _answer(request: Any, body: bytes | str, content_type: str) -> Response:
    """A 200 with body, taking what the handler set on request.response."""
    if request is None:
        return Response(body, 200, content_type)
    pending = request.response
    return Response(body, pending.status, pending.content_type or content_type,
                    dict(pending.headers))


def json_serialization(request: Any = None, obj: Any = None) -> Response:
    """obj as a JSON answer (``application/json``); None gives the original's
    ``{"message": "Hello, World!"}``."""
    if obj is None:
        obj = {"message": _HELLO}
    return _answer(request, json.dumps(obj).encode(), "application/json")


def text_response(request: Any = None, text: str | bytes | None = None) -> Response:
    """text as ``text/plain; charset=utf-8``; None gives "Hello, World!"."""
    return _answer(request, _HELLO if text is None else text, "text/plain; charset=utf-8")


def html_response(request: Any, text: str | bytes) -> Response:
    """text as ``text/html; charset=utf-8``."""
    return _answer(request, text, "text/html; charset=utf-8")
