"""TechEmpower /json and /plaintext as a bare RSGI application (granian's own interface).

    granian --interface rsgi --working-dir bench/peers rsgi_app:app
"""

import json

HELLO = b"Hello, World!"
JSON_HEADERS = [("content-type", "application/json")]
TEXT_HEADERS = [("content-type", "text/plain")]


async def app(scope, proto):
    path = scope.path
    if path == "/json":
        body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
        proto.response_bytes(200, JSON_HEADERS, body)
    elif path == "/plaintext":
        proto.response_bytes(200, TEXT_HEADERS, HELLO)
    else:
        proto.response_bytes(404, TEXT_HEADERS, b"not found")
