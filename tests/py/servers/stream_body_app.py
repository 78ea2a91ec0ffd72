"""An HttpServer whose handlers are called at the head (stream_bodies) and
read Request.body / Request.json(): the body is read whole at its first use
in the handler (max_body bounds it); /keep stores its request and /late reads
that request's body after its handler returned.

    python stream_body_app.py
"""

from __future__ import annotations

import hashlib

from _common import serve

from pyparallel.http import HttpServer, route

kept: list = []


class App(HttpServer):
    limits = {"stream_bodies": True, "max_body": 1 << 20}

    @route("/digest", methods=["POST"])
    def digest(self, request):
        body = request.body
        again = request.body  # read once, kept
        assert again is body
        return f"{len(body)}:{hashlib.sha256(body).hexdigest()}".encode()

    @route("/json", methods=["POST"])
    def json(self, request):
        return {"got": request.json()}

    @route("/keep", methods=["POST"])
    def keep(self, request):
        kept.append(request)
        return b"kept"

    @route("/late")
    def late(self, request):
        try:
            body = kept.pop().body
        except RuntimeError as e:
            return f"RuntimeError: {e}".encode()
        return b"no error: %d bytes" % len(body)


if __name__ == "__main__":
    serve("stream_body", {"http": App}, workers=1)
