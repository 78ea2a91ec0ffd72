"""TechEmpower's database tests as a plain ASGI app on asyncpg's pool, for
uvicorn with uvloop and httptools:

    TFB_DB_DSN=... uvicorn --loop uvloop --http httptools --app-dir bench/peers \\
        tfb_db_asyncpg:app

The pool is made at lifespan startup; statements are prepared by asyncpg's
statement cache; the updates go through executemany, as asyncpg recommends.
"""

import json

import asyncpg
from tfb_db_common import (
    DSN,
    HTML_ASGI,
    JSON_ASGI,
    POOL_SIZE,
    count,
    lifespan,
    random_id,
    render_fortunes,
    respond,
)

SELECT_WORLD = "SELECT id, randomNumber FROM World WHERE id = $1"
SELECT_FORTUNES = "SELECT id, message FROM Fortune"
UPDATE_WORLD = "UPDATE World SET randomNumber = $1 WHERE id = $2"
pool = None


async def open_pool():
    global pool
    pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE)


async def close_pool():
    await pool.close()


async def worlds(conn, n):
    stmt = await conn.prepare(SELECT_WORLD)
    out = []
    for _ in range(n):
        row = await stmt.fetchrow(random_id())
        out.append({"id": row[0], "randomNumber": row[1]})
    return out


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send, open_pool, close_pool)
    path = scope["path"]
    query = scope["query_string"].decode()
    async with pool.acquire() as conn:
        if path == "/db":
            row = await conn.fetchrow(SELECT_WORLD, random_id())
            body, headers = json.dumps({"id": row[0], "randomNumber": row[1]}).encode(), JSON_ASGI
        elif path == "/queries":
            body, headers = json.dumps(await worlds(conn, count(query))).encode(), JSON_ASGI
        elif path == "/fortunes":
            body, headers = render_fortunes(await conn.fetch(SELECT_FORTUNES)), HTML_ASGI
        elif path == "/updates":
            rows = await worlds(conn, count(query))
            for r in rows:
                r["randomNumber"] = random_id()
            await conn.executemany(UPDATE_WORLD,
                                   sorted((r["randomNumber"], r["id"]) for r in rows))
            body, headers = json.dumps(rows).encode(), JSON_ASGI
        else:
            body, headers = b"", []
    await respond(send, body, headers)
