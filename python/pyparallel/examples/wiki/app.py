"""The HTTP side of the Wikipedia demo: pages by title, titles by prefix, and
byte ranges of the dump.

Endpoints (GET and HEAD; anything else is 405):

``/wiki/TITLE``
    The page's ``<page>...</page>`` element, exactly the bytes of the dump,
    sent by the kernel from the file (200, ``application/xml``). TITLE is
    percent-encoded UTF-8 (``/`` may appear raw: ``/wiki/AC/DC``); a title not
    found as it is is also tried with ``_`` read as a space, as Wikipedia's
    URLs write them. A malformed escape or invalid UTF-8 is 400, an empty
    title 400, a title the dump does not have 404.
``/offsets/PREFIX``
    JSON ``[[title, start, end], ...]`` of the titles starting with PREFIX, in
    title (UTF-8 byte) order; ``dump[start:end]`` is the page element (end
    exclusive). At most :data:`MAX_PREFIX_RESULTS` entries; the header
    ``X-Total-Count`` says how many titles matched. PREFIX is decoded like a
    title and needs at least :data:`MIN_PREFIX_CHARS` characters (400 otherwise).
``/xml``
    Byte ranges of the dump: one ``Range: bytes=a-b`` (or ``a-``, ``-n``) is
    answered 206 with ``Content-Range``. There is no whole-dump answer: without
    a Range header 400; a Range that is unsatisfiable, malformed, of another
    unit or of several ranges 416 with ``Content-Range: bytes */SIZE``.
``/``
    A small HTML page of links, answered by the engine in C.

The dump must not change while it is served: the offsets are those of the
file as it was indexed (a restart checks and rebuilds the index).
"""

from __future__ import annotations

import html
import os
import re
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pyparallel as px
from pyparallel.http import HttpServer, Response, route
from pyparallel.http.static import RangeNotSatisfiable, parse_range

from .index import WikiIndex

__all__ = ["WikiServer", "make_app", "decode_title", "MAX_PREFIX_RESULTS", "MIN_PREFIX_CHARS"]

#: /offsets/ answers at most this many titles
MAX_PREFIX_RESULTS = 100
#: /offsets/ needs a prefix of at least this many characters (code points)
MIN_PREFIX_CHARS = 3

_XML_TYPE = "application/xml; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_GET_HEAD = ("GET", "HEAD")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def decode_title(raw: str) -> str:
    """A title from its percent-encoded UTF-8 form in a request path.

    Raises ValueError for a malformed escape, bytes that are not UTF-8, or a
    NUL. ``+`` is a plus sign (this is a path, not a query)."""
    if _BAD_ESCAPE.search(raw):
        raise ValueError("malformed percent-escape")
    title = unquote_to_bytes(raw).decode("utf-8")  # UnicodeDecodeError is a ValueError
    if "\0" in title:
        raise ValueError("NUL in a title")
    return title


def _decoded(request: Any, prefix: str) -> str | None:
    try:
        return decode_title(request.path[len(prefix):])
    except ValueError:
        return None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    # Answers rather than HttpError: a handler of an exact route (/xml) is
    # called by the engine directly, where only what it returns is converted.
    return Response(message + "\n", status, _TEXT, headers)


_NOT_UTF8 = "400 Bad Request: not percent-encoded UTF-8"


class WikiServer(HttpServer):
    """Serves one dump with its index; :func:`make_app` makes the class for a
    given dump (the attributes below are set there)."""

    #: the dump's absolute path
    dump: str = ""
    #: its size in bytes when indexed
    dump_size: int = 0
    index: WikiIndex | None = None

    @route("/wiki/*", methods=_GET_HEAD)
    def wiki(self, request: Any, **_: Any) -> Response:
        title = _decoded(request, "/wiki/")
        if title is None:
            return _error(400, _NOT_UTF8)
        if not title:
            return _error(400, "400 Bad Request: no title")
        index = self.index
        assert index is not None
        hit = index.find(title)
        if hit is None and "_" in title:
            hit = index.find(title.replace("_", " "))
        if hit is None:
            return _error(404, "404 Not Found: no page with that title")
        start, end = hit
        return Response(px.sendfile(self.dump, start, end - start), 200, _XML_TYPE)

    @route("/offsets/*", methods=_GET_HEAD)
    def offsets(self, request: Any, **_: Any) -> Response:
        prefix = _decoded(request, "/offsets/")
        if prefix is None:
            return _error(400, _NOT_UTF8)
        if len(prefix) < MIN_PREFIX_CHARS:
            return _error(400, f"400 Bad Request: a prefix needs at least "
                               f"{MIN_PREFIX_CHARS} characters")
        index = self.index
        assert index is not None
        lo, hi = index.prefix_range(prefix)
        body = [[index.title(i).decode("utf-8", "replace"), index.starts[i], index.ends[i]]
                for i in range(lo, min(hi, lo + MAX_PREFIX_RESULTS))]
        return Response(body, 200, "application/json", {"X-Total-Count": str(hi - lo)})

    @route("/xml", methods=_GET_HEAD)
    def xml(self, request: Any, **_: Any) -> Response:
        size = self.dump_size
        value = request.headers.get("range")
        if value is None:
            return _error(400, "400 Bad Request: /xml serves byte ranges; send a "
                               "Range: bytes=START-END header")
        unsatisfiable = Response(None, 416, None, {"Content-Range": f"bytes */{size}"})
        try:
            span = parse_range(value, size)
        except RangeNotSatisfiable:
            return unsatisfiable
        if span is None:  # malformed, another unit or several ranges: rejected
            return unsatisfiable
        start, stop = span
        return Response(px.sendfile(self.dump, start, stop - start), 206, _XML_TYPE,
                        {"Content-Range": f"bytes {start}-{stop - 1}/{size}",
                         "Accept-Ranges": "bytes"})


def _home_page(index: WikiIndex, dump: str, size: int, examples: int = 12) -> bytes:
    """The HTML of ``/``: what is served, and links to a spread of titles."""
    n = len(index)
    step = max(1, n // examples)
    picks = [index.title(i).decode("utf-8", "replace") for i in range(0, n, step)][:examples]
    items = []
    for title in picks:
        href = "/wiki/" + quote(title, safe="")
        items.append(f'<li><a href="{html.escape(href)}">{html.escape(title)}</a></li>')
    prefixes = sorted({t[:4] for t in picks if len(t) >= MIN_PREFIX_CHARS})[:6]
    prefix_items = [
        f'<li><a href="{html.escape("/offsets/" + quote(p, safe=""))}">'
        f"/offsets/{html.escape(p)}</a></li>" for p in prefixes]
    return "\n".join([
        "<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>Wikipedia demo</title>',
        "</head><body>", "<h1>Wikipedia demo</h1>",
        f"<p>{n:,} titles indexed in <code>{html.escape(os.path.basename(dump))}</code> "
        f"({size:,} bytes).</p>",
        "<h2>Pages: <code>/wiki/TITLE</code></h2>", "<ul>", *items, "</ul>",
        f"<h2>Titles by prefix: <code>/offsets/PREFIX</code> "
        f"(at least {MIN_PREFIX_CHARS} characters, at most {MAX_PREFIX_RESULTS} results)</h2>",
        "<ul>", *prefix_items, "</ul>",
        "<h2>Byte ranges of the dump: <code>/xml</code></h2>",
        "<p>Needs a header, e.g. <code>Range: bytes=0-1023</code>.</p>",
        "</body></html>", ""]).encode("utf-8")


def make_app(dump: str | os.PathLike[str], index: WikiIndex,
             name: str = "WikiApp") -> type[WikiServer]:
    """An :class:`HttpServer` class that serves dump with its index."""
    path = os.path.abspath(os.fspath(dump))
    size = os.stat(path).st_size
    index.share()
    return type(name, (WikiServer,), {
        "dump": path, "dump_size": size, "index": index,
        "static_routes": {"/": ("text/html; charset=utf-8", _home_page(index, path, size))},
    })
