"""What the mail's Wikipedia server (:mod:`.original`) loads, made from a dump
with the demo's own index (:mod:`.index`), so that its code runs unchanged:

* ``titles.trie``: the title index, read back by :class:`datrie.Trie.load`
  here (a stand-in for the ``datrie`` package the original used: ``in``,
  ``[title]`` giving a list of offsets, ``keys``/``items`` by prefix);
* ``offsets.npy``: a sorted NumPy array of the same offsets plus one past the
  last page, for ``OFFSETS.searchsorted(offset, side='right')``;
* ``enwiki-20150205-pages-articles.xml``: a link to the dump;
* ``users.db``: an SQLite database with a ``user`` table for the routes that
  used SQL Server through ``pyodbc`` (sqlite3 speaks the same DB-API with the
  same ``?`` parameters).

A page's offset is its ``<page>`` start + 7, the value the mail's arithmetic
(``start = offset - 7``, ``end = next offset - 11``, end inclusive) turns into
exactly the page's bytes in a MediaWiki export, where ``</page>`` and the next
``<page>`` are separated by ``"\\n  "``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from typing import Any

from .index import WikiIndex

__all__ = ["datrie", "setup", "write_files", "Trie", "XML_NAME", "USERS", "TITLE_SHIFT",
           "END_SHIFT"]

XML_NAME = "enwiki-20150205-pages-articles.xml"
TITLE_SHIFT = 7   # offset - 7: the page's '<page>'
END_SHIFT = 11    # next offset - 11: the last byte of '</page>'
#: the rows of the user table: (login, name)
USERS = [("alice", "Alice Liddell"), ("bob", "Bob Dobbs"), ("trent", "Trent Nelson")]


class Trie:
    """The part of ``datrie.Trie`` the mail uses, over a :class:`WikiIndex`."""

    __slots__ = ("_index",)

    def __init__(self, index: WikiIndex) -> None:
        self._index = index

    @classmethod
    def load(cls, path: str) -> Trie:
        with open(path, "rb") as f:
            f.readline()  # the magic line
            source = json.loads(f.readline(1 << 16))["dump"]
        index = WikiIndex.load(path, source)
        if index is None:
            raise ValueError(f"{path}: not a title index")
        return cls(index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, title: object) -> bool:
        return isinstance(title, str) and self._index.find(title) is not None

    def __getitem__(self, title: str) -> list[int]:
        hit = self._index.find(title)
        if hit is None:
            raise KeyError(title)
        return [hit[0] + TITLE_SHIFT]

    def keys(self, prefix: str = "") -> list[str]:
        return [t for t, _, _ in self._index.prefix(prefix)]

    def items(self, prefix: str = "") -> list[tuple[str, list[int]]]:
        return [(t, [start + TITLE_SHIFT]) for t, start, _ in self._index.prefix(prefix)]


class _DatrieModule:
    """Stands for the ``datrie`` module: ``datrie.Trie``."""
    Trie = Trie


datrie = _DatrieModule()


def write_files(directory: str, dump: str, index: WikiIndex) -> None:
    """Make the mail's data files for dump (indexed as index) in directory."""
    import numpy as np

    from .index import fingerprint

    starts, ends = sorted(index.starts), sorted(index.ends)
    for end, nxt in zip(ends, starts[1:], strict=False):
        if nxt - end != END_SHIFT - TITLE_SHIFT - 1:
            raise ValueError("pages are not laid out as in a MediaWiki export")
    os.makedirs(directory, exist_ok=True)
    index.save(os.path.join(directory, "titles.trie"), fingerprint(dump))
    offsets = [s + TITLE_SHIFT for s in starts] + [(ends[-1] if ends else 0) + END_SHIFT - 1]
    np.save(os.path.join(directory, "offsets.npy"), np.array(offsets, dtype=np.uint64))
    link = os.path.join(directory, XML_NAME)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.abspath(dump), link)
    db = os.path.join(directory, "users.db")
    if os.path.exists(db):
        os.unlink(db)
    with sqlite3.connect(db) as con:
        con.execute("create table user (login text primary key, name text)")
        con.executemany("insert into user values (?, ?)", USERS)
    con.close()


def setup(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``--xml DUMP | --pages N``, ``--data-dir``, ``--host``, ``--port``,
    ``--workers``; make the data files and change to their directory (the
    mail opens them by relative names). Returns the options."""
    from . import prepare

    parser = argparse.ArgumentParser(prog="python -m pyparallel.examples.wiki.original",
                                     description="The Wikipedia HttpServer of the 2015 "
                                                 "python-ideas mail, unchanged but for imports.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--xml", help="a MediaWiki XML dump (pages-articles layout)")
    source.add_argument("--pages", type=int, help="generate a synthetic dump of this many pages")
    parser.add_argument("--data-dir", default=None,
                        help="where the data files are made (default: next to the dump)")
    parser.add_argument("--cache-dir", default=None, help="where --pages dumps are kept")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    app = prepare(args.xml, args.pages, args.cache_dir, args.workers)
    assert app.index is not None
    directory = args.data_dir or app.dump + ".original"
    write_files(directory, app.dump, app.index)
    os.chdir(directory)
    return vars(args)
