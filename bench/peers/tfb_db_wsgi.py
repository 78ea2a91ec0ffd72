"""TechEmpower's database tests as a plain WSGI app on psycopg 3 and its
connection pool (psycopg_pool.ConnectionPool), for granian's WSGI interface:

    TFB_DB_DSN=... granian --interface wsgi --backpressure 16 \\
        --working-dir bench/peers tfb_db_wsgi:app

(granian's docs: with a database's limited connections, set the backpressure
to their number and leave the blocking threads at their default.)

Each of granian's blocking threads takes a connection from the pool per
request; batches of reads go through pipeline mode and the updates through
executemany (pipelined by psycopg), as psycopg's documentation recommends for
many statements.
"""

import json

from psycopg_pool import ConnectionPool
from tfb_db_common import (
    DSN,
    POOL_SIZE,
    SELECT_FORTUNES,
    SELECT_WORLD,
    UPDATE_WORLD,
    count,
    random_id,
    render_fortunes,
)

pool = ConnectionPool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE, open=True)
JSON = [("Content-Type", "application/json")]
HTML = [("Content-Type", "text/html; charset=utf-8")]


def worlds(conn, n):
    with conn.pipeline():
        curs = [conn.execute(SELECT_WORLD, (random_id(),), prepare=True) for _ in range(n)]
    return [{"id": r[0], "randomNumber": r[1]} for r in (c.fetchone() for c in curs)]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    with pool.connection() as conn:
        if path == "/db":
            row = conn.execute(SELECT_WORLD, (random_id(),), prepare=True).fetchone()
            body, headers = json.dumps({"id": row[0], "randomNumber": row[1]}).encode(), JSON
        elif path == "/queries":
            body = json.dumps(worlds(conn, count(environ.get("QUERY_STRING", "")))).encode()
            headers = JSON
        elif path == "/fortunes":
            body = render_fortunes(conn.execute(SELECT_FORTUNES, prepare=True).fetchall())
            headers = HTML
        elif path == "/updates":
            rows = worlds(conn, count(environ.get("QUERY_STRING", "")))
            for r in rows:
                r["randomNumber"] = random_id()
            with conn.cursor() as cur:
                cur.executemany(UPDATE_WORLD, sorted((r["randomNumber"], r["id"]) for r in rows))
            body, headers = json.dumps(rows).encode(), JSON
        else:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
    start_response("200 OK", headers + [("Content-Length", str(len(body)))])
    return [body]
