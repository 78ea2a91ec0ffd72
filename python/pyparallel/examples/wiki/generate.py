"""A deterministic synthetic MediaWiki XML dump, so the Wikipedia demo runs
without downloading anything.

``python -m pyparallel.examples.wiki.generate --pages N [--seed S] OUT.xml``

The output has the layout of a ``pages-articles.xml`` export: a ``<mediawiki>``
root, a ``<siteinfo>`` block, then one ``<page>`` element per page with its
``<title>``, ``<ns>``, ``<id>``, an optional ``<redirect>`` and one
``<revision>`` whose ``<text>`` holds escaped wikitext. What makes it a useful
test bed for the index:

* titles share prefixes ("List of ...", "History of ...", "1987 in ..."),
  include non-ASCII ones (Zürich, Москва, 東京, ...), and characters that XML
  escapes (``&`` as ``&amp;``, ``"`` as ``&quot;``); some contain ``/``;
* page sizes vary over three orders of magnitude (redirects of a few hundred
  bytes, a log-normal body length with a long tail up to 200 kB);
* the wikitext contains escaped markup such as ``&lt;page&gt;`` and
  ``&lt;/title&gt;``, which a scanner must not mistake for elements.

The same (pages, seed) always gives the same bytes. Titles are unique.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["generate", "TitleMaker", "DEFAULT_SEED", "main"]

DEFAULT_SEED = 20150205

# ---- vocabulary -------------------------------------------------------------------

_PLACES = (
    "Paris", "London", "Berlin", "Chicago", "Sydney", "Lagos", "Lima", "Oslo", "Cairo",
    "Delhi", "Toronto", "Madrid", "Rome", "Vienna", "Prague", "Dublin", "Austin", "Boston",
    "Denver", "Nairobi", "Osaka", "Lisbon", "Warsaw", "Seattle", "Manila", "Santiago",
    "Zürich", "São Paulo", "Kraków", "Reykjavík", "Москва", "東京", "Ελλάδα", "Đà Nẵng",
    "Île-de-France", "Besançon", "Łódź", "Málaga", "Göteborg", "İstanbul", "Αθήνα",
    "القاهرة", "मुंबई", "서울", "Québec", "Curaçao", "Köln", "Århus", "Tromsø", "Cluj-Napoca",
)
_PLURALS = (
    "airports", "bridges", "museums", "rivers", "football clubs", "railway stations",
    "universities", "parks", "churches", "newspapers", "mayors", "streets", "hospitals",
    "theatres", "lighthouses", "castles", "libraries", "breweries", "festivals", "markets",
)
_ASPECTS = ("History", "Geography", "Economy", "Politics", "Culture", "Demographics",
            "Climate", "Architecture", "Cuisine", "Transport", "Education", "Music")
_SUBJECTS = (
    "music", "film", "sports", "science", "literature", "television", "aviation", "chess",
    "architecture", "rail transport", "video gaming", "spaceflight", "paleontology",
    "art", "poetry", "baseball", "cricket", "association football", "philosophy", "jazz",
)
_FIRST = (
    "Anna", "John", "Maria", "David", "Sofia", "Peter", "Laura", "James", "Elena", "Paul",
    "Clara", "Thomas", "Ingrid", "Carlos", "Mei", "Kenji", "Amara", "Olga", "Rahul", "Lena",
    "José", "Zoë", "Björk", "François", "Øyvind", "Søren", "Renée", "Jürgen", "Ángel", "Łukasz",
    "Ιωάννης", "Дмитрий", "Ngozi", "Siobhán", "Mátyás", "Çağla", "Nguyễn", "Hélène",
)
_LAST = (
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Moore", "Martin", "Lee", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green",
    "O'Brien", "O'Neill", "D'Angelo", "Müller", "Dvořák", "Ólafsson", "Häkkinen", "Nuñez",
    "Petrović", "Kowalczyk", "Ferreira", "Łęcki", "Иванов", "Παπαδόπουλος", "Janssen",
)
_PROFESSIONS = ("footballer", "politician", "actor", "actress", "composer", "painter",
                "cricketer", "writer", "physicist", "architect", "singer", "bishop",
                "cyclist", "journalist", "chess player", "engineer")
_QUALIFIERS = ("film", "album", "band", "novel", "song", "ship", "village", "magazine",
               "TV series", "play", "horse", "company", "disambiguation", "river", "surname")
_ADJECTIVES = ("Great", "Northern", "Royal", "Grand", "New", "Old", "Silver", "Golden",
               "Red", "Little", "Upper", "Lower", "Saint", "Black", "Iron", "Crystal")
_NOUNS = ("Harbour", "Valley", "Bridge", "Tower", "Garden", "Road", "Lake", "Hill",
          "Castle", "Forest", "Island", "Canal", "Station", "Square", "Market", "Abbey")
_SYLLABLES = ("ka", "lo", "mi", "ren", "tha", "vor", "el", "quin", "dra", "su", "bel",
              "nor", "ix", "ta", "ver", "am", "zu", "pol", "gri", "on", "sha", "mel",
              "dor", "fi", "ra", "ul", "ke", "bran", "te", "lis")
_COMPANIES = ("Smith", "Jones", "Marks", "Procter", "Johnson", "Barnes", "Black", "Decker",
              "Dolce", "Ernst", "Crabtree", "Abercrombie", "Tiffany", "Bang", "Simon")
_PARTNERS = ("Gamble", "Spencer", "Noble", "Young", "Evelyn", "Fitch", "Olufsen",
             "Garfunkel", "Wesson", "Gabbana", "Sons", "Co.", "Partners", "Jerry")
_NICKNAMES = ("The Rock", "Ace", "Lucky", "Red", "Doc", "Magic", "Big", "Slim", "Duke")

# Words of the body text; some with characters that XML escapes and markup.
_WORDS = (
    "the", "of", "and", "in", "was", "is", "a", "to", "by", "first", "city", "river",
    "known", "century", "population", "north", "built", "church", "station", "line",
    "album", "released", "record", "team", "season", "league", "won", "series", "born",
    "university", "school", "government", "party", "election", "bridge", "museum", "war",
    "Zürich", "café", "naïve", "Ελλάδα", "Москва", "東京", "façade", "über", "résumé",
    "&amp;", "&quot;quoted&quot;", "R&amp;B", "x &lt; y", "a &gt; b", "'''bold'''",
    "''italic''", "[[link]]", "[[Main page|label]]", "{{citation needed}}",
)
_SNIPPETS = (
    "&lt;ref&gt;{{cite web |url=https://example.org/?a=1&amp;b=2 |title=Source}}&lt;/ref&gt;",
    "&lt;page&gt;not an element&lt;/page&gt;", "&lt;title&gt;Not a title&lt;/title&gt;",
    "\n\n== History ==\n", "\n\n== See also ==\n* [[List of rivers]]\n",
    "\n{| class=&quot;wikitable&quot;\n|-\n! Year !! Event\n|-\n| 1901 || Opened\n|}\n",
    "&lt;!-- a comment --&gt;", "&lt;math&gt;x^2 &lt; y&lt;/math&gt;",
    "\n[[Category:Examples]]\n", "\n{{Infobox settlement\n| name = Example\n}}\n",
)


def _escape(text: str) -> str:
    """Text escaped as a MediaWiki export escapes element content."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace('"', "&quot;")


class TitleMaker:
    """Unique, realistic page titles from a seeded random source."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()
        self.templates = (
            (14, self._person), (10, self._list), (8, self._aspect), (8, self._year),
            (10, self._place_thing), (10, self._made_up), (6, self._qualified),
            (4, self._company), (3, self._nickname), (3, self._slash), (2, self._talk),
            (2, self._category),
        )
        self.total = sum(w for w, _ in self.templates)

    def _name(self) -> str:
        rng = self.rng
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        return word.capitalize()

    def _person(self) -> str:
        r = self.rng
        base = f"{r.choice(_FIRST)} {r.choice(_LAST)}"
        return base if r.random() < 0.6 else f"{base} ({r.choice(_PROFESSIONS)})"

    def _list(self) -> str:
        return f"List of {self.rng.choice(_PLURALS)} in {self.rng.choice(_PLACES)}"

    def _aspect(self) -> str:
        r = self.rng
        place = r.choice(_PLACES) if r.random() < 0.7 else self._name()
        return f"{r.choice(_ASPECTS)} of {place}"

    def _year(self) -> str:
        return f"{self.rng.randint(1800, 2025)} in {self.rng.choice(_SUBJECTS)}"

    def _place_thing(self) -> str:
        r = self.rng
        return f"{r.choice(_ADJECTIVES)} {r.choice(_NOUNS)}, {r.choice(_PLACES)}"

    def _made_up(self) -> str:
        r = self.rng
        return f"{self._name()} {r.choice(_NOUNS)}" if r.random() < 0.5 else self._name()

    def _qualified(self) -> str:
        return f"{self._name()} ({self.rng.choice(_QUALIFIERS)})"

    def _company(self) -> str:
        return f"{self.rng.choice(_COMPANIES)} & {self.rng.choice(_PARTNERS)}"

    def _nickname(self) -> str:
        r = self.rng
        return f'{r.choice(_FIRST)} "{r.choice(_NICKNAMES)}" {r.choice(_LAST)}'

    def _slash(self) -> str:
        return f"{self._name().upper()[:2]}/{self._name().upper()[:2]}"

    def _talk(self) -> str:
        return "Talk:" + self._person()

    def _category(self) -> str:
        return f"Category:{self.rng.choice(_PLURALS).capitalize()} in {self.rng.choice(_PLACES)}"

    def _template(self, pick: int) -> Callable[[], str]:
        """The template whose share of the weights holds pick (0 <= pick < total)."""
        for weight, template in self.templates:
            if pick < weight:
                return template
            pick -= weight
        return self.templates[-1][1]

    def make(self) -> str:
        """A title not made before."""
        r = self.rng
        title = self._template(r.randrange(self.total))()
        if title in self.seen:
            # Wikipedia disambiguates with a qualifier, then we fall back to a number.
            title = f"{title} ({r.choice(_QUALIFIERS)})"
            n = 2
            base = title
            while title in self.seen:
                title = f"{base} {n}"
                n += 1
        self.seen.add(title)
        return title


def _namespace_of(title: str) -> int:
    """The MediaWiki namespace number of a title (of the prefixes used here)."""
    if title.startswith("Talk:"):
        return 1
    if title.startswith("Category:"):
        return 14
    return 0


_SITEINFO = """\
<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.10/ \
http://www.mediawiki.org/xml/export-0.10.xsd" version="0.10" xml:lang="en">
  <siteinfo>
    <sitename>Synthetic Wikipedia</sitename>
    <dbname>synthwiki</dbname>
    <base>https://synthwiki.invalid/wiki/Main_Page</base>
    <generator>pyparallel.examples.wiki.generate (seed {seed}, {pages} pages)</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"""


def _text_pool(rng: random.Random, size: int) -> bytes:
    """Escaped wikitext from which page bodies are cut (at spaces, so no
    entity is ever split)."""
    parts: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.04:
            piece = rng.choice(_SNIPPETS)
        else:
            piece = rng.choice(_WORDS)
            if rng.random() < 0.08:
                piece += "."
        parts.append(piece)
        length += len(piece.encode()) + 1
    return (" ".join(parts) + " ").encode("utf-8")


def _unescaped_length(escaped: bytes) -> int:
    """Bytes of the text once its entities (the five used here) are decoded."""
    return (len(escaped) - 4 * escaped.count(b"&amp;") - 3 * escaped.count(b"&lt;")
            - 3 * escaped.count(b"&gt;") - 5 * escaped.count(b"&quot;"))


def _body_length(rng: random.Random) -> int:
    # Log-normal: median ~1.5 kB, mean ~3 kB, a long tail to the cap.
    return int(min(200_000, max(60, rng.lognormvariate(math.log(1500), 1.2))))


def generate(out: BinaryIO | str | os.PathLike[str], pages: int,
             seed: int = DEFAULT_SEED) -> int:
    """Write a dump of ``pages`` pages to ``out`` (a path or a binary file);
    returns the number of bytes written. Deterministic in (pages, seed)."""
    if pages < 0:
        raise ValueError("pages must be >= 0")
    if isinstance(out, (str, os.PathLike)):
        path = os.fspath(out)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb", buffering=1 << 20) as file:
                n = generate(file, pages, seed)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return n
    f = out
    rng = random.Random(seed)
    pool = _text_pool(random.Random(seed + 1), 4 << 20)
    titles = TitleMaker(rng)
    made: list[str] = []  # redirect targets
    written = f.write(_SITEINFO.format(seed=seed, pages=pages).encode())
    page_id = 10
    rev_id = 1000
    for _ in range(pages):
        title = titles.make()
        esc_title = _escape(title)
        page_id += rng.randint(1, 9)
        rev_id += rng.randint(1, 40)
        ts = (f"{rng.randint(2002, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
              f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")
        redirect = ""
        if made and rng.random() < 0.25:
            target = _escape(rng.choice(made))
            redirect = f'    <redirect title="{target}" />\n'
            text = f"#REDIRECT [[{target}]]".encode()
        else:
            want = _body_length(rng)
            start = pool.index(b" ", rng.randrange(len(pool) - want - 1)) + 1
            stop = pool.find(b" ", start + want)
            if stop < 0:
                stop = len(pool)
            text = (f"'''{esc_title}''' is ".encode() + pool[start:stop])
        made.append(title)
        head = (f"  <page>\n    <title>{esc_title}</title>\n    <ns>{_namespace_of(title)}</ns>\n"
                f"    <id>{page_id}</id>\n{redirect}    <revision>\n      <id>{rev_id}</id>\n"
                f"      <timestamp>{ts}</timestamp>\n      <contributor>\n"
                f"        <username>{_escape(rng.choice(_FIRST))}</username>\n"
                f"        <id>{rng.randint(1, 10**7)}</id>\n      </contributor>\n"
                f"      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
                f'      <text bytes="{_unescaped_length(text)}" xml:space="preserve">')
        tail = b"</text>\n    </revision>\n  </page>\n"
        written += f.write(head.encode("utf-8"))
        written += f.write(text)
        written += f.write(tail)
    written += f.write(b"</mediawiki>\n")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.examples.wiki.generate",
                                     description="Write a synthetic MediaWiki XML dump.")
    parser.add_argument("out", help="the XML file to write")
    parser.add_argument("--pages", type=int, required=True)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    size = generate(args.out, args.pages, args.seed)
    print(f"wrote {args.pages} pages, {size} bytes to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
