"""TechEmpower /json and /plaintext as a bare WSGI application.

    granian --interface wsgi --working-dir bench/peers wsgi_app:app
"""

import json

HELLO = b"Hello, World!"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/json":
        body = json.dumps({"message": "Hello, World!"}, separators=(",", ":")).encode()
        status, ctype = "200 OK", "application/json"
    elif path == "/plaintext":
        body, status, ctype = HELLO, "200 OK", "text/plain"
    else:
        body, status, ctype = b"not found", "404 Not Found", "text/plain"
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
