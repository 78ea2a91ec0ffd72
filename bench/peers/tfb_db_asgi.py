"""TechEmpower's database tests as a plain ASGI app on psycopg 3's
AsyncConnectionPool, for granian's ASGI interface:

    TFB_DB_DSN=... granian --interface asgi --working-dir bench/peers tfb_db_asgi:app

The pool opens at lifespan startup (psycopg's documented way for async
servers); batches of reads go through pipeline mode, the updates through
executemany (pipelined by psycopg).
"""

import json

from psycopg_pool import AsyncConnectionPool
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

pool = AsyncConnectionPool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False)
JSON = [(b"content-type", b"application/json")]
HTML = [(b"content-type", b"text/html; charset=utf-8")]


async def worlds(conn, n):
    async with conn.pipeline():
        curs = [await conn.execute(SELECT_WORLD, (random_id(),), prepare=True)
                for _ in range(n)]
    return [{"id": r[0], "randomNumber": r[1]} for r in [await c.fetchone() for c in curs]]


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await pool.open(wait=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    path = scope["path"]
    query = scope["query_string"].decode()
    async with pool.connection() as conn:
        if path == "/db":
            cur = await conn.execute(SELECT_WORLD, (random_id(),), prepare=True)
            row = await cur.fetchone()
            body, headers = json.dumps({"id": row[0], "randomNumber": row[1]}).encode(), JSON
        elif path == "/queries":
            body, headers = json.dumps(await worlds(conn, count(query))).encode(), JSON
        elif path == "/fortunes":
            cur = await conn.execute(SELECT_FORTUNES, prepare=True)
            body, headers = render_fortunes(await cur.fetchall()), HTML
        elif path == "/updates":
            rows = await worlds(conn, count(query))
            for r in rows:
                r["randomNumber"] = random_id()
            async with conn.cursor() as cur:
                await cur.executemany(UPDATE_WORLD,
                                      sorted((r["randomNumber"], r["id"]) for r in rows))
            body, headers = json.dumps(rows).encode(), JSON
        else:
            body, headers = b"", []
    status = 200 if headers else 404
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
