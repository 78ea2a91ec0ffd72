"""The Wikipedia HttpServer of the python-ideas mail
(pyparallel.examples.wiki.original), unchanged but for imports, served on both
backends and queried through http.client: every route, the pages by ranged
sendfile byte for byte, state per connection, and /shutdown."""

from __future__ import annotations

import html
import http.client
import json
import re
from pathlib import Path
from urllib.parse import quote

from helpers import HOST, example
from pyparallel.examples.wiki.original_data import USERS

PAGES = 300


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def test_the_mails_wiki_server_end_to_end(spawn, backend: str, tmp_path: Path) -> None:
    srv = spawn(*example("wiki.original", "--pages", str(PAGES), "--cache-dir", str(tmp_path),
                         "--workers", "2"), backend=backend, ready_timeout=60)
    dump = next(tmp_path.glob("*.xml"))
    data = dump.read_bytes()
    spans = [(m.start(), m.end()) for m in re.finditer(rb"<page>.*?</page>", data, re.S)]
    titles = [html.unescape(re.search(rb"<title>(.*?)</title>", data[a:b]).group(1).decode())
              for a, b in spans]
    # every 7th page, the last one, and titles with '/', '&' or non-ASCII
    picks = list(range(0, len(titles), 7)) + [len(titles) - 1]
    for odd in ("/", "&", '"'):
        picks.append(next(i for i, t in enumerate(titles) if odd in t))
    picks.append(next(i for i, t in enumerate(titles) if not t.isascii()))
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    other = http.client.HTTPConnection(HOST, srv.port, timeout=10)
    try:
        # /wiki/NAME: the page's bytes by a ranged sendfile (206), last page included
        for i in picks:
            a, b = spans[i]
            status, headers, body = get(conn, "/wiki/" + quote(titles[i], safe=""))
            assert status == 206, titles[i]
            assert headers["content-type"] == "text/xml; charset=utf-8"
            assert headers["content-range"] == f"bytes {a}-{b - 1}/{len(data)}"
            assert body == data[a:b], titles[i]
        assert get(conn, "/wiki/No%20such%20page")[0] == 404
        # the SQL routes (pyodbc's DB-API, through sqlite3)
        assert get(conn, "/users")[2] == b"[]"  # the mail never executes all_users_sql
        for login, name in USERS:
            assert json.loads(get(conn, "/user/" + login)[2]) == [[login, name]]
        assert json.loads(get(conn, "/user/nobody")[2]) == []
        # a value kept per connection (per_connection = True)
        assert get(conn, "/set_secret_key/foobar")[0] == 200
        assert get(other, "/set_secret_key/other")[0] == 200
        assert json.loads(get(conn, "/secret_key")[2]) == {"key": "foobar"}
        assert json.loads(get(other, "/secret_key")[2]) == {"key": "other"}
        # /stats: system, server socket, memory, contexts, elapsed, thread
        stats = json.loads(get(conn, "/stats")[2])
        assert set(stats) == {"system", "server", "memory", "contexts", "elapsed", "thread"}
        assert stats["elapsed"] >= 0 and stats["system"]["workers"] == 2
        assert get(conn, "/debug")[0] == 200
        # /shutdown: the server stops, cleanly
        assert get(other, "/shutdown")[0] == 200
    finally:
        conn.close()
        other.close()
    assert srv.proc.wait(timeout=30) == 0
    assert "Traceback" not in srv.stderr_text()
