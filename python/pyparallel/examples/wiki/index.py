"""The title index of a MediaWiki XML dump: built in parallel, saved next to
the dump, searched without locks.

Building
    The dump is memory-mapped and cut into byte ranges; each range is scanned
    on a worker (``px.map``) for the ``<page>`` elements that *start* in it, so
    a page crossing a boundary belongs to exactly one range. For each page the
    scan records the offsets of ``<page>`` and of the end of ``</page>`` and
    the title, XML-unescaped and UTF-8 encoded. The ranges' results are joined
    in file order and sorted by title bytes (UTF-8 byte order is code point
    order); when a title repeats, its first page in the file is kept.

Layout in memory
    ``blob``: every title's UTF-8 bytes, in sorted order, one after the other;
    ``bounds``: ``array('q')`` of n + 1 offsets, title i being
    ``blob[bounds[i]:bounds[i + 1]]``; ``starts`` and ``ends``: ``array('q')``
    of the page elements' byte ranges (end exclusive: ``dump[start:end]`` is
    the ``<page>...</page>`` element). About 24 bytes per page plus the titles.

Searching
    A binary search over the titles' bytes: an exact title, or the range of
    titles that start with a prefix (from the first title >= prefix to the
    first title >= prefix + 0xFF, a byte no UTF-8 text contains). Searches only
    read immutable objects, so any number of workers search at once without a
    lock.

The saved index (``DUMP.pxidx``)
    A header line of JSON (format, byte order, counts, and the dump's size,
    modification time and a hash of its first and last 64 KiB), then the three
    arrays and the blob. It is used when all of that matches the dump, else
    rebuilt (and rewritten atomically).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import mmap
import operator
import os
import re
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeAlias

import pyparallel as px

__all__ = ["WikiIndex", "ScanResult", "scan_range", "split_ranges", "parallel_map",
           "unescape_xml", "fingerprint", "index_path_for", "load_or_build"]

_FORMAT = "pyparallel-wiki-index/1"
_MAGIC = b"PXWIKI1\n"
_HASH_SPAN = 64 << 10
_MIN_RANGE = 1 << 20

_PAGE = b"<page>"
_PAGE_END = b"</page>"
_TITLE = b"<title>"
_TITLE_END = b"</title>"

_ENTITY = re.compile(rb"&(#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6}|amp|lt|gt|quot|apos);")
_NAMED = {b"amp": b"&", b"lt": b"<", b"gt": b">", b"quot": b'"', b"apos": b"'"}


def _entity(m: re.Match[bytes]) -> bytes:
    name = m.group(1)
    if name.startswith(b"#"):
        code = int(name[2:], 16) if name[1:2] in (b"x", b"X") else int(name[1:])
        try:
            return chr(code).encode("utf-8")
        except (ValueError, UnicodeEncodeError):  # past U+10FFFF or a lone surrogate
            return m.group(0)
    return _NAMED[name]


def unescape_xml(raw: bytes) -> bytes:
    """XML character data with its predefined and numeric character
    references decoded (anything else is left as it is)."""
    return _ENTITY.sub(_entity, raw) if b"&" in raw else raw


# ---- scanning ------------------------------------------------------------------------

# What scanning a byte range yields: (starts, ends, titles) of its pages.
# A string: array is subscriptable at run time only from Python 3.12 on.
ScanResult: TypeAlias = "tuple[array[int], array[int], list[bytes]]"


def scan_range(path: str, start: int, stop: int) -> ScanResult:
    """The pages whose ``<page>`` tag starts in [start, stop) of the file at path:
    (starts, ends, titles), in file order. Reads past stop to finish the last
    page. Raises ValueError for a page without ``</page>`` or a title."""
    starts: array[int] = array("q")
    ends: array[int] = array("q")
    titles: list[bytes] = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0 or start >= size:
            return starts, ends, titles
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            find = mm.find
            limit = min(stop, size) + len(_PAGE) - 1  # a tag may start before stop
            pos = find(_PAGE, start, limit)
            while pos >= 0:
                close = find(_PAGE_END, pos)
                if close < 0:
                    raise ValueError(f"{path}: the <page> at byte {pos} has no </page>")
                t0 = find(_TITLE, pos, close)
                t1 = find(_TITLE_END, t0, close) if t0 >= 0 else -1
                if t1 < 0:
                    raise ValueError(f"{path}: the <page> at byte {pos} has no <title>")
                starts.append(pos)
                ends.append(close + len(_PAGE_END))
                titles.append(unescape_xml(mm[t0 + len(_TITLE):t1]))
                pos = find(_PAGE, close + len(_PAGE_END), limit)
    return starts, ends, titles


def split_ranges(size: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering [0, size): about parts of them, none
    smaller than 1 MiB (but at least one)."""
    parts = max(1, min(parts, size // _MIN_RANGE))
    step = -(-size // parts) if size else 1
    return [(a, min(a + step, size)) for a in range(0, max(size, 1), step)]


def parallel_map(func: Callable[..., Any], items: Iterable[Any],
                 workers: int | None = None) -> list[Any]:
    """``list(map(func, items))`` on the engine's workers (``px.map``), or on a
    thread pool where this pyparallel has no ``px.map``."""
    items = list(items)
    px_map = getattr(px, "map", None)
    if px_map is not None:
        return list(px_map(func, items, chunksize=1, workers=workers))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(func, items))


def _scan_sorted(task: tuple[str, int, int]) -> ScanResult:
    """scan_range(*task) with its pages sorted by title (stable), on a worker:
    the merge then only has sorted runs to join."""
    starts, ends, titles = scan_range(*task)
    order = sorted(range(len(titles)), key=titles.__getitem__)
    return (array("q", map(starts.__getitem__, order)), array("q", map(ends.__getitem__, order)),
            list(map(titles.__getitem__, order)))


# ---- the index --------------------------------------------------------------------------

class WikiIndex:
    """Sorted titles with their pages' byte ranges; read-only once built."""

    __slots__ = ("blob", "bounds", "starts", "ends", "duplicates", "dump_size")

    def __init__(self, blob: bytes, bounds: array[int], starts: array[int], ends: array[int],
                 duplicates: int = 0, dump_size: int = 0) -> None:
        if not (len(bounds) == len(starts) + 1 == len(ends) + 1):
            raise ValueError("bounds must have one entry more than starts and ends")
        self.blob = blob
        self.bounds = bounds
        self.starts = starts
        self.ends = ends
        self.duplicates = duplicates
        self.dump_size = dump_size

    # -- construction --------------------------------------------------------------
    @classmethod
    def build(cls, path: str | os.PathLike[str], workers: int | None = None,
              parts: int | None = None) -> WikiIndex:
        """Scan the dump at path on ``workers`` workers (default: all) in
        ``parts`` ranges (default: four per worker)."""
        path = os.fspath(path)
        size = os.stat(path).st_size
        n = workers or os.cpu_count() or 1
        ranges = split_ranges(size, parts or 4 * n)
        results = parallel_map(_scan_sorted, [(path, a, b) for a, b in ranges], workers)
        return cls.from_pages(results, size)

    @classmethod
    def from_pages(cls, results: Iterable[ScanResult], dump_size: int = 0) -> WikiIndex:
        """The index of scan results for consecutive ranges, in file order;
        each result's pages in file order or stably sorted by title."""
        starts: array[int] = array("q")
        ends: array[int] = array("q")
        titles: list[bytes] = []
        for s, e, t in results:
            starts.extend(s)
            ends.extend(e)
            titles.extend(t)
        # A stable sort: of a repeated title, the page first in the file comes
        # first and is kept. Results sorted per range (_scan_sorted) are runs
        # that this sort merges in about linear time.
        order = sorted(range(len(titles)), key=titles.__getitem__)
        keys = list(map(titles.__getitem__, order))
        duplicates = 0
        if any(map(operator.eq, keys, itertools.islice(keys, 1, None))):
            keep = [0] + [k for k in range(1, len(keys)) if keys[k] != keys[k - 1]]
            duplicates = len(keys) - len(keep)
            order = [order[k] for k in keep]
            keys = [keys[k] for k in keep]
        return cls(b"".join(keys), array("q", itertools.accumulate(map(len, keys), initial=0)),
                   array("q", map(starts.__getitem__, order)),
                   array("q", map(ends.__getitem__, order)), duplicates, dump_size)

    # -- searching -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.starts)

    def title(self, i: int) -> bytes:
        """The UTF-8 bytes of the i-th title in sorted order."""
        return self.blob[self.bounds[i]:self.bounds[i + 1]]

    def _lower_bound(self, key: bytes) -> int:
        """The first i whose title is >= key."""
        blob, bounds = self.blob, self.bounds
        lo, hi = 0, len(bounds) - 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if blob[bounds[mid]:bounds[mid + 1]] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, title: str | bytes) -> tuple[int, int] | None:
        """(start, end) of the page with exactly this title, or None."""
        key = title.encode("utf-8") if isinstance(title, str) else title
        i = self._lower_bound(key)
        if i < len(self.starts) and self.title(i) == key:
            return self.starts[i], self.ends[i]
        return None

    def prefix_range(self, prefix: str | bytes) -> tuple[int, int]:
        """[lo, hi): the sorted positions of the titles starting with prefix."""
        key = prefix.encode("utf-8") if isinstance(prefix, str) else prefix
        return self._lower_bound(key), self._lower_bound(key + b"\xff")

    def prefix(self, prefix: str | bytes, limit: int | None = None) -> list[tuple[str, int, int]]:
        """[(title, start, end), ...] of the titles starting with prefix, in
        title order, at most limit of them."""
        lo, hi = self.prefix_range(prefix)
        if limit is not None:
            hi = min(hi, lo + max(0, limit))
        return [(self.title(i).decode("utf-8", "surrogateescape"), self.starts[i], self.ends[i])
                for i in range(lo, hi)]

    def __iter__(self) -> Iterator[tuple[bytes, int, int]]:
        for i in range(len(self.starts)):
            yield self.title(i), self.starts[i], self.ends[i]

    def nbytes(self) -> dict[str, int]:
        """Bytes held by each part of the index."""
        item = self.starts.itemsize
        return {"titles": len(self.blob), "bounds": len(self.bounds) * item,
                "starts": len(self.starts) * item, "ends": len(self.ends) * item}

    def share(self) -> None:
        """Mark the index's objects as shared by all workers (``px.share``,
        where this pyparallel has it: no reference-count traffic on them)."""
        share = getattr(px, "share", None)
        if share is None:
            return
        for obj in (self, self.blob, self.bounds, self.starts, self.ends):
            share(obj)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], source: dict[str, Any]) -> None:
        """Write the index to path (atomically: a temporary file renamed);
        source describes the dump it belongs to (see :func:`fingerprint`)."""
        path = os.fspath(path)
        header = {"format": _FORMAT, "byteorder": sys.byteorder, "itemsize": self.starts.itemsize,
                  "count": len(self.starts), "blob": len(self.blob),
                  "duplicates": self.duplicates, "dump": source}
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(_MAGIC)
                f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
                self.bounds.tofile(f)
                self.starts.tofile(f)
                self.ends.tofile(f)
                f.write(self.blob)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str], source: dict[str, Any]) -> WikiIndex | None:
        """The index saved at path if it belongs to the dump described by
        source and is intact; None otherwise (missing, stale, truncated)."""
        try:
            with open(path, "rb") as f:
                if f.read(len(_MAGIC)) != _MAGIC:
                    return None
                header = json.loads(f.readline(1 << 16))
                if (header.get("format") != _FORMAT or header.get("byteorder") != sys.byteorder
                        or header.get("dump") != source
                        or header.get("itemsize") != array("q").itemsize):
                    return None
                n, blob_len = int(header["count"]), int(header["blob"])
                arrays = []
                for length in (n + 1, n, n):
                    a: array[int] = array("q")
                    a.fromfile(f, length)  # EOFError when the file is short
                    arrays.append(a)
                blob = f.read(blob_len + 1)
        except (OSError, EOFError, ValueError, KeyError, TypeError):
            return None
        bounds, starts, ends = arrays
        if len(blob) != blob_len or bounds[0] != 0 or bounds[n] != blob_len:
            return None
        return cls(blob, bounds, starts, ends, int(header.get("duplicates", 0)),
                   int(source["size"]))


def fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a dump's content for the saved index: its size, its
    modification time (ns) and a SHA-256 of its first and last 64 KiB."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        digest = hashlib.sha256(f.read(_HASH_SPAN))
        if st.st_size > _HASH_SPAN:
            f.seek(max(_HASH_SPAN, st.st_size - _HASH_SPAN))
            digest.update(f.read(_HASH_SPAN))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()}


def index_path_for(dump: str | os.PathLike[str]) -> str:
    """Where the index of a dump is saved: next to it, ``DUMP.pxidx``."""
    return os.fspath(dump) + ".pxidx"


def load_or_build(dump: str | os.PathLike[str], workers: int | None = None,
                  index_path: str | None = None,
                  log: Callable[[str], None] | None = None) -> tuple[WikiIndex, bool]:
    """The dump's index: the saved one when it matches the dump, else built
    and saved (when the directory is writable). Returns (index, rebuilt)."""
    dump = os.fspath(dump)
    target = index_path or index_path_for(dump)
    source = fingerprint(dump)
    index = WikiIndex.load(target, source)
    if index is not None:
        if log:
            log(f"index: loaded {len(index)} titles from {target}")
        return index, False
    t0 = time.perf_counter()
    index = WikiIndex.build(dump, workers)
    took = time.perf_counter() - t0
    if fingerprint(dump) != source:
        raise RuntimeError(f"{dump} changed while it was being indexed")
    try:
        index.save(target, source)
        saved = f", saved to {target}"
    except OSError as exc:
        saved = f" (not saved: {exc.strerror})"
    if log:
        log(f"index: built {len(index)} titles in {took:.2f} s{saved}")
    return index, True
