"""The same Flask hello app for every WSGI server of bench/wsgi_bench.py.

    granian --interface wsgi --working-dir bench/peers flask_hello:app
"""

from flask import Flask, Response

app = Flask(__name__)


@app.route("/json")
def json() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.route("/plaintext")
def plaintext() -> Response:
    return Response(b"Hello, World!", mimetype="text/plain")
