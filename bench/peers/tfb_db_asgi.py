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
    HTML_ASGI,
    JSON_ASGI,
    POOL_SIZE,
    SELECT_FORTUNES,
    SELECT_WORLD,
    UPDATE_WORLD,
    count,
    lifespan,
    random_id,
    render_fortunes,
    respond,
)

pool = AsyncConnectionPool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False)


async def worlds(conn, n):
    async with conn.pipeline():
        curs = [await conn.execute(SELECT_WORLD, (random_id(),), prepare=True)
                for _ in range(n)]
    return [{"id": r[0], "randomNumber": r[1]} for r in [await c.fetchone() for c in curs]]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send, lambda: pool.open(wait=True), pool.close)
    path = scope["path"]
    query = scope["query_string"].decode()
    async with pool.connection() as conn:
        if path == "/db":
            cur = await conn.execute(SELECT_WORLD, (random_id(),), prepare=True)
            row = await cur.fetchone()
            body, headers = json.dumps({"id": row[0], "randomNumber": row[1]}).encode(), JSON_ASGI
        elif path == "/queries":
            body, headers = json.dumps(await worlds(conn, count(query))).encode(), JSON_ASGI
        elif path == "/fortunes":
            cur = await conn.execute(SELECT_FORTUNES, prepare=True)
            body, headers = render_fortunes(await cur.fetchall()), HTML_ASGI
        elif path == "/updates":
            rows = await worlds(conn, count(query))
            for r in rows:
                r["randomNumber"] = random_id()
            async with conn.cursor() as cur:
                await cur.executemany(UPDATE_WORLD,
                                      sorted((r["randomNumber"], r["id"]) for r in rows))
            body, headers = json.dumps(rows).encode(), JSON_ASGI
        else:
            body, headers = b"", []
    await respond(send, body, headers)
