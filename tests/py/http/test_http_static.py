"""Static files and sendfile through real clients (http.client, raw sockets,
curl) on both backends: byte-exact ranges, conditional requests, directory
index and listings, MIME types, path traversal; the path decoder, the Range
parser and the command-line server."""

from __future__ import annotations

import ctypes
import email.utils
import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import BACKENDS, HOST, TOOLS, ServerProcess, child_env
from http_helpers import BIG_SIZE, Conn, Site, app_server, make_site, request
from pyparallel.http import static
from pyparallel.http.static import RangeNotSatisfiable, decode_path, parse_range

REPO = TOOLS.parent
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed: the curl "
                                "client checks need the curl command line tool")


# ---- units: path decoding, ranges, types, entity tags --------------------------------

@pytest.mark.parametrize("raw,decoded", [
    ("/", b"/"), ("//", b"/"), ("/a", b"/a"), ("/a/", b"/a/"), ("/a//b", b"/a/b"),
    ("/./a", b"/a"), ("/a/.", b"/a/"), ("/a/./", b"/a/"), ("/a/./b", b"/a/b"), ("/.", b"/"),
    ("/%41", b"/A"), ("/%2e", b"/"), ("/%2E/a", b"/a"), ("/a%2fb", b"/a/b"),
    ("/a%2F%2Fb", b"/a/b"), ("/a%2f", b"/a/"), ("/...", b"/..."), ("/..a", b"/..a"),
    ("/a..", b"/a.."), ("/%25", b"/%"), ("/%2541", b"/%41"), ("/caf%C3%A9", b"/caf\xc3\xa9"),
    ("/caf\xc3\xa9", b"/caf\xc3\xa9"), ("/sp%20ace", b"/sp ace"), ("/a/b/c/", b"/a/b/c/"),
])
def test_decode_path_accepts(raw: str, decoded: bytes) -> None:
    assert decode_path(raw) == decoded
    assert decode_path(raw.encode("latin-1")) == decoded


@pytest.mark.parametrize("raw", [
    "", "a", "%2f", "/..", "/../a", "/a/..", "/a/../b", "/%2e%2e", "/%2E%2e/", "/.%2e",
    "/..%2f", "/a%2f..%2fb", "/%", "/%4", "/%zz", "/%g0", "/%0g", "/a%", "/%+1", "/% 1",
    "/%00", "/a\x00", "/\\", "/a%5cb", "/a%5Cb", "/..\\", "\\a",
])
def test_decode_path_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        decode_path(raw)


def _c_path_decoder(tmp: Path):
    """px_http_path_decode from the engine's sources, built as a small library."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build the C path decoder for comparison")
    lib = tmp / "libpathdecode.so"
    res = subprocess.run([cc, "-std=c11", "-O1", "-D_GNU_SOURCE", "-shared", "-fPIC",
                          "-I", str(REPO / "include"), "-o", str(lib),
                          str(REPO / "src" / "http" / "path.c")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    dll = ctypes.CDLL(str(lib))
    fn = dll.px_http_path_decode
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    fn.restype = ctypes.c_int

    def decode(raw: bytes) -> bytes | None:
        out = ctypes.create_string_buffer(len(raw) + 2)
        rc = fn(raw, len(raw), out, len(out))
        assert rc != -36, "ENAMETOOLONG with an output as long as the input"
        return None if rc < 0 else out.raw[:rc]
    return decode


def test_decode_path_equals_the_c_decoder(tmp_path: Path) -> None:
    """The Python decoder accepts, rejects and normalises exactly like the C one."""
    c_decode = _c_path_decoder(tmp_path)
    tokens = [b"/", b"/", b"/", b".", b"..", b"...", b"a", b"bc", b"%2e", b"%2E", b"%2f", b"%2F",
              b"%5c", b"%5C", b"%00", b"%25", b"%", b"%4", b"%g1", b"%41", b"%c3%a9", b"\\",
              b"\x00", b"\xe9", b"%20", b"?", b"%2", b"e", b"f", b"0"]
    rng = random.Random(1234)
    cases = [bytes([b]) for b in range(256)] + [b"/" + bytes([b]) for b in range(256)]
    cases += [b"/%" + bytes([a, b]) for a in b"0123456789abcdefABCDEFgG/%" for b in b"0123456789abcdefABCDEFgG/%"]
    for _ in range(30000):
        parts = [rng.choice(tokens) for _ in range(rng.randrange(1, 12))]
        raw = (b"/" if rng.random() < 0.9 else b"") + b"".join(parts)
        cases.append(raw)
    for raw in cases:
        want = c_decode(raw)
        try:
            got = decode_path(raw)
        except ValueError:
            got = None
        assert got == want, raw


SIZE = 1000


@pytest.mark.parametrize("header,expected", [
    ("bytes=0-0", (0, 1)), ("bytes=0-499", (0, 500)), ("bytes=500-", (500, SIZE)),
    ("bytes=-1", (SIZE - 1, SIZE)), ("bytes=-500", (500, SIZE)), ("bytes=-5000", (0, SIZE)),
    ("bytes=990-5000", (990, SIZE)), ("bytes=999-999", (999, SIZE)), ("BYTES=1-2", (1, 3)),
    ("bytes= 1-2 ", (1, 3)), ("bytes=1-2,", (1, 3)), ("bytes=,1-2", (1, 3)),
    ("bytes=0-" + "9" * 40, (0, SIZE)), ("bytes=-" + "9" * 40, (0, SIZE)),
    # ignored: the whole file
    ("bytes=0-1,5-6", None), ("bytes=0-1, 0-1", None), ("bytes=5-2", None), ("items=0-1", None),
    ("bytes 0-1", None), ("bytes=a-b", None), ("bytes=-", None), ("bytes=", None),
    ("bytes=1-2-3", None), ("bytes=0x1-2", None), ("bytes=\u00b2-3", None), ("bytes=+1-2", None),
    ("bytes=1 -2", None), ("", None),
])
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1000", "bytes=5000-6000", "bytes=-0",
                                    "bytes=" + "9" * 40 + "-"])
def test_parse_range_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE)


def test_parse_range_empty_file() -> None:
    assert parse_range("bytes=-5", 0) is None
    for header in ("bytes=0-", "bytes=0-0", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 0)


@pytest.mark.parametrize("name,ctype", [
    ("a.txt", "text/plain; charset=utf-8"), ("a.html", "text/html; charset=utf-8"),
    ("a.css", "text/css; charset=utf-8"), ("a.json", "application/json"),
    ("a.png", "image/png"), ("a.tar.gz", "application/gzip"), ("a.gz", "application/gzip"),
    ("noext", "application/octet-stream"), ("a.unknownext", "application/octet-stream"),
    ("data:x.txt", "text/plain; charset=utf-8"), ("/dir.d/a.TXT", "text/plain; charset=utf-8"),
])
def test_guess_type(name: str, ctype: str) -> None:
    assert static.guess_type(name) == ctype


def test_etag_comparisons() -> None:
    strong, weak = '"a-1"', 'W/"a-1"'
    m = static._etag_matches
    assert m('"a-1"', strong, strong=True) and m('"x", "a-1"', strong, strong=True)
    assert not m('W/"a-1"', strong, strong=True) and m('W/"a-1"', strong, strong=False)
    assert m('"a-1"', weak, strong=False) and not m('"a-1"', weak, strong=True)
    assert m("*", strong, strong=True) and m(" * ", weak, strong=False)
    assert not m('"a-2"', strong, strong=False) and not m("a-1", strong, strong=False)
    assert m('"x,y", "a-1"', strong, strong=False)


# ---- the server ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module", params=BACKENDS)
def app(request: pytest.FixtureRequest, site: Site) -> Iterator[ServerProcess]:
    """The application with default limits, /static/ on the site and /file on
    big.bin, shared by this module's tests on one backend."""
    with app_server(str(request.param), "--root", str(site.root),
                    "--file", str(site.root / "big.bin")) as proc:
        yield proc


def get(port: int, target: str, headers: dict[str, str] | None = None, method: str = "GET"
        ) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(HOST, port, timeout=20)
    conn.request(method, target, headers=headers or {})
    r = conn.getresponse()
    r.body = r.read()  # type: ignore[attr-defined]
    conn.close()
    return r


def raw_get(port: int, target: str, headers: dict[str, str] | None = None, method: str = "GET"):
    with Conn(port) as c:
        c.send(request(method, target, headers))
        return c.read_reply(head=method == "HEAD")


@pytest.mark.parametrize("base", ["/static/big.bin", "/file"])
def test_random_ranges_are_byte_exact(app: ServerProcess, site: Site, base: str) -> None:
    rng = random.Random(base)
    conn = http.client.HTTPConnection(HOST, app.port, timeout=20)
    try:
        for _ in range(150):
            a = rng.randrange(BIG_SIZE)
            b = min(BIG_SIZE - 1, a + rng.choice([0, 1, 100, 4095, 4096, 65537, 1 << 20, BIG_SIZE]))
            conn.request("GET", base, headers={"Range": f"bytes={a}-{b}"})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 206
            assert r.getheader("Content-Range") == f"bytes {a}-{b}/{BIG_SIZE}"
            assert int(r.getheader("Content-Length")) == b - a + 1
            assert body == site.big[a:b + 1]
        conn.request("GET", base)
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Accept-Ranges") == "bytes"
        assert r.read() == site.big
    finally:
        conn.close()


def test_ranges_downloaded_in_parallel(app: ServerProcess, site: Site) -> None:
    """Eight clients fetching pieces at once: each gets its own bytes."""
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            conn = http.client.HTTPConnection(HOST, app.port, timeout=30)
            for _ in range(25):
                a = rng.randrange(BIG_SIZE)
                b = min(BIG_SIZE - 1, a + rng.randrange(1 << 20))
                conn.request("GET", "/static/big.bin", headers={"Range": f"bytes={a}-{b}"})
                r = conn.getresponse()
                if r.status != 206 or r.read() != site.big[a:b + 1]:
                    errors.append(f"range {a}-{b}: status {r.status}")
            conn.close()
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "downloads still running after 60 s"
    assert errors == []


@pytest.mark.parametrize("spec,start,stop", [
    ("-1", BIG_SIZE - 1, BIG_SIZE), ("-1000", BIG_SIZE - 1000, BIG_SIZE),
    (f"-{BIG_SIZE}", 0, BIG_SIZE), (f"-{BIG_SIZE + 1000}", 0, BIG_SIZE),
    ("0-", 0, BIG_SIZE), (f"{BIG_SIZE - 10}-", BIG_SIZE - 10, BIG_SIZE),
    (f"{BIG_SIZE - 10}-{BIG_SIZE * 3}", BIG_SIZE - 10, BIG_SIZE), ("0-0", 0, 1),
])
def test_suffix_and_open_ranges(app: ServerProcess, site: Site, spec: str, start: int,
                                stop: int) -> None:
    for base in ("/static/big.bin", "/file"):
        r = get(app.port, base, {"Range": "bytes=" + spec})
        assert r.status == 206
        assert r.getheader("Content-Range") == f"bytes {start}-{stop - 1}/{BIG_SIZE}"
        assert r.body == site.big[start:stop]


@pytest.mark.parametrize("spec", [f"{BIG_SIZE}-", f"{BIG_SIZE}-{BIG_SIZE + 10}", "-0",
                                  f"{BIG_SIZE * 2}-{BIG_SIZE * 3}"])
def test_unsatisfiable_range_is_416(app: ServerProcess, spec: str) -> None:
    for base in ("/static/big.bin", "/file"):
        with Conn(app.port) as c:
            c.send(request("GET", base, {"Range": "bytes=" + spec}) + request("GET", "/id/next"))
            r = c.read_reply()
            assert r.status == 416
            assert r.headers["content-range"] == f"bytes */{BIG_SIZE}"
            assert r.headers["content-length"] == "0" and r.body == b""
            assert c.read_reply().body == b"req next"  # the connection goes on


@pytest.mark.parametrize("value", ["bytes=0-1,5-6", "bytes=0-0, -1", "bytes=5-2", "items=0-5",
                                   "bytes=abc", "bytes=\xb2-3", "bytes=0-1, 0-1"])
def test_several_or_invalid_ranges_serve_the_whole_file(app: ServerProcess, site: Site,
                                                        value: str) -> None:
    """Several ranges are not produced as multipart: the whole file, 200
    (documented); an invalid Range header is ignored."""
    r = raw_get(app.port, "/static/big.bin", {"Range": value})
    assert r.status == 200 and "content-range" not in r.headers
    assert r.body == site.big


@pytest.mark.parametrize("target", ["/static/big.bin", "/file", f"/part/1/{BIG_SIZE - 1}"])
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_whole_body_before_the_close(app: ServerProcess, site: Site, target: str,
                                     version: str) -> None:
    """A response that closes the connection (Connection: close, HTTP/1.0)
    still delivers the whole file to a slow reader before the end of stream."""
    with Conn(app.port, timeout=20, rcvbuf=16384) as c:
        c.send(request("GET", target, {"Connection": "close"} if version == "HTTP/1.1" else {},
                       version=version, host=version == "HTTP/1.1"))
        r = c.read_reply()
        expect = site.big[1:BIG_SIZE - 1] if target.startswith("/part") else site.big
        assert r.status in (200, 206) and r.body == expect
        assert r.headers["connection"] == "close"
        assert c.closed_cleanly() is None


def test_head_with_range(app: ServerProcess) -> None:
    with Conn(app.port) as c:
        c.send(request("HEAD", "/static/big.bin", {"Range": "bytes=100-199"}) +
               request("GET", "/id/next"))
        r = c.read_reply(head=True)
        assert r.status == 206 and r.headers["content-length"] == "100"
        assert r.headers["content-range"] == f"bytes 100-199/{BIG_SIZE}"
        assert c.read_reply().body == b"req next"


def test_validators(app: ServerProcess, site: Site) -> None:
    st = os.stat(site.root / "big.bin")
    r = get(app.port, "/static/big.bin", method="HEAD")
    etag = r.getheader("ETag")
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', etag)
    assert etag == f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
    assert r.getheader("Last-Modified") == email.utils.formatdate(int(st.st_mtime), usegmt=True)
    assert get(app.port, "/file", method="HEAD").getheader("ETag") == etag


@pytest.mark.parametrize("base", ["/static/hello.txt", "/file"])
def test_conditional_get(app: ServerProcess, base: str) -> None:
    first = get(app.port, base)
    etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
    mtime = email.utils.parsedate_to_datetime(modified).timestamp()
    earlier = email.utils.formatdate(mtime - 3600, usegmt=True)
    later = email.utils.formatdate(mtime + 3600, usegmt=True)
    cases = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'"nope", {etag}'}, 304),
        ({"If-None-Match": "W/" + etag}, 304),            # weak comparison
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"nope"'}, 200),
        ({"If-Modified-Since": modified}, 304),
        ({"If-Modified-Since": later}, 304),
        ({"If-Modified-Since": earlier}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
        # If-None-Match takes precedence over If-Modified-Since
        ({"If-None-Match": '"nope"', "If-Modified-Since": later}, 200),
        ({"If-None-Match": etag, "If-Modified-Since": earlier}, 304),
        ({"If-Match": etag}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-Match": "W/" + etag}, 412),                 # strong comparison
        ({"If-Unmodified-Since": earlier}, 412),
        ({"If-Unmodified-Since": later}, 200),
    ]
    for headers, status in cases:
        with Conn(app.port) as c:
            c.send(request("GET", base, headers) + request("HEAD", base, headers))
            for head in (False, True):
                r = c.read_reply(head=head)
                assert r.status == status, (headers, head)
                if status == 304:
                    assert r.body == b"" and "content-length" not in r.headers
                    assert r.headers["etag"] == etag
                    assert r.headers["last-modified"] == modified
                elif status == 200 and not head:
                    assert r.body == first.body


def test_if_range(app: ServerProcess, site: Site) -> None:
    first = get(app.port, "/static/big.bin", method="HEAD")
    etag, modified = first.getheader("ETag"), first.getheader("Last-Modified")
    mtime = email.utils.parsedate_to_datetime(modified).timestamp()
    for if_range, ranged in [(etag, True), (modified, True), ('"other"', False),
                             ("W/" + etag, False), (email.utils.formatdate(mtime - 60, usegmt=True), False),
                             ("garbage", False)]:
        r = get(app.port, "/static/big.bin", {"Range": "bytes=10-19", "If-Range": if_range})
        if ranged:
            assert r.status == 206 and r.body == site.big[10:20], if_range
        else:
            assert r.status == 200 and r.body == site.big, if_range


def test_changed_file_gets_a_new_etag(app: ServerProcess, site: Site) -> None:
    path = site.root / "changing.txt"
    path.write_bytes(b"version one\n")
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    r1 = get(app.port, "/static/changing.txt")
    path.write_bytes(b"version two\n")  # same size: only the time tells
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_001))
    r2 = get(app.port, "/static/changing.txt", {"If-None-Match": r1.getheader("ETag")})
    assert r2.status == 200 and r2.body == b"version two\n"
    assert r2.getheader("ETag") != r1.getheader("ETag")
    r3 = get(app.port, "/static/changing.txt", {"Range": "bytes=0-6",
                                                 "If-Range": r1.getheader("ETag")})
    assert r3.status == 200 and r3.body == b"version two\n"


@pytest.mark.parametrize("target,ctype", [
    ("/static/hello.txt", "text/plain; charset=utf-8"),
    ("/static/page.html", "text/html; charset=utf-8"),
    ("/static/data.json", "application/json"),
    ("/static/archive.tar.gz", "application/gzip"),
    ("/static/noext", "application/octet-stream"),
    ("/static/big.bin", "application/octet-stream"),
    ("/static/link-in", "application/octet-stream"),  # the type of the name asked for
    ("/file", "application/octet-stream"),
])
def test_content_types(app: ServerProcess, site: Site, target: str, ctype: str) -> None:
    r = raw_get(app.port, target)
    assert r.status == 200
    assert r.headers["content-type"] == ctype
    assert "content-encoding" not in r.headers
    name = "hello.txt" if target.endswith("link-in") else target.rsplit("/", 1)[1]
    if target != "/file":
        assert r.body == (site.root / name).read_bytes()


def test_empty_file(app: ServerProcess) -> None:
    r = raw_get(app.port, "/static/empty.txt")
    assert r.status == 200 and r.body == b"" and r.headers["content-length"] == "0"
    r = raw_get(app.port, "/static/empty.txt", {"Range": "bytes=0-"})
    assert r.status == 416 and r.headers["content-range"] == "bytes */0"
    r = raw_get(app.port, "/static/empty.txt", {"Range": "bytes=-5"})
    assert r.status == 200 and r.body == b""


def test_directory_redirects_to_slash(app: ServerProcess) -> None:
    for target, location in [("/static/sub", "/static/sub/"),
                             ("/static/sub/deeper", "/static/sub/deeper/"),
                             ("/static/sub?x=1&y", "/static/sub/?x=1&y"),
                             ("/static/withindex", "/static/withindex/")]:
        r = raw_get(app.port, target)
        assert r.status == 301, target
        assert r.headers["location"] == location
        assert r.headers["content-length"] == "0"


def test_directory_index(app: ServerProcess, site: Site) -> None:
    r = raw_get(app.port, "/static/withindex/")
    assert r.status == 200 and r.body == b"<h1>index</h1>\n"
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "etag" in r.headers


def test_directory_listing(app: ServerProcess, site: Site) -> None:
    r = raw_get(app.port, "/static/")
    assert r.status == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.body.decode("utf-8")
    assert '<a href="hello.txt">hello.txt</a>' in page
    assert '<a href="sub/">sub/</a>' in page
    assert '<a href="sp%20ace%20%26%20%3Cb%3E.txt">sp ace &amp; &lt;b&gt;.txt</a>' in page
    assert '<a href="caf%C3%A9.txt">caf\u00e9.txt</a>' in page
    assert '<a href="%2541.txt">%41.txt</a>' in page
    assert "<b>" not in page and 'href="../"' not in page
    sub = raw_get(app.port, "/static/sub/").body.decode()
    assert 'href="../"' in sub and '<a href="a.txt">a.txt</a>' in sub
    assert '<a href="deeper/">deeper/</a>' in sub
    # every link of the listing works
    for href in re.findall(r'href="([^"]+)"', page):
        if href.endswith("/") or href in ("fifo", "unreadable.txt", "dangling", "link-out"):
            continue
        got = raw_get(app.port, "/static/" + href)
        assert got.status == 200, href
    assert raw_get(app.port, "/static/%2541.txt").body == b"percent name\n"
    assert raw_get(app.port, "/static/%41.txt").status == 404  # that is A.txt


@pytest.mark.parametrize("target,status", [
    ("/static/../etc/passwd", 400),
    ("/static/%2e%2e/etc/passwd", 400),
    ("/static/%2E%2E/%2E%2E/etc/passwd", 400),
    ("/static/..%2fetc%2fpasswd", 400),
    ("/static/sub/../../outside/secret.txt", 400),
    ("/static/sub/%2e%2e/%2e%2e/outside/secret.txt", 400),
    ("/static/.%2e/outside/secret.txt", 400),
    ("/static/..\\outside\\secret.txt", 400),
    ("/static/%5c..%5coutside%5csecret.txt", 400),
    ("/static/hello.txt%00.png", 400),
    ("/static/%00", 400),
    ("/static/%zz", 400),
    ("/static/%4", 400),
    ("http://test/static/../outside/secret.txt", 400),
    ("/static/link-out", 404),
    ("/static/dir-out/secret.txt", 404),
    ("/static/dir-out/", 404),
    ("/static/dir-out", 404),
    ("/static/sub/rel-out", 404),
    ("/static/dangling", 404),
    ("/static/fifo", 404),
    ("/static/hello.txt/", 404),
    ("/static/missing.txt", 404),
    ("/../etc/passwd", 404),   # outside every route
    ("/%2e%2e/", 404),
    ("/..%2f", 404),
])
def test_path_traversal_refused(app: ServerProcess, site: Site, target: str, status: int) -> None:
    start = time.monotonic()
    r = raw_get(app.port, target)
    assert r.status == status
    assert site.secret not in r.body and b"root:" not in r.body
    assert time.monotonic() - start < 5  # the FIFO did not block a worker


def test_traversal_through_curl(app: ServerProcess, site: Site) -> None:
    if CURL is None:
        pytest.skip("curl is not installed: this check sends unnormalised paths with curl --path-as-is")
    for target in ["/static/../outside/secret.txt", "/static/%2e%2e/outside/secret.txt",
                   "/static/link-out", "/static/dir-out/secret.txt"]:
        res = run_curl("--path-as-is", "-o", "-", "-w", "\\n%{http_code}",
                       f"http://{HOST}:{app.port}{target}")
        body, code = res.stdout.rsplit(b"\n", 1)
        assert code in (b"400", b"404") and site.secret not in body, target


def test_methods_other_than_get_and_head(app: ServerProcess) -> None:
    r = raw_get(app.port, "/static/hello.txt", {"Content-Length": "0"}, method="POST")
    assert r.status == 405 and "GET" in r.headers["allow"]


def test_unreadable_file(app: ServerProcess) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: every file is readable, so 403 cannot be provoked")
    assert raw_get(app.port, "/static/unreadable.txt").status == 403


# ---- sendfile with an explicit range -------------------------------------------------------

@pytest.mark.parametrize("start,stop", [(10, 1010), (0, 1), (0, BIG_SIZE), (BIG_SIZE - 1, BIG_SIZE),
                                        (4096, 4096 * 300 + 17)])
def test_sendfile_explicit_range(app: ServerProcess, site: Site, start: int, stop: int) -> None:
    # the request's own Range header does not apply to an explicit range
    r = raw_get(app.port, f"/part/{start}/{stop}", {"Range": "bytes=0-0"})
    assert r.status == 206
    assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/{BIG_SIZE}"
    assert r.body == site.big[start:stop]


def test_sendfile_explicit_range_to_the_end(app: ServerProcess, site: Site) -> None:
    r = raw_get(app.port, f"/part/{BIG_SIZE - 5000}")
    assert r.status == 206 and r.body == site.big[-5000:]
    assert r.headers["content-range"] == f"bytes {BIG_SIZE - 5000}-{BIG_SIZE - 1}/{BIG_SIZE}"


@pytest.mark.parametrize("target", ["/part/0/0", "/part/10/5", f"/part/0/{BIG_SIZE + 1}",
                                    f"/part/{BIG_SIZE}/{BIG_SIZE + 1}", f"/part/{BIG_SIZE}"])
def test_sendfile_explicit_range_unsatisfiable(app: ServerProcess, target: str) -> None:
    r = raw_get(app.port, target)
    assert r.status == 416 and r.headers["content-range"] == f"bytes */{BIG_SIZE}"


# ---- curl ---------------------------------------------------------------------------------

def run_curl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert CURL is not None
    # curl is a client, not the code under test: no proxy, and none of the
    # sanitizer run's preloaded runtime (an uninstrumented curl hangs under it).
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    res = subprocess.run([CURL, "-q", "-s", "-S", "--max-time", "30", "--noproxy", "*", *args],
                         input=data, capture_output=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res


@needs_curl
def test_curl_ranges_and_resume(app: ServerProcess, site: Site, tmp_path: Path) -> None:
    url = f"http://{HOST}:{app.port}/static/big.bin"
    assert run_curl("-r", "1000-2999", url).stdout == site.big[1000:3000]
    assert run_curl("-r", "-777", url).stdout == site.big[-777:]
    out = tmp_path / "partial.bin"
    out.write_bytes(site.big[:123457])
    run_curl("-C", "-", "-o", str(out), url)  # resume a partial download
    assert out.read_bytes() == site.big
    assert run_curl("--http1.0", url).stdout == site.big
    res = run_curl("-r", f"{BIG_SIZE}-", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert res.stdout == b"416"


@needs_curl
def test_curl_head_and_conditional(app: ServerProcess, site: Site, tmp_path: Path) -> None:
    url = f"http://{HOST}:{app.port}/static/hello.txt"
    head = run_curl("-I", url).stdout.decode()
    assert head.startswith("HTTP/1.1 200") and "Content-Length: 13\r\n" in head
    ref = tmp_path / "ref"
    ref.write_bytes(b"")
    st = os.stat(site.root / "hello.txt")
    os.utime(ref, (st.st_mtime + 10, st.st_mtime + 10))
    res = run_curl("-z", str(ref), "-o", "/dev/null", "-w", "%{http_code}", url)
    assert res.stdout == b"304"
    os.utime(ref, (st.st_mtime - 100, st.st_mtime - 100))
    assert run_curl("-z", str(ref), url).stdout == b"hello, world\n"


@needs_curl
def test_curl_uploads(app: ServerProcess, tmp_path: Path) -> None:
    body = os.urandom(60_000)
    src = tmp_path / "upload.bin"
    src.write_bytes(body)
    url = f"http://{HOST}:{app.port}/echo"
    res = run_curl("-v", "-H", "Expect: 100-continue", "--data-binary", f"@{src}", url)
    assert res.stdout == body
    assert b"HTTP/1.1 100 Continue" in res.stderr
    res = run_curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@-", url, data=body)
    assert res.stdout == body
    # keep-alive: several URLs on one connection
    res = run_curl("-v", f"http://{HOST}:{app.port}/id/1", f"http://{HOST}:{app.port}/id/2")
    assert res.stdout == b"req 1req 2"
    assert b"Re-using existing connection" in res.stderr


# ---- python -m pyparallel.http.server ------------------------------------------------------

def test_command_line_server(site: Site, backend: str) -> None:
    argv = [sys.executable, "-m", "pyparallel.http.server", str(site.root), "--port", "0",
            "--host", HOST, "--workers", "2"]
    proc = ServerProcess(argv, child_env(backend), ready=False)
    try:
        line = proc.wait_line(r"^serving .* on http://", 20)
        m = re.fullmatch(r"serving (.+) on http://127\.0\.0\.1:(\d+)/", line)
        assert m is not None, line
        assert m.group(1) == os.path.realpath(site.root)
        port = int(m.group(2))
        r = get(port, "/big.bin", {"Range": "bytes=5-9"})
        assert r.status == 206 and r.body == site.big[5:10]
        assert get(port, "/hello.txt").body == b"hello, world\n"
        assert b"hello.txt" in get(port, "/").body
        assert get(port, "/sub").status == 301
        assert get(port, "/withindex/").body == b"<h1>index</h1>\n"
        assert get(port, "/link-out").status == 404
        assert raw_get(port, "/%2e%2e/outside/secret.txt").status == 400
        assert get(port, "/hello.txt", method="POST").status == 405
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(20) == 0
        err = proc.stderr_text()
        assert "Traceback" not in err, err
    finally:
        proc.close()


def test_command_line_server_refuses_a_missing_directory(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pyparallel.http.server", str(tmp_path / "nope"),
                          "--port", "0"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "not a directory" in res.stderr
