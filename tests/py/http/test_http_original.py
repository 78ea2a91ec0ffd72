"""The original PyParallel's HttpServer API (issue 12 item 6) through
http.client on both backends: bare @route with the rest of the path, the
response helpers, request.transport, request.range (one range, several as
multipart/byteranges, unsatisfiable, set by the handler), and per_connection
state: kept per connection, never shared, dropped when the connection closes.
The mail's Wikipedia server itself is run end to end in test_wiki_original.py."""

from __future__ import annotations

import email.parser
import http.client
import json
import time
from pathlib import Path

import pytest

from helpers import HOST

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def app(spawn, backend: str, tmp_path: Path):
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return spawn("original_app.py", "--file", str(path), backend=backend)


def get(conn: http.client.HTTPConnection, path: str,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def client(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(HOST, port, timeout=10)


@pytest.mark.parametrize("which", ["shared", "per"])
def test_bare_route_passes_the_rest_of_the_path(app, which: str) -> None:
    conn = client(app.ports[which])
    try:
        assert json.loads(get(conn, "/args/a/b%20c?x=1&y=2")[2]) == \
            {"args": ["a/b c"], "kwds": {"x": "1", "y": "2"}}
        assert json.loads(get(conn, "/args")[2]) == {"args": [], "kwds": {}}
        assert get(conn, "/need/part%2Fx")[2] == b"part/x"
        # a handler that needs the rest: /need alone and /need/ are not its
        assert get(conn, "/need")[0] == 404
        assert get(conn, "/need/")[0] == 404
        # one that takes none: nothing below it
        assert get(conn, "/name/x")[0] == 404
        assert get(conn, "/name")[0] == 200
    finally:
        conn.close()
    app.finish().assert_clean()


def test_response_helpers(app) -> None:
    conn = client(app.ports["shared"])
    try:
        for path, ctype, body in (
                ("/text", "text/plain; charset=utf-8", b"Hello, World!"),
                ("/text2", "text/plain; charset=utf-8", b"two"),
                ("/json", "application/json", b'{"message": "Hello, World!"}'),
                ("/json2", "application/json", b'["a", 1, null]'),
                ("/html", "text/html; charset=utf-8", b"<p>hi</p>")):
            status, headers, got = get(conn, path)
            assert (status, headers["content-type"], got) == (200, ctype, body), path
        assert get(conn, "/text2")[1]["x-extra"] == "1"  # set on request.response
    finally:
        conn.close()
    app.finish().assert_clean()


@pytest.mark.parametrize("which", ["shared", "per"])
def test_request_transport(app, which: str) -> None:
    port = app.ports[which]
    a, b = client(port), client(port)
    try:
        first = json.loads(get(a, "/transport")[2])
        again = json.loads(get(a, "/transport")[2])
        other = json.loads(get(b, "/transport")[2])
        assert first["parent_port"] == port and first["same"]
        assert first["fd"] == again["fd"] != other["fd"]
        assert again["elapsed"] >= first["elapsed"] >= 0
        assert first["own_app"] is (which == "per")
        assert first["command"] == "GET"
        assert first["data"].startswith("GET /transport HTTP/1.1\r\n")
        assert first["data"].endswith("\r\n\r\n")
    finally:
        a.close()
        b.close()
    app.finish().assert_clean()


def test_per_connection_state_is_per_connection(app) -> None:
    a, b = client(app.ports["per"]), client(app.ports["per"])
    try:
        assert get(a, "/set_name/alice")[2] == b"ok"
        assert json.loads(get(a, "/name")[2]) == {"name": "alice"}
        assert json.loads(get(b, "/name")[2]) == {"name": None}
        assert get(b, "/set_name/bob")[2] == b"ok"
        assert json.loads(get(a, "/name")[2]) == {"name": "alice"}
        assert json.loads(get(b, "/name")[2]) == {"name": "bob"}
    finally:
        a.close()
        b.close()
    c = client(app.ports["per"])  # a new connection starts afresh
    try:
        assert json.loads(get(c, "/name")[2]) == {"name": None}
    finally:
        c.close()
    # the default: one instance that every connection sees
    s1, s2 = client(app.ports["shared"]), client(app.ports["shared"])
    try:
        get(s1, "/set_name/carol")
        assert json.loads(get(s2, "/name")[2]) == {"name": "carol"}
    finally:
        s1.close()
        s2.close()
    app.finish().assert_clean()


def test_per_connection_instances_are_freed_at_close(app) -> None:
    port = app.ports["per"]
    watcher = client(port)
    try:
        # the watcher's instance, and the one made at registration
        base = json.loads(get(watcher, "/alive")[2])["alive"]
        conns = [client(port) for _ in range(20)]
        for c in conns:
            assert get(c, "/set_name/x")[0] == 200
        assert json.loads(get(watcher, "/alive")[2])["alive"] == base + 20
        for c in conns:
            c.close()
        deadline = time.monotonic() + 20
        while True:
            count = json.loads(get(watcher, "/alive")[2])["alive"]
            if count == base or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert count == base, "per-connection instances outlived their connections"
    finally:
        watcher.close()
    app.finish().assert_clean()


def parts(headers: dict[str, str], body: bytes) -> list[tuple[str, str, bytes]]:
    msg = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart()
    return [(p["Content-Type"], p["Content-Range"], p.get_payload(decode=True))
            for p in msg.get_payload()]


def test_ranges(app) -> None:
    size = len(DATA)
    conn = client(app.ports["shared"])
    try:
        status, headers, body = get(conn, "/file", {"Range": "bytes=10-19"})
        assert (status, headers["content-range"], body) == (206, f"bytes 10-19/{size}", DATA[10:20])
        status, headers, body = get(conn, "/file", {"Range": "bytes=-5"})
        assert (status, body) == (206, DATA[-5:])
        # several ranges: multipart/byteranges, each part with its Content-Range
        status, headers, body = get(conn, "/file", {"Range": "bytes=0-3, 100-109, -4"})
        assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
        assert parts(headers, body) == [
            ("application/octet-stream", f"bytes 0-3/{size}", DATA[0:4]),
            ("application/octet-stream", f"bytes 100-109/{size}", DATA[100:110]),
            ("application/octet-stream", f"bytes {size - 4}-{size - 1}/{size}", DATA[-4:])]
        # overlapping ones are merged into one
        status, headers, body = get(conn, "/file", {"Range": "bytes=0-9,5-14"})
        assert (status, headers["content-range"], body) == (206, f"bytes 0-14/{size}", DATA[:15])
        # unsatisfiable: 416; one satisfiable among others: served
        status, headers, body = get(conn, "/file", {"Range": f"bytes={size}-,{size + 5}-"})
        assert (status, headers["content-range"]) == (416, f"bytes */{size}")
        status, headers, body = get(conn, "/file", {"Range": f"bytes={size}-,0-1"})
        assert (status, body) == (206, DATA[:2])
        # invalid: ignored, the whole file
        for value in ("bytes=abc", "items=0-1", "bytes=5-1", "0-5"):
            status, headers, body = get(conn, "/file", {"Range": value})
            assert (status, body) == (200, DATA), value
        # If-Range that does not hold: the whole file
        status, _, body = get(conn, "/file", {"Range": "bytes=0-1,4-5", "If-Range": '"nope"'})
        assert (status, body) == (200, DATA)
        # request.range set by the handler: the original's RangedRequest("a-b")
        status, headers, body = get(conn, "/setrange/7-16")
        assert (status, headers["content-range"], body) == (206, f"bytes 7-16/{size}", DATA[7:17])
        assert headers["content-type"] == "text/x-part"
        status, headers, _ = get(conn, f"/setrange/{size + 1}-{size + 2}")
        assert (status, headers["content-range"]) == (416, f"bytes */{size}")
    finally:
        conn.close()
    app.finish().assert_clean()


def test_several_ranges_honour_preconditions(app) -> None:
    """Several ranges go through the preconditions of a single one (RFC 9110
    13.2.2: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since,
    then If-Range) and carry the same validators."""
    several = {"Range": "bytes=0-1,4-5"}
    conn = client(app.ports["shared"])
    try:
        status, headers, _ = get(conn, "/file")
        etag, modified = headers["etag"], headers["last-modified"]
        status, headers, _ = get(conn, "/file", several)
        assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
        assert (headers["etag"], headers["last-modified"]) == (etag, modified)
        status, headers, body = get(conn, "/file", {**several, "If-None-Match": etag})
        assert (status, body, headers["etag"]) == (304, b"", etag)
        status, _, _ = get(conn, "/file", {**several, "If-Modified-Since": modified})
        assert status == 304
        status, _, _ = get(conn, "/file", {**several, "If-Match": '"other"'})
        assert status == 412
        status, _, _ = get(conn, "/file", {**several,
                                           "If-Unmodified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
        assert status == 412
        # If-Match that holds, If-None-Match that does not: the parts
        status, headers, _ = get(conn, "/file", {**several, "If-Match": etag,
                                                 "If-None-Match": '"other"'})
        assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
        # If-Match fails before If-None-Match is looked at
        status, _, _ = get(conn, "/file", {**several, "If-Match": '"other"',
                                           "If-None-Match": etag})
        assert status == 412
    finally:
        conn.close()
    app.finish().assert_clean()


def test_handler_range_over_the_limits_is_the_whole_file(app) -> None:
    """request.range set by the handler with more ranges than MAX_RANGES is
    ignored for the whole file, the request's own Range header not looked at
    (as the documentation of sendfile says)."""
    spec = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(70))
    conn = client(app.ports["shared"])
    try:
        status, headers, body = get(conn, f"/setrange/{spec}", {"Range": "bytes=0-1"})
        assert (status, body) == (200, DATA)
        assert "content-range" not in headers and headers["etag"]
    finally:
        conn.close()
    app.finish().assert_clean()


def test_per_connection_init_runs_with_the_worker_handed_off(spawn, backend: str,
                                                             tmp_path: Path) -> None:
    """A per_connection app's __init__ that blocks (it waits for another
    connection's request) runs like a handler: with one worker, the other
    connection is still served meanwhile."""
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    srv = spawn("original_app.py", "--file", str(path), "--workers", "1", backend=backend)
    waiting, other = client(srv.ports["slowinit"]), client(srv.ports["shared"])
    try:
        waiting.request("GET", "/waited")
        time.sleep(0.2)  # let its __init__ start waiting (not needed for correctness)
        assert get(other, "/release")[2] == b"released"
        resp = waiting.getresponse()
        assert json.loads(resp.read()) == {"released": True}
    finally:
        waiting.close()
        other.close()
    srv.finish().assert_clean()


def test_lazy_request_fields_are_made_once(app) -> None:
    """request.transport, .response and .range read by several threads at once
    (free-threaded: truly at once) are made once: all see the same objects."""
    for i in range(30):
        conn = client(app.ports["shared" if i % 2 else "per"])
        try:
            status, _, body = get(conn, "/race", {"Range": "bytes=0-1"})
            assert (status, json.loads(body)) == (200, {"same": True, "n": 6}), i
        finally:
            conn.close()
    app.finish().assert_clean()


def test_sendfile_makes_range_and_response_only_when_needed(app) -> None:
    """sendfile without a Range header and with nothing set by the handler
    makes neither request.range nor request.response (a Python call each)."""
    conn = client(app.ports["shared"])
    try:
        status, headers, body = get(conn, "/plainfile")
        assert (status, body, headers["x-made"]) == (200, DATA, "none")
        status, headers, body = get(conn, "/plainfile", {"Range": "bytes=0-1,4-5"})
        assert (status, headers["x-made"]) == (206, "range")
        status, headers, body = get(conn, "/plainfile", {"Range": "bytes=3-4"})
        assert (status, body, headers["x-made"]) == (206, DATA[3:5], "range")
    finally:
        conn.close()
    app.finish().assert_clean()


def test_range_limits_count_ranges_as_asked_and_head(app) -> None:
    """More than MAX_RANGES ranges are ignored even when they merge into one
    (counted as asked, as nginx's max_ranges); several ranges to a HEAD are
    answered with the length the GET's parts have."""
    conn = client(app.ports["shared"])
    try:
        status, headers, body = get(conn, "/file", {"Range": "bytes=" + ",".join(["0-1"] * 65)})
        assert (status, body) == (200, DATA)
        status, headers, body = get(conn, "/file", {"Range": "bytes=" + ",".join(["0-1"] * 64)})
        assert (status, body) == (206, DATA[:2])
        several = {"Range": "bytes=0-3, 100-109, -4"}
        status, headers, body = get(conn, "/file", several)
        assert status == 206
        conn.request("HEAD", "/file", headers=several)
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (206, b"")
        assert resp.getheader("Content-Length") == str(len(body))
        assert resp.getheader("Content-Type").startswith("multipart/byteranges; boundary=")
    finally:
        conn.close()
    app.finish().assert_clean()
