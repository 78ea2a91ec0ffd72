"""The Wikipedia demo (pyparallel.examples.wiki): the synthetic dump, the index
(parallel scan over byte ranges, sorted titles, prefix search, saved and
reloaded, rebuilt on change) and the HTTP endpoints through http.client on
both backends, every answer checked against a brute-force reading of the dump
with an XML parser and regular expressions."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

import pyparallel as px
from helpers import HOST, ServerProcess, connect, example, recv_until_eof
from pyparallel.examples.wiki import MAX_PREFIX_RESULTS, decode_title
from pyparallel.examples.wiki import index as wiki_index
from pyparallel.examples.wiki.generate import generate
from pyparallel.examples.wiki.index import (
    WikiIndex,
    fingerprint,
    index_path_for,
    load_or_build,
    scan_range,
    split_ranges,
    unescape_xml,
)

PAGES = 2000


@dataclass
class Dump:
    path: Path
    data: bytes
    titles: list[str]                      # in file order, as an XML parser reads them
    pages: dict[str, tuple[int, int]]      # title -> (start, end) found by a regex


def read_dump(path: Path) -> Dump:
    """The dump as an XML parser and a regular expression see it (independent
    of the index's own scanner)."""
    data = path.read_bytes()
    titles = [el.text or "" for el in ET.parse(path).getroot().iterfind(".//{*}title")]
    spans = [(m.start(), m.end()) for m in re.finditer(rb"<page>.*?</page>", data, re.S)]
    assert len(spans) == len(titles)
    assert len(set(titles)) == len(titles), "the generator repeats a title"
    return Dump(path, data, titles, dict(zip(titles, spans)))


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Dump:
    path = tmp_path_factory.mktemp("wiki") / "dump.xml"
    generate(path, PAGES)
    return read_dump(path)


# ---- the synthetic dump -----------------------------------------------------------------

def test_generator_is_deterministic_and_realistic(dump: Dump, tmp_path: Path) -> None:
    again = tmp_path / "again.xml"
    generate(again, PAGES)
    assert again.read_bytes() == dump.data
    other = tmp_path / "other.xml"
    generate(other, PAGES, seed=1)
    assert other.read_bytes() != dump.data
    titles = dump.titles
    assert len(titles) == PAGES
    assert sum(t.startswith("List of ") for t in titles) > PAGES // 20  # shared prefixes
    assert any(not t.isascii() for t in titles)
    assert any("&" in t for t in titles) and b"&amp;" in dump.data
    assert any('"' in t for t in titles) and b"&quot;" in dump.data
    assert any("/" in t for t in titles)
    sizes = sorted(end - start for start, end in dump.pages.values())
    assert sizes[-1] > 20 * sizes[len(sizes) // 2] > 20 * sizes[0]  # sizes vary widely
    # escaped markup in the text that a scanner must not take for elements
    assert b"&lt;page&gt;" in dump.data and b"&lt;title&gt;" in dump.data


def test_generator_zero_pages_is_a_valid_dump(tmp_path: Path) -> None:
    path = tmp_path / "empty.xml"
    generate(path, 0)
    assert ET.parse(path).getroot().tag.endswith("mediawiki")
    index = WikiIndex.build(path)
    assert len(index) == 0 and index.find("x") is None and index.prefix("abc") == []


# ---- scanning and the index -------------------------------------------------------------

@pytest.mark.parametrize("raw,text", [
    (b"AT&amp;T", b"AT&T"), (b"&lt;&gt;&quot;&apos;", b"<>\"'"), (b"&#233;", "é".encode()),
    (b"&#xE9;&#x6771;", "é東".encode()), (b"&amp;amp;", b"&amp;"), (b"a & b", b"a & b"),
    (b"&nbsp;", b"&nbsp;"), (b"&#xD800;", b"&#xD800;"), (b"&#1114112;", b"&#1114112;"),
    (b"plain", b"plain"),
])
def test_unescape_xml(raw: bytes, text: bytes) -> None:
    assert unescape_xml(raw) == text


def test_scan_finds_every_page_with_its_title(dump: Dump) -> None:
    starts, ends, titles = scan_range(str(dump.path), 0, len(dump.data))
    assert [t.decode() for t in titles] == dump.titles
    assert [dump.pages[t] for t in dump.titles] == list(zip(starts, ends))


def test_scan_ranges_cut_anywhere_near_a_page_tag(dump: Dump) -> None:
    """A page belongs to the range its '<page>' starts in, wherever the cut."""
    path, size = str(dump.path), len(dump.data)
    whole = scan_range(path, 0, size)
    tag = dump.pages[dump.titles[PAGES // 2]][0]
    for cut in range(tag - 3, tag + 9):
        a = scan_range(path, 0, cut)
        b = scan_range(path, cut, size)
        assert list(a[0]) + list(b[0]) == list(whole[0]), cut
        assert a[2] + b[2] == whole[2], cut
        assert (tag in a[0]) == (cut > tag), cut


def test_scan_many_small_ranges_equals_one(dump: Dump) -> None:
    path, size = str(dump.path), len(dump.data)
    rng = random.Random(7)
    cuts = sorted({0, size, *(rng.randrange(size) for _ in range(300))})
    starts: list[int] = []
    for a, b in zip(cuts, cuts[1:]):
        starts += scan_range(path, a, b)[0]
    assert starts == sorted(start for start, _ in dump.pages.values())


def test_split_ranges_cover_the_file() -> None:
    for size, parts in ((0, 4), (10, 4), (5 << 20, 3), ((7 << 20) + 5, 8), (100 << 20, 16)):
        ranges = split_ranges(size, parts)
        assert ranges[0][0] == 0 and ranges[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert len(ranges) <= max(1, parts)


def test_scan_rejects_a_truncated_dump(dump: Dump, tmp_path: Path) -> None:
    cut = tmp_path / "cut.xml"
    cut.write_bytes(dump.data[:len(dump.data) // 2])
    with pytest.raises(ValueError, match="no </page>"):
        WikiIndex.build(cut)


def _same(a: WikiIndex, b: WikiIndex) -> bool:
    return (a.blob == b.blob and a.bounds == b.bounds and a.starts == b.starts
            and a.ends == b.ends)


def test_index_sorted_and_equal_for_any_split(dump: Dump) -> None:
    one = WikiIndex.build(dump.path, workers=1, parts=1)
    assert len(one) == PAGES and one.duplicates == 0
    keys = [one.title(i) for i in range(len(one))]
    assert keys == sorted(t.encode() for t in dump.titles)
    for workers, parts in ((2, 2), (2, 5), (4, 16)):
        assert _same(one, WikiIndex.build(dump.path, workers=workers, parts=parts))
    for title in dump.titles:
        assert one.find(title) == dump.pages[title]
    assert one.find("No such title") is None
    assert one.find(dump.titles[0] + " ") is None


def test_index_uses_px_map_when_present(dump: Dump, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_map(func, items, chunksize=None, workers=None):
        calls.append((len(items), chunksize, workers))
        return [func(x) for x in items]

    monkeypatch.setattr(px, "map", fake_map, raising=False)
    via_map = WikiIndex.build(dump.path, workers=2, parts=3)
    assert calls == [(len(split_ranges(len(dump.data), 3)), 1, 2)]
    monkeypatch.delattr(px, "map", raising=False)
    assert _same(via_map, WikiIndex.build(dump.path, workers=2, parts=3))  # thread pool


def test_index_keeps_the_first_of_repeated_titles(tmp_path: Path) -> None:
    page = "  <page>\n    <title>{}</title>\n    <ns>0</ns>\n  </page>\n"
    body = "<mediawiki>\n" + "".join(page.format(t) for t in ("B", "A", "B", "C&amp;D")) + \
        "</mediawiki>\n"
    path = tmp_path / "dups.xml"
    path.write_text(body)
    index = WikiIndex.build(path)
    assert [index.title(i) for i in range(len(index))] == [b"A", b"B", b"C&D"]
    assert index.duplicates == 1
    first_b = body.index("  <page>\n    <title>B") + 2
    assert index.find("B")[0] == first_b


def test_repeated_title_across_ranges_keeps_the_first(tmp_path: Path) -> None:
    page = "  <page>\n    <title>{}</title>\n    <ns>0</ns>\n  </page>\n"
    body = "<mediawiki>\n" + "".join(page.format(t) for t in ("C", "B", "A", "B", "A")) + \
        "</mediawiki>\n"
    path = tmp_path / "dups.xml"
    path.write_text(body)
    size = len(body)
    first = {t: body.index(f"<page>\n    <title>{t}<") for t in "ABC"}
    for cut in range(1, size):
        parts = [wiki_index._scan_sorted((str(path), 0, cut)),
                 wiki_index._scan_sorted((str(path), cut, size))]
        index = WikiIndex.from_pages(parts, size)
        assert [index.title(i) for i in range(len(index))] == [b"A", b"B", b"C"], cut
        assert [index.find(t)[0] for t in "ABC"] == [first[t] for t in "ABC"], cut
        assert index.duplicates == 2


def brute_prefix(dump: Dump, prefix: str) -> list[list]:
    hits = sorted((t for t in dump.titles if t.startswith(prefix)), key=lambda t: t.encode())
    return [[t, *dump.pages[t]] for t in hits]


def test_prefix_search_equals_brute_force(dump: Dump) -> None:
    index = WikiIndex.build(dump.path)
    rng = random.Random(11)
    prefixes = [t[:rng.randint(1, len(t))] for t in rng.sample(dump.titles, 200)]
    prefixes += ["List of ", "Li", "", "Zzzz", "\uffff", "Category:", "Talk:"]
    prefixes += [t[:2] for t in dump.titles if not t[0].isascii()][:20]
    for prefix in prefixes:
        assert [list(x) for x in index.prefix(prefix)] == brute_prefix(dump, prefix), prefix
        assert index.prefix(prefix, limit=3) == index.prefix(prefix)[:3]


# ---- saving, reloading, rebuilding --------------------------------------------------------

def test_index_saved_reloaded_and_rebuilt_on_change(dump: Dump, tmp_path: Path) -> None:
    path = tmp_path / "d.xml"
    shutil.copyfile(dump.path, path)
    built, rebuilt = load_or_build(path)
    assert rebuilt and os.path.exists(index_path_for(path))
    loaded, rebuilt = load_or_build(path)
    assert not rebuilt and _same(built, loaded)

    # a new modification time: rebuilt
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _, rebuilt = load_or_build(path)
    assert rebuilt
    assert not load_or_build(path)[1]

    # same size and modification time, different content: the hash tells
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"<title>") + len(b"<title>")
    data[at:at + 1] = b"Q" if data[at:at + 1] != b"Q" else b"R"
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size
    changed, rebuilt = load_or_build(path)
    assert rebuilt and not _same(changed, built)

    # a different dump: rebuilt, and its pages are found
    generate(path, 300, seed=5)
    fresh, rebuilt = load_or_build(path)
    assert rebuilt and len(fresh) == 300
    assert _same(fresh, WikiIndex.build(path))


@pytest.mark.parametrize("damage", ["truncate", "magic", "header", "empty"])
def test_damaged_index_file_is_rebuilt(dump: Dump, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "d.xml"
    shutil.copyfile(dump.path, path)
    built, _ = load_or_build(path)
    saved = Path(index_path_for(path))
    raw = saved.read_bytes()
    if damage == "truncate":
        saved.write_bytes(raw[:-10])
    elif damage == "magic":
        saved.write_bytes(b"X" + raw[1:])
    elif damage == "header":
        saved.write_bytes(raw.replace(b'"format"', b'"formot"', 1))
    else:
        saved.write_bytes(b"")
    assert WikiIndex.load(saved, fingerprint(path)) is None
    again, rebuilt = load_or_build(path)
    assert rebuilt and _same(again, built)


def test_unwritable_directory_still_serves(dump: Dump, tmp_path: Path) -> None:
    index, rebuilt = load_or_build(dump.path, index_path=str(tmp_path / "no" / "such" / "x"))
    assert rebuilt and len(index) == PAGES


# ---- titles in paths ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw,title", [
    ("Z%C3%BCrich", "Zürich"), ("AC/DC", "AC/DC"), ("AC%2FDC", "AC/DC"), ("a+b", "a+b"),
    ("AT%26T", "AT&T"), ("%E6%9D%B1%E4%BA%AC", "東京"), ("plain", "plain"), ("", ""),
])
def test_decode_title(raw: str, title: str) -> None:
    assert decode_title(raw) == title


@pytest.mark.parametrize("raw", ["%ff", "%C3%28", "%zz", "%4", "a%", "%E6%9D", "%00", "%ED%A0%80"])
def test_decode_title_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        decode_title(raw)


# ---- the server ---------------------------------------------------------------------------------

def start(spawn, backend: str, dump_path: Path, *args: str) -> ServerProcess:
    return spawn(*example("wiki", "--xml", str(dump_path), "--workers", "2", *args),
                 backend=backend)


def get(conn: http.client.HTTPConnection, path: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def test_every_page_byte_identical(spawn, backend: str, dump: Dump) -> None:
    srv = start(spawn, backend, dump.path)
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        for title in dump.titles:
            status, headers, body = get(conn, "/wiki/" + quote(title, safe=""))
            start_, end = dump.pages[title]
            assert status == 200, title
            assert headers["content-type"].startswith("application/xml")
            assert body == dump.data[start_:end], title
            assert body.startswith(b"<page>") and body.endswith(b"</page>")
        # '/' left raw, and '_' for ' ' as in Wikipedia's URLs
        slashed = next(t for t in dump.titles if "/" in t)
        assert get(conn, "/wiki/" + quote(slashed, safe="/"))[2] == \
            dump.data[slice(*dump.pages[slashed])]
        spaced = next(t for t in dump.titles if " " in t and "_" not in t)
        assert get(conn, "/wiki/" + quote(spaced.replace(" ", "_"), safe=""))[2] == \
            dump.data[slice(*dump.pages[spaced])]
        # HEAD: the length, no body
        status, headers, body = get(conn, "/wiki/" + quote(spaced, safe=""), "HEAD")
        assert status == 200 and body == b""
        assert int(headers["content-length"]) == dump.pages[spaced][1] - dump.pages[spaced][0]
    finally:
        conn.close()
    srv.finish().assert_clean()


def test_offsets_equal_brute_force(spawn, backend: str, dump: Dump) -> None:
    srv = start(spawn, backend, dump.path)
    rng = random.Random(3)
    prefixes = [t[:rng.randint(3, len(t))] for t in rng.sample(dump.titles, 150) if len(t) >= 3]
    non_ascii = [t for t in dump.titles if not t[:3].isascii()]
    prefixes += [t[:3] for t in rng.sample(non_ascii, 15)]  # non-ASCII in the first 3 chars
    prefixes += [t[:rng.randint(3, len(t))] for t in rng.sample(non_ascii, 15)]
    prefixes += ["List of ", "Lis", "Category:", "Talk:", "Zzzzz", "AT&", 'Ann', "1900 in"]
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        capped = 0
        for prefix in prefixes:
            status, headers, body = get(conn, "/offsets/" + quote(prefix, safe=""))
            assert status == 200, prefix
            assert headers["content-type"] == "application/json"
            expected = brute_prefix(dump, prefix)
            assert json.loads(body) == expected[:MAX_PREFIX_RESULTS], prefix
            assert int(headers["x-total-count"]) == len(expected)
            capped += len(expected) > MAX_PREFIX_RESULTS
        assert capped, "no prefix exercised the cap"
    finally:
        conn.close()
    srv.finish().assert_clean()


def test_bad_requests_get_clean_4xx(spawn, backend: str, dump: Dump) -> None:
    srv = start(spawn, backend, dump.path)
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    cases = [
        ("/wiki/No%20such%20page", 404), ("/wiki/" + quote(dump.titles[0] + "x"), 404),
        ("/wiki/", 400), ("/wiki/%ff", 400), ("/wiki/%C3%28", 400), ("/wiki/%zz", 400),
        ("/wiki/%4", 400), ("/wiki/a%", 400), ("/wiki/%00", 400), ("/wiki/%ED%A0%80", 400),
        ("/offsets/", 400), ("/offsets/ab", 400), ("/offsets/%C3%A9t", 400),  # 2 characters
        ("/offsets/%ff%ff%ff", 400), ("/offsets/%zzz", 400), ("/wiki", 404), ("/nothing", 404),
    ]
    try:
        for path, want in cases:
            status, headers, body = get(conn, path)
            assert status == want, (path, body)
            assert headers["content-type"].startswith("text/plain"), path
        assert get(conn, "/offsets/%C3%A9t%C3%A9")[0] == 200  # 3 characters, 5 bytes
        status, headers, _ = get(conn, "/wiki/" + quote(dump.titles[0]), "POST")
        assert status == 405 and "GET" in headers["allow"]
        # the connection stays usable after every one of them
        assert get(conn, "/wiki/" + quote(dump.titles[0], safe=""))[0] == 200
    finally:
        conn.close()
    # a raw non-ASCII byte in the path is refused by the engine's parser
    with connect(srv.port) as s:
        s.sendall("GET /wiki/Zürich HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert recv_until_eof(s).startswith(b"HTTP/1.1 400 ")
    srv.finish().assert_clean()


def test_xml_ranges(spawn, backend: str, dump: Dump) -> None:
    srv = start(spawn, backend, dump.path)
    size = len(dump.data)
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        status, _, body = get(conn, "/xml")
        assert status == 400 and b"Range" in body
        title = dump.titles[17]
        a, b = dump.pages[title]
        for value, (lo, hi) in ((f"bytes={a}-{b - 1}", (a, b)), ("bytes=0-99", (0, 100)),
                                ("bytes=-100", (size - 100, size)),
                                (f"bytes={size - 5}-", (size - 5, size)),
                                (f"bytes={size - 10}-{size + 50}", (size - 10, size))):
            status, headers, body = get(conn, "/xml", headers={"Range": value})
            assert status == 206, value
            assert headers["content-range"] == f"bytes {lo}-{hi - 1}/{size}"
            assert body == dump.data[lo:hi], value
        for value in (f"bytes={size}-", "bytes=-0", "bytes=abc", "bytes=5-1", "items=0-5",
                      "bytes=0-1,5-6", "bytes=", "0-5"):
            status, headers, body = get(conn, "/xml", headers={"Range": value})
            assert status == 416, value
            assert headers["content-range"] == f"bytes */{size}" and body == b""
        status, headers, body = get(conn, "/xml", "HEAD", {"Range": "bytes=0-9"})
        assert status == 206 and body == b"" and headers["content-length"] == "10"
    finally:
        conn.close()
    srv.finish().assert_clean()


def test_home_page_links_work(spawn, backend: str, dump: Dump) -> None:
    srv = start(spawn, backend, dump.path)
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        status, headers, body = get(conn, "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        links = re.findall(r'href="([^"]+)"', body.decode())
        assert sum(link.startswith("/wiki/") for link in links) >= 10
        assert any(link.startswith("/offsets/") for link in links)
        for link in links:
            assert get(conn, link.replace("&amp;", "&"))[0] == 200, link
    finally:
        conn.close()
    srv.finish().assert_clean()


def test_server_reloads_index_and_rebuilds_on_change(spawn, backend: str, dump: Dump,
                                                     tmp_path: Path) -> None:
    path = tmp_path / "served.xml"
    generate(path, 200, seed=9)
    runs = []
    for step in ("first", "again", "changed"):
        if step == "changed":
            generate(path, 260, seed=10)
        srv = start(spawn, backend, path)
        now = read_dump(path)
        last = now.titles[-1]  # the 260-page dump's last page is not in the 200-page one
        conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
        try:
            status, _, body = get(conn, "/wiki/" + quote(last, safe=""))
        finally:
            conn.close()
        assert status == 200 and body == now.data[slice(*now.pages[last])]
        srv.finish().assert_clean()
        runs.append(srv.stderr_text())
    assert "index: built 200 titles" in runs[0]
    assert "index: loaded 200 titles" in runs[1]
    assert "index: built 260 titles" in runs[2]


def test_generated_dump_option(spawn, backend: str, tmp_path: Path) -> None:
    srv = spawn(*example("wiki", "--pages", "150", "--cache-dir", str(tmp_path), "--workers", "2"),
                backend=backend)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[1] == files[0] + ".pxidx"
    data = read_dump(tmp_path / files[0])
    assert len(data.titles) == 150
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        title = data.titles[42]
        assert get(conn, "/wiki/" + quote(title, safe=""))[2] == data.data[slice(*data.pages[title])]
    finally:
        conn.close()
    srv.finish().assert_clean()
