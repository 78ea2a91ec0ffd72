"""TechEmpower's database test types served by ``pyparallel.examples.tfb --db``
against a real PostgreSQL: the response shapes and headers, the clamping of
``queries``/``count``, the escaping and order of /fortunes, updates visible
in the table afterwards, and the cache shared by every worker."""

from __future__ import annotations

import html.parser
import json
import re
from typing import Any

import psycopg
from _tfb_data import FORTUNES

from helpers import example
from http_helpers import Conn, Reply, request

# queries/count as sent -> rows in the answer (missing, not an integer: 1; clamped 1..500)
COUNTS = [(None, 1), ("", 1), ("foo", 1), ("1.5", 1), ("0", 1), ("-3", 1), ("1", 1),
          ("7", 7), ("500", 500), ("501", 500), ("100000", 500)]
EXTRA = "Additional fortune added at request time."
DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$")


def _get(conn: Conn, target: str) -> Reply:
    conn.send(request("GET", target))
    return conn.read_reply()


def _target(path: str, name: str, value: str | None) -> str:
    return path if value is None else f"{path}?{name}={value}"


def _world(dsn: str) -> dict[int, int]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT id, randomNumber FROM World").fetchall())


def _check_headers(reply: Reply, content_type: str) -> None:
    assert reply.status == 200, reply
    assert reply.headers["content-type"] == content_type
    assert reply.headers["server"]
    assert DATE.match(reply.headers["date"]), reply.headers["date"]


def _check_rows(rows: Any, n: int, world: dict[int, int] | None = None) -> None:
    assert isinstance(rows, list) and len(rows) == n
    for row in rows:
        assert set(row) == {"id", "randomNumber"}, row
        assert 1 <= row["id"] <= 10_000 and 1 <= row["randomNumber"] <= 10_000, row
        if world is not None:
            assert world[row["id"]] == row["randomNumber"], row


def _serve(spawn: Any, backend: str, dsn: str) -> int:
    srv = spawn(*example("tfb", "--db", dsn, "--workers", "2"), backend=backend)
    return int(srv.port)


def test_db_and_queries_answer_world_rows_clamped(spawn: Any, backend: str,
                                                   pg_dsn: str) -> None:
    port = _serve(spawn, backend, pg_dsn)
    world = _world(pg_dsn)
    with Conn(port) as conn:
        reply = _get(conn, "/db")
        _check_headers(reply, "application/json")
        row = json.loads(reply.body)
        assert isinstance(row, dict)  # one object, not a list of one
        _check_rows([row], 1, world)
        for value, n in COUNTS:
            reply = _get(conn, _target("/queries", "queries", value))
            _check_headers(reply, "application/json")
            _check_rows(json.loads(reply.body), n, world)


class _Table(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_fortunes_sorted_escaped_with_the_extra_row(spawn: Any, backend: str,
                                                    pg_dsn: str) -> None:
    port = _serve(spawn, backend, pg_dsn)
    with Conn(port) as conn:
        reply = _get(conn, "/fortunes")
    _check_headers(reply, "text/html; charset=utf-8")
    page = reply.body.decode("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # The <script> fortune arrives as text, never as markup.
    assert "<script>" not in page and "&lt;script&gt;alert(" in page
    table = _Table()
    table.feed(page)
    assert table.rows[0] == ["id", "message"]
    expected = sorted([(0, EXTRA), *FORTUNES], key=lambda r: r[1])
    assert table.rows[1:] == [[str(i), m] for i, m in expected]
    # Sorted by code point: the Japanese fortune comes last, after lower case.
    assert table.rows[-1][1] == FORTUNES[11][1] and table.rows[-2][1].startswith("fortune:")


def test_updates_are_visible_afterwards(spawn: Any, backend: str, pg_dsn: str) -> None:
    port = _serve(spawn, backend, pg_dsn)
    with Conn(port) as conn:
        for value, n in COUNTS:
            reply = _get(conn, _target("/updates", "queries", value))
            _check_headers(reply, "application/json")
            rows = json.loads(reply.body)
            _check_rows(rows, n)
            # What the answer says each row now holds is what the table holds.
            _check_rows(rows, n, _world(pg_dsn))
            seen: dict[int, int] = {}
            for row in rows:  # a row drawn twice got one number
                assert seen.setdefault(row["id"], row["randomNumber"]) == row["randomNumber"]


def test_cached_queries_answer_the_rows_loaded_at_start(spawn: Any, backend: str,
                                                        pg_dsn: str) -> None:
    world = _world(pg_dsn)
    port = _serve(spawn, backend, pg_dsn)
    with Conn(port) as conn:
        for value, n in COUNTS:
            reply = _get(conn, _target("/cached-queries", "count", value))
            _check_headers(reply, "application/json")
            _check_rows(json.loads(reply.body), n, world)
