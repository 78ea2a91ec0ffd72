"""An HttpServer whose handlers are called at the head (stream_bodies) and
answer with an HttpStream without reading the body: /later (written and ended
by a thread after the handler returned), /inline (written and ended by the
handler). A client that waits for a 100 Continue gets the whole stream, then
the close.

    python stream_unread_app.py
"""

from __future__ import annotations

import threading
import time

from _common import serve

from pyparallel.http import HttpServer, route, stream

PIECES = 64
PIECE = 4000


def write_pieces(s) -> None:
    for i in range(PIECES):
        s.write((b"piece %02d " % i).ljust(PIECE, b"x"))
    s.end()


class App(HttpServer):
    limits = {"stream_bodies": True}

    @route("/later")
    def later(self, request):
        s = stream(request, content_type="text/plain")

        def run():
            time.sleep(0.1)  # the handler has returned
            write_pieces(s)
        threading.Thread(target=run).start()
        return s

    @route("/inline")
    def inline(self, request):
        s = stream(request, content_type="text/plain")
        write_pieces(s)
        return s


if __name__ == "__main__":
    serve("stream_unread", {"http": App}, workers=1)
