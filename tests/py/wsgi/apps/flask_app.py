"""A Flask application as people write them: routes, JSON, a form with a file
upload, a streamed response, send_file, an error handler and a 500."""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, jsonify, request, send_file, stream_with_context

app = Flask(__name__)
HERE = os.path.dirname(os.path.abspath(__file__))


@app.route("/")
def index() -> str:
    return "<h1>hello from flask</h1>"


@app.route("/json")
def json_view() -> Any:
    return jsonify(message="Hello, World!", n=[1, 2, 3])


@app.route("/items/<int:item_id>", methods=["GET", "PUT"])
def item(item_id: int) -> Any:
    if request.method == "PUT":
        return jsonify(id=item_id, got=request.get_json())
    return jsonify(id=item_id, q=request.args.get("q"))


@app.route("/upload", methods=["POST"])
def upload() -> Any:
    f = request.files["document"]
    data = f.read()
    return jsonify(name=request.form["name"], filename=f.filename, size=len(data),
                   head=data[:8].decode("latin-1"))


@app.route("/stream")
def stream() -> Response:
    def generate() -> Any:
        for i in range(5):
            yield f"part {i}\n"
    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/file")
def file() -> Any:
    return send_file(os.path.join(HERE, "pep_app.py"), mimetype="text/x-python")


class Teapot(Exception):
    pass


@app.errorhandler(Teapot)
def teapot(e: Teapot) -> Any:
    return jsonify(error="teapot"), 418


@app.errorhandler(404)
def not_found(e: Any) -> Any:
    return jsonify(error="no such page"), 404


@app.route("/teapot")
def raise_teapot() -> str:
    raise Teapot()


@app.route("/boom")
def boom() -> str:
    raise ZeroDivisionError("flask-view-exploded")


@app.route("/sleep")
def sleep() -> str:
    time.sleep(0.1)
    return "slept"


@app.route("/fast")
def fast() -> str:
    return "fast"
