"""What the TechEmpower database peers share (bench/db_bench.py): the rules of
the test types, the queries and the fortunes template. No framework.

The DSN comes from the environment (TFB_DB_DSN), as TechEmpower's apps take
their database host.
"""

import os
import random

import jinja2

DSN = os.environ.get("TFB_DB_DSN", "postgresql://benchmarkdbuser:benchmarkdbpass@127.0.0.1/hello_world")
# Connections per server process: enough to keep PostgreSQL busy from one core.
POOL_SIZE = int(os.environ.get("TFB_DB_POOL", "16"))

SELECT_WORLD = "SELECT id, randomNumber FROM World WHERE id = %s"
SELECT_FORTUNES = "SELECT id, message FROM Fortune"
UPDATE_WORLD = "UPDATE World SET randomNumber = %s WHERE id = %s"
EXTRA_FORTUNE = "Additional fortune added at request time."

FORTUNES = jinja2.Environment(autoescape=True).from_string(
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "{% for id, message in fortunes %}<tr><td>{{ id }}</td><td>{{ message }}</td></tr>"
    "{% endfor %}</table></body></html>")


def count(query_string: str) -> int:
    """`queries=N` clamped to 1..500; missing or not an integer counts as 1."""
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if name == "queries":
            try:
                return min(max(int(value), 1), 500)
            except ValueError:
                return 1
    return 1


def random_id() -> int:
    return random.randint(1, 10000)


def render_fortunes(rows) -> bytes:
    fortunes = list(rows)
    fortunes.append((0, EXTRA_FORTUNE))
    fortunes.sort(key=lambda f: f[1])
    return FORTUNES.render(fortunes=fortunes).encode()


JSON_ASGI = [(b"content-type", b"application/json")]
HTML_ASGI = [(b"content-type", b"text/html; charset=utf-8")]


async def lifespan(receive, send, startup, shutdown):
    """ASGI lifespan: await startup() before the first request, shutdown() at exit."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send, body, headers):
    """The ASGI answer: 200 with HEADERS, or 404 when there are none."""
    await send({"type": "http.response.start", "status": 200 if headers else 404,
                "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
