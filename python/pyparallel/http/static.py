"""Static files: request paths mapped safely under a root, validators,
conditional requests and single byte ranges, bodies sent by the kernel.

::

    from pyparallel.http import HttpServer, StaticFiles, route

    class Site(HttpServer):
        assets = route("/static/*", methods=("GET", "HEAD"))(StaticFiles("/srv/www"))

        @route("/report")
        def report(self, request):
            return self.sendfile(request, "/srv/reports/latest.pdf")

What a request gets:

* The path is percent-decoded by the engine's C path decoder
  (:func:`decode_path`): a malformed escape, a NUL or a backslash (raw or
  decoded) or a ``..`` segment is answered 400. The decoded path is then resolved
  with :func:`os.path.realpath` and anything outside the root's own real path
  (a symbolic link leading out of it, say) is answered 404, as is anything that
  is neither a regular file nor a directory (a FIFO would block a worker).
* A directory: ``/dir`` is redirected to ``/dir/`` (301); ``/dir/`` serves its
  ``index.html`` when there is one, else an HTML listing (names escaped).
* ``Content-Type`` from :mod:`mimetypes` (``text/*`` with ``charset=utf-8``;
  compressed files as themselves, never with a ``Content-Encoding``);
  ``ETag`` (strong by default, from the size and the modification time in
  nanoseconds) and ``Last-Modified``; ``Accept-Ranges: bytes``.
* Preconditions in the order of RFC 9110 section 13.2.2: ``If-Match`` and
  ``If-Unmodified-Since`` (412), then ``If-None-Match`` (304 for GET and HEAD),
  which takes precedence over ``If-Modified-Since`` (304).
* ``Range`` on GET and HEAD: one range ``bytes=a-b``, ``bytes=a-`` or
  ``bytes=-n`` is answered 206 with ``Content-Range: bytes a-b/size`` (end
  inclusive); an unsatisfiable one 416 with ``Content-Range: bytes */size``.
  **Several ranges are answered with the whole file (200)**: multipart
  responses are not produced (RFC 9110 lets a server ignore ``Range``). An
  invalid ``Range`` is ignored too, and so is one whose ``If-Range`` does not
  match the current ``ETag`` (strong comparison) or ``Last-Modified`` (exact).
* The body is ``px.sendfile(...)``: the file is never read into memory.

The file is opened by name once the response is written, so a file that is
replaced between the checks and the open is served as it is then; a root whose
subdirectories untrusted users can rewrite is not a supported setup.
"""

from __future__ import annotations

import email.utils
import html
import mimetypes
import os
import re
import stat as _stat
from typing import Any
from urllib.parse import quote

import pyparallel as px
from pyparallel import _core

from ._response import Response

__all__ = [
    "RangeNotSatisfiable",
    "StaticFiles",
    "decode_path",
    "file_response",
    "guess_type",
    "make_etag",
    "parse_range",
    "send_file",
]

_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_OCTETS = "application/octet-stream"
_GET_HEAD = ("GET", "HEAD")

mimetypes.init()  # now, not lazily from several workers at once

def decode_path(path: str | bytes) -> bytes:
    """Percent-decode and normalise a request path (without its query).

    The engine's C path decoder does the work: the path must start with
    ``/``; ``%XX`` is decoded and a decoded ``%2F`` separates segments like
    ``/``; empty and ``.`` segments are dropped and a trailing ``/`` is kept.
    Raises ValueError for a malformed escape, a NUL or a backslash (raw or
    decoded), a ``..`` segment or no leading ``/``. A str is taken as the
    request's bytes (latin-1), as ``Request.path`` gives them.
    """
    raw = path.encode("latin-1") if isinstance(path, str) else bytes(path)
    result: bytes = _core.http_path_decode(raw)
    return result


class RangeNotSatisfiable(ValueError):
    """The Range header asks for nothing the file has (answer 416)."""


_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
_HUGE = 1 << 63  # stands for numbers too long to convert


def _number(digits: str) -> int:
    # int() refuses very long digit strings; any such number exceeds every file
    return int(digits) if len(digits) <= 18 else _HUGE


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The byte range a ``Range`` header value selects of a file of size bytes.

    Returns ``(start, stop)`` (stop exclusive) for one satisfiable range; None
    when the header is to be ignored and the whole file served: not a valid
    ``bytes`` range set, more than one range, or an empty file; raises
    RangeNotSatisfiable when the one range lies outside the file.
    """
    unit, eq, ranges = value.strip(" \t").partition("=")
    if not eq or unit.lower() != "bytes":
        return None
    specs = [s.strip(" \t") for s in ranges.split(",")]
    specs = [s for s in specs if s]
    parsed = []
    for spec in specs:
        m = _SPEC.fullmatch(spec)
        if m is None:
            return None
        first, last = m.group(1), m.group(2)
        if not first and not last:
            return None
        if first and last and _number(last) < _number(first):
            return None
        parsed.append((first, last))
    if len(parsed) != 1:
        return None  # none, or several: the whole file
    first, last = parsed[0]
    if not first:  # suffix: the last n bytes
        n = _number(last)
        if n == 0:
            raise RangeNotSatisfiable(value)
        if size == 0:
            return None
        return max(0, size - n), size
    start = _number(first)
    if start >= size:
        raise RangeNotSatisfiable(value)
    stop = size if not last else min(size, _number(last) + 1)
    return start, stop


def guess_type(path: str) -> str:
    """The Content-Type of a file name: ``text/*`` with ``charset=utf-8``;
    ``application/octet-stream`` when unknown; a compressed file as itself."""
    # Only the name counts; a leading '/' keeps "data:x" from reading as a URL.
    ctype, encoding = mimetypes.guess_type("/" + os.path.basename(path))
    if encoding is not None:
        return {"gzip": "application/gzip", "bzip2": "application/x-bzip2",
                "xz": "application/x-xz", "br": "application/x-brotli",
                "compress": "application/x-compress"}.get(encoding, _OCTETS)
    if ctype is None:
        return _OCTETS
    if ctype.startswith("text/") and "charset=" not in ctype:
        ctype += "; charset=utf-8"
    return ctype


def make_etag(st: os.stat_result, weak: bool = False) -> str:
    """An entity tag from the file's size and modification time (ns)."""
    tag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
    return "W/" + tag if weak else tag


_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\xff]*"')


def _etag_matches(header: str, etag: str, strong: bool) -> bool:
    """An If-Match / If-None-Match value lists etag (``*`` lists any)."""
    if header.strip(" \t") == "*":
        return True
    if strong and etag.startswith("W/"):
        return False
    opaque = etag.removeprefix("W/")
    for m in _ETAG.finditer(header):
        tag = m.group(0)
        if tag.startswith("W/"):
            if strong:
                continue
            tag = tag[2:]
        if tag == opaque:
            return True
    return False


def _http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP-date, or None when it is not one."""
    try:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else int(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status, _TEXT, headers)


def file_response(request: Any, path: str, st: os.stat_result | None = None,
                  content_type: str | None = None, range: tuple[int, int | None] | None = None,
                  weak_etag: bool = False) -> Response:
    """The response to request for the regular file at path (already checked).

    With ``range=(start, stop)`` (stop exclusive, or None for the end of the
    file) that part of the file is the answer, 206 with its Content-Range, or
    416 when it is empty or outside the file; request headers are not looked at.
    Otherwise the request's preconditions and Range header decide (see the
    module's documentation).
    """
    if st is None:
        st = os.stat(path)
    size = st.st_size
    ctype = content_type or guess_type(path)
    if range is not None:
        start, stop = range
        stop = size if stop is None else stop
        if not 0 <= start < stop <= size:
            return Response(None, 416, None, {"Content-Range": f"bytes */{size}"})
        return Response(px.sendfile(path, start, stop - start), 206, ctype,
                        {"Content-Range": f"bytes {start}-{stop - 1}/{size}"})

    etag = make_etag(st, weak_etag)
    mtime = int(st.st_mtime)
    validators = _file_validators(etag, mtime)
    headers = request.headers
    method = request.method
    early = _precondition_answer(request, etag, mtime, validators)
    if early is not None:
        return early

    out = dict(validators)
    out["Accept-Ranges"] = "bytes"
    value = headers.get("range")
    if value is not None and method in _GET_HEAD and _if_range_holds(headers, etag, mtime):
        try:
            span = parse_range(value, size)
        except RangeNotSatisfiable:
            out["Content-Range"] = f"bytes */{size}"
            return Response(None, 416, None, out)
        if span is not None:
            start, stop = span
            out["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            return Response(px.sendfile(path, start, stop - start), 206, ctype, out)
    return Response(px.sendfile(path, 0, size), 200, ctype, out)


def _file_validators(etag: str, mtime: int) -> dict[str, str]:
    """The ETag and Last-Modified headers of a file."""
    return {"ETag": etag, "Last-Modified": email.utils.formatdate(mtime, usegmt=True)}


def _precondition_answer(request: Any, etag: str, mtime: int,
                        validators: dict[str, str]) -> Response | None:
    """The 412 or 304 that request's preconditions ask for (RFC 9110 13.2.2:
    If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since), or None
    when the answer is to be the file (If-Range, which comes next, is the
    caller's)."""
    headers = request.headers
    method = request.method
    value = headers.get("if-match")
    if value is not None:
        if not _etag_matches(value, etag, strong=True):
            return _plain(412, "412 Precondition Failed", dict(validators))
    else:
        value = headers.get("if-unmodified-since")
        date = None if value is None else _http_date(value)
        if date is not None and mtime > date:
            return _plain(412, "412 Precondition Failed", dict(validators))
    value = headers.get("if-none-match")
    if value is not None:
        if _etag_matches(value, etag, strong=False):
            if method in _GET_HEAD:
                return Response(None, 304, None, dict(validators))
            return _plain(412, "412 Precondition Failed", dict(validators))
    elif method in _GET_HEAD:
        value = headers.get("if-modified-since")
        date = None if value is None else _http_date(value)
        if date is not None and mtime <= date:
            return Response(None, 304, None, dict(validators))
    return None


def _if_range_holds(headers: dict[str, str], etag: str, mtime: int) -> bool:
    value = headers.get("if-range")
    if value is None:
        return True
    value = value.strip(" \t")
    if value.startswith(('"', "W/")):
        # a strong comparison: a weak tag on either side never matches
        return not etag.startswith("W/") and value == etag
    return _http_date(value) == mtime


def send_file(request: Any, path: str | os.PathLike[str],
              range: tuple[int, int | None] | None = None,
              content_type: str | None = None, weak_etag: bool = False) -> Response:
    """Answer request with the file at path (a trusted name; see
    :func:`file_response` for range and the headers); 404 when it is missing
    or not a regular file, 403 when it cannot be read."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return _plain(404, "404 Not Found")
    except PermissionError:
        return _plain(403, "403 Forbidden")
    if not _stat.S_ISREG(st.st_mode):
        return _plain(404, "404 Not Found")
    if not os.access(path, os.R_OK):
        return _plain(403, "403 Forbidden")
    return file_response(request, path, st, content_type, range, weak_etag)


class StaticFiles:
    """Serves the files under root; a handler for :func:`route` prefix routes.

    ``route("/static/*")(StaticFiles(root))`` as a class attribute of an
    :class:`HttpServer` serves ``root/a/b`` at ``/static/a/b`` (the route tells
    it its prefix); ``route("/*")`` serves a whole site. Used elsewhere, call
    :meth:`respond` with the raw (still percent-encoded) path under the root.

    index: file names tried in a directory, in order; listing: answer a
    directory without one with an HTML list of its entries (else 404);
    weak_etags: send ``W/`` entity tags.
    """

    def __init__(self, root: str | os.PathLike[str], *, prefix: str = "",
                 index: tuple[str, ...] | str = ("index.html",), listing: bool = True,
                 weak_etags: bool = False) -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise NotADirectoryError(f"not a directory: {os.fspath(root)!r}")
        self.root = real
        self._root_slash = real.rstrip("/") + "/"
        self.prefix = prefix.rstrip("/")
        self.index = (index,) if isinstance(index, str) else tuple(index)
        self.listing = listing
        self.weak_etags = weak_etags

    #: the methods it answers: :func:`route` takes no others for it, so a body
    #: sent with any other method is refused before it arrives
    __px_methods__ = _GET_HEAD

    def __px_mount__(self, route_path: str) -> None:
        """Called by :func:`route`: learn the prefix this instance serves."""
        if not route_path.endswith("/*"):
            raise ValueError("StaticFiles needs a prefix route ending in '/*', "
                             f"not {route_path!r}")
        self.prefix = route_path[:-2]

    def __call__(self, request: Any, *args: Any, **params: Any) -> Response:
        path = request.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return _plain(404, "404 Not Found")
            path = path[len(self.prefix):]
        return self.respond(request, path)

    def __repr__(self) -> str:
        return f"StaticFiles({self.root!r}, prefix={self.prefix!r})"

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self._root_slash)

    def resolve(self, raw_path: str) -> str | None:
        """The real file-system path of a raw request path under the root, or
        None when it lies outside (ValueError for a malformed path)."""
        return self._resolve(decode_path(raw_path))

    def _resolve(self, decoded: bytes) -> str | None:
        real = os.path.realpath(os.path.join(self.root, os.fsdecode(decoded[1:])))
        return real if self._inside(real) else None

    def respond(self, request: Any, raw_path: str) -> Response:
        """The response for the file at raw_path (percent-encoded, starting
        with ``/``) under the root."""
        if request.method not in _GET_HEAD:
            return _plain(405, "405 Method Not Allowed", {"Allow": "GET, HEAD"})
        try:
            decoded = decode_path(raw_path)
        except ValueError:
            return _plain(400, "400 Bad Request")
        real = self._resolve(decoded)
        if real is None:
            return _plain(404, "404 Not Found")
        try:
            st = os.stat(real)
        except OSError:
            return _plain(404, "404 Not Found")
        if _stat.S_ISDIR(st.st_mode):
            return self._directory(request, real)
        if not _stat.S_ISREG(st.st_mode) or raw_path.endswith("/"):
            return _plain(404, "404 Not Found")
        if not os.access(real, os.R_OK):
            return _plain(403, "403 Forbidden")
        # the type of the name asked for (a link's target may be named otherwise)
        return file_response(request, real, st, guess_type(os.fsdecode(decoded)),
                             weak_etag=self.weak_etags)

    def _directory(self, request: Any, real: str) -> Response:
        url = request.path
        if not url.endswith("/"):
            # one leading '/': "//host/" would send the client elsewhere
            location = "/" + url.lstrip("/") + "/"
            if request.query:
                location += "?" + request.query
            return Response(None, 301, None, {"Location": location})
        for name in self.index:
            candidate = os.path.realpath(os.path.join(real, name))
            if not self._inside(candidate):
                continue
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if _stat.S_ISREG(st.st_mode) and os.access(candidate, os.R_OK):
                return file_response(request, candidate, st, guess_type(name),
                                     weak_etag=self.weak_etags)
        if not self.listing:
            return _plain(404, "404 Not Found")
        try:
            body = _listing_page(real, url, top=real == self.root)
        except OSError:
            return _plain(404, "404 Not Found")
        return Response(body, 200, _HTML)


def _listing_page(directory: str, url: str, top: bool = False) -> bytes:
    """An HTML page listing directory's entries (UTF-8; names escaped, links
    percent-encoded); url is the directory's request path, shown as the title."""
    entries = []
    with os.scandir(os.fsencode(directory)) as it:
        for entry in it:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            entries.append((entry.name, is_dir))
    entries.sort()
    try:
        title = decode_path(url).decode("utf-8", "replace")
    except ValueError:
        title = url
    title = html.escape(title)
    lines = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
             f"<title>Index of {title}</title></head>",
             f"<body><h1>Index of {title}</h1>", "<ul>"]
    if not top:
        lines.append('<li><a href="../">../</a></li>')
    for name, is_dir in entries:
        slash = "/" if is_dir else ""
        href = quote(name) + slash
        shown = html.escape(name.decode("utf-8", "replace")) + slash
        lines.append(f'<li><a href="{href}">{shown}</a></li>')
    lines += ["</ul>", "</body></html>", ""]
    return "\n".join(lines).encode("utf-8")
