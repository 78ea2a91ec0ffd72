"""Fast-path parameters are encoded as psycopg encodes them: NUL refused,
types sent, the connection's client encoding."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from _one_conn import one_connection

from pyparallel.db import Database

db = pytest.fixture(one_connection, name="db")


def test_nul_in_a_text_parameter_is_refused_as_psycopg_does(db: Database) -> None:
    with pytest.raises(psycopg.DataError):
        db.fetchone("SELECT %s::text", ("admin\x00evil",))
    with pytest.raises(psycopg.DataError):
        db.fetch_many("SELECT %s::text", [("admin\x00evil",)])
    assert db.fetchone("SELECT 1") == (1,)


@pytest.mark.parametrize("query, params", [
    ("SELECT %s", (1,)),
    ("SELECT %s + %s", (1, 2)),
    ("SELECT %s", (1.5,)),
    ("SELECT %s", (True,)),
    ("SELECT %s", ("x",)),
    ("SELECT %s, %s", (None, 2**40)),
    ("SELECT %s * 2", (2**70,)),
    # lists of ints go as bigint[] on the fast path; other lists by psycopg
    ("SELECT %s", ([1, 2, 3],)),
    ("SELECT %s, %s", ([-5, 2**40], "x")),
    ("SELECT %s = ANY(%s)", (3, [1, 2, 3])),
    ("SELECT %s::int[]", ([],)),
    ("SELECT %s", ([True, False],)),
    ("SELECT %s", ([1, None],)),
    ("SELECT %s", ([2**70],)),
    ("SELECT %s", (["a", "b"],)),
])
def test_untyped_parameters_answer_as_psycopg(db: Database, pg_dsn: str, query: str,
                                             params: tuple[Any, ...]) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        expected = conn.execute(query, params).fetchone()
    assert db.fetchone(query, params) == expected
    assert db.fetchall(query, params) == [expected]
    assert db.fetch_many(query, [params]) == [expected]


def test_client_encoding_is_used(pg_dsn: str) -> None:
    database = Database(pg_dsn, max_per_worker=1, options="-c client_encoding=LATIN1")
    try:
        assert database.fetchone("SELECT %s::text", ("h\u00e9",)) == ("h\u00e9",)
        assert database.fetchone("SELECT length(%s::text)", ("h\u00e9",)) == (2,)
    finally:
        database.close()


def test_execute_answers_as_psycopg(db: Database, pg_dsn: str) -> None:
    update = "UPDATE World SET randomNumber = randomNumber WHERE id = ANY(%s)"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        expected = [conn.execute(update, ([1, 2, 3],)).rowcount,
                    conn.execute(update, ([],)).rowcount,
                    conn.execute("UPDATE World SET id = id WHERE id < 0").rowcount]
    assert [db.execute(update, ([1, 2, 3],)), db.execute(update, ([],)),
            db.execute("UPDATE World SET id = id WHERE id < 0")] == expected == [3, 0, 0]
    # the int list went by the fast path: prepared under a name of pyparallel's
    with db.connection() as conn:
        prepared = conn._px_fast.names  # type: ignore[attr-defined]
    assert any(query == update for query, _types in prepared)


def test_execute_without_parameters_takes_several_statements(db: Database,
                                                               pg_dsn: str) -> None:
    # psycopg's simple query protocol, as a plain psycopg connection runs it
    # (a prepared statement holds one statement)
    script = ("UPDATE World SET randomNumber = randomNumber WHERE id = 1; "
              "UPDATE World SET randomNumber = randomNumber WHERE id IN (2, 3)")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        expected = conn.execute(script).rowcount
    assert db.execute(script) == expected == 1  # psycopg counts the first statement's rows
    with pytest.raises(psycopg.errors.SyntaxError):  # one bad: none of them runs
        db.execute("UPDATE World SET id = id WHERE id = 1; UPDATE nowhere SET x = 1 WHERE")
    assert db.fetchone("SELECT 1") == (1,)
