"""The Wikipedia demo: a MediaWiki XML dump served by title.

``python -m pyparallel.examples.wiki --xml DUMP.xml | --pages N [--port P] [--workers K]``

* :mod:`.generate` writes a deterministic synthetic dump of any size;
* :mod:`.index` builds the title index in parallel over byte ranges of the
  memory-mapped dump and saves it next to it (``DUMP.xml.pxidx``);
* :mod:`.app` serves ``/wiki/TITLE``, ``/offsets/PREFIX`` and ``/xml``.
"""

from __future__ import annotations

from collections.abc import Callable

from .app import MAX_PREFIX_RESULTS, MIN_PREFIX_CHARS, WikiServer, decode_title, make_app
from .index import WikiIndex, load_or_build

__all__ = ["WikiServer", "WikiIndex", "make_app", "load_or_build", "decode_title",
           "MAX_PREFIX_RESULTS", "MIN_PREFIX_CHARS", "prepare"]


def prepare(xml: str | None = None, pages: int | None = None, cache_dir: str | None = None,
            workers: int | None = None,
            log: Callable[[str], None] | None = None) -> type[WikiServer]:
    """The app class for a dump: xml, or a generated one of ``pages`` pages
    kept in cache_dir (default ``~/.cache/pyparallel/wiki``); its index is
    loaded or built (on ``workers`` workers) and saved next to it."""
    import os

    from .generate import DEFAULT_SEED, generate

    if xml is None:
        if pages is None:
            raise ValueError("give a dump (xml) or a number of pages to generate")
        cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "pyparallel",
                                              "wiki")
        os.makedirs(cache_dir, exist_ok=True)
        xml = os.path.join(cache_dir, f"synthetic-{pages}-{DEFAULT_SEED}.xml")
        if not os.path.exists(xml):
            if log:
                log(f"generating {pages} pages into {xml}")
            generate(xml, pages)
    index, _ = load_or_build(xml, workers=workers, log=log)
    return make_app(xml, index)
