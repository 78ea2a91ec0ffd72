"""Byte ranges of a request (``request.range``): the ``Range`` header parsed
into a :class:`RangedRequest`, and the answer to one or several ranges of a
file, as RFC 9110 and nginx give it: one range 206 with ``Content-Range``,
several 206 ``multipart/byteranges``, none satisfiable 416."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pyparallel as px

from ._response import Response
from .static import _SPEC, RangeNotSatisfiable, _number

__all__ = ["RangedRequest", "InvalidRangeRequest", "header_range", "ranged_file_response",
           "MAX_RANGES", "MAX_MULTIPART_BYTES"]

#: more ranges than this in one request, counted as asked (before overlapping
#: ones are merged), are ignored (the whole file is sent), as nginx's
#: max_ranges does, against requests for thousands of tiny parts
MAX_RANGES = 64
#: several ranges are read into memory for the multipart body (a GET's; a
#: HEAD's never are); more bytes than this in all are ignored as a Range (the
#: whole file is sent by the kernel): one such request holds at most this much
MAX_MULTIPART_BYTES = 1 << 20


class InvalidRangeRequest(ValueError):
    """A Range value that is not a byte-range set (the original's name)."""


class RangedRequest:
    """One or several byte ranges: ``RangedRequest("bytes=0-99,-10")`` (the
    ``bytes=`` unit may be left out, as the original allowed: ``"0-99"``).

    ``ranges``: ``[(first, last)]`` in request order, ``last`` inclusive and
    None for "to the end"; a suffix ``-n`` is ``(None, n)``. ``first_byte``,
    ``last_byte`` and ``suffix_length`` describe the first range, as the
    original's single range did. :meth:`spans` resolves them against a size.
    Raises :class:`InvalidRangeRequest` for anything else."""

    __slots__ = ("ranges", "from_header", "first_byte", "last_byte", "suffix_length",
                 "offset", "num_bytes_to_send", "file_size", "content_range")

    def __init__(self, requested_range: str, from_header: bool = False) -> None:
        value = requested_range.strip(" \t")
        unit, eq, rest = value.partition("=")
        if eq:
            if unit.strip(" \t").lower() != "bytes":
                raise InvalidRangeRequest(requested_range)
            value = rest
        elif from_header:
            raise InvalidRangeRequest(requested_range)  # a header needs its unit
        ranges: list[tuple[int | None, int | None]] = []
        for spec in (s.strip(" \t") for s in value.split(",")):
            if not spec:
                continue
            m = _SPEC.fullmatch(spec)
            if m is None or not (m.group(1) or m.group(2)):
                raise InvalidRangeRequest(requested_range)
            first = _number(m.group(1)) if m.group(1) else None
            last = _number(m.group(2)) if m.group(2) else None
            if first is not None and last is not None and last < first:
                raise InvalidRangeRequest(requested_range)
            ranges.append((first, last))
        if not ranges:
            raise InvalidRangeRequest(requested_range)
        self.ranges = ranges
        self.from_header = from_header
        first, last = ranges[0]
        self.first_byte = first
        self.last_byte = last if first is not None else None
        self.suffix_length = last if first is None else None
        self.offset: int | None = None
        self.num_bytes_to_send: int | None = None
        self.file_size: int | None = None
        self.content_range: str | None = None

    def __repr__(self) -> str:
        specs = ",".join(f"{'' if a is None else a}-{'' if b is None else b}"
                         for a, b in self.ranges)
        return f"RangedRequest('bytes={specs}')"

    def spans(self, size: int) -> list[tuple[int, int]]:
        """The satisfiable ranges of a file of size bytes as ``(start, stop)``
        (stop exclusive), in request order, overlapping or adjacent ones merged
        (RFC 9110 14.2 lets a server coalesce them); RangeNotSatisfiable when
        none is."""
        out: list[tuple[int, int]] = []
        for first, last in self.ranges:
            if first is None:
                n = last or 0
                if n == 0 or size == 0:
                    continue
                start, stop = max(0, size - n), size
            else:
                if first >= size:
                    continue
                start, stop = first, size if last is None else min(size, last + 1)
            out.append((start, stop))
        if not out:
            raise RangeNotSatisfiable(repr(self))
        merged: list[tuple[int, int]] = []
        for start, stop in sorted(out):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
            else:
                merged.append((start, stop))
        if len(merged) < len(out):
            return merged
        return out

    def set_file_size(self, file_size: int) -> None:
        """The original's API: resolve the first range against file_size
        (``offset``, ``num_bytes_to_send``, ``content_range``);
        InvalidRangeRequest when it is not satisfiable."""
        try:
            start, stop = RangedRequest(self._first_spec()).spans(file_size)[0]
        except RangeNotSatisfiable:
            raise InvalidRangeRequest(self._first_spec()) from None
        self.file_size = file_size
        self.offset = start
        self.num_bytes_to_send = stop - start
        self.content_range = f"bytes {start}-{stop - 1}/{file_size}"

    def _first_spec(self) -> str:
        first, last = self.ranges[0]
        return f"bytes={'' if first is None else first}-{'' if last is None else last}"


def header_range(request: Any) -> RangedRequest | None:
    """``request.range`` unless a handler set it: the Range header of a GET or
    HEAD as a RangedRequest; None when absent or invalid (a server ignores an
    invalid Range, RFC 9110 14.2)."""
    value = request.headers.get("range")
    if value is None or request.method not in ("GET", "HEAD"):
        return None
    try:
        return RangedRequest(value, from_header=True)
    except InvalidRangeRequest:
        return None


def ranged_file_response(request: Any, path: str, ranged: RangedRequest, content_type: str,
                         size: int, headers: dict[str, str]) -> Response | None:
    """The answer to ranged for the file at path of size bytes: 206 with one
    part sent by the kernel, 206 multipart/byteranges for several, 416 when
    none is satisfiable; None when the ranges are to be ignored (too many, too
    many bytes for a multipart body) and the whole file sent. headers (the
    validators) are added to the answer."""
    if len(ranged.ranges) > MAX_RANGES:
        return None
    try:
        spans = ranged.spans(size)
    except RangeNotSatisfiable:
        return Response(None, 416, None, {**headers, "Content-Range": f"bytes */{size}"})
    if len(spans) == 1:
        start, stop = spans[0]
        return Response(px.sendfile(path, start, stop - start), 206, content_type,
                        {**headers, "Content-Range": f"bytes {start}-{stop - 1}/{size}"})
    if sum(b - a for a, b in spans) > MAX_MULTIPART_BYTES:
        return None
    boundary = secrets.token_hex(12)
    ctype = f"multipart/byteranges; boundary={boundary}"
    heads = [f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
             f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n".encode()
             for start, stop in spans]
    tail = f"\r\n--{boundary}--\r\n".encode()
    if request.method == "HEAD":
        # the engine sends only a HEAD body's length: zeroed (calloc'd, never
        # touched) bytes of the length the GET's parts would have
        length = sum(map(len, heads)) + sum(b - a for a, b in spans) + len(tail)
        return Response(bytes(length), 206, ctype, headers)
    parts = []
    with open(path, "rb") as f:
        fd = f.fileno()
        for head, (start, stop) in zip(heads, spans, strict=True):
            parts.append(head)
            parts.append(os.pread(fd, stop - start, start))
    parts.append(tail)
    return Response(b"".join(parts), 206, ctype, headers)
