"""An HttpServer for the streaming suite: generators, StreamingResponse with
a length (right, short, long), HttpStream written by another thread,
Server-Sent Events, a slow-reader stream with bounded memory, and close()
of a generator whose client went away.

    python stream_app.py [--workers K]

Routes: /gen (three pieces), /len/{n} (StreamingResponse announcing n bytes
of a 10-byte body), /forever (a generator that yields until the client goes;
its close() is counted at /closed), /thread (an HttpStream written by a
thread after the handler returned), /big/{mb} (mb MiB written by a thread
that waits on backpressure), /sse (EventStream: an event every 50 ms from a
thread, until the client goes; counted at /closed), /raise (a generator that
raises after one piece), /plain.
"""

from __future__ import annotations

import threading
import time

from _common import int_arg, serve

from pyparallel.http import (
    EventStream,
    HttpServer,
    StreamingResponse,
    route,
    stream,
)

CLOSED = {"forever": 0, "sse": 0}
LOCK = threading.Lock()


def count(name: str) -> None:
    with LOCK:
        CLOSED[name] += 1


class App(HttpServer):
    @route("/plain")
    def plain(self, request):
        return b"plain"

    @route("/closed")
    def closed(self, request):
        with LOCK:
            return dict(CLOSED)

    @route("/gen")
    def gen(self, request):
        def pieces():
            yield b"one,"
            yield "two,"
            yield memoryview(b"three")
        return pieces()

    @route("/len/{n}")
    def length(self, request, n):
        return StreamingResponse(iter([b"01234", b"56789"]), length=int(n),
                                 headers={"X-Streamed": "yes"})

    @route("/forever")
    def forever(self, request):
        def ticks():
            try:
                i = 0
                while True:
                    yield b"tick %d\n" % i
                    i += 1
                    time.sleep(0.01)
            finally:
                count("forever")
        return ticks()

    @route("/raise")
    def raises(self, request):
        def pieces():
            yield b"before"
            raise RuntimeError("generator failed on purpose")
        return pieces()

    @route("/thread")
    def thread(self, request):
        s = stream(request, content_type="text/plain")

        def later():
            time.sleep(0.2)
            for i in range(5):
                s.write(b"line %d\n" % i)
            s.end()
        threading.Thread(target=later).start()
        return s

    @route("/big/{mb}")
    def big(self, request, mb):
        s = stream(request, content_type="application/octet-stream",
                   length=int(mb) << 20)
        piece = bytes(range(256)) * 256  # 64 KiB

        def write_all():
            for _ in range(int(mb) * 16):
                s.write(piece)  # waits while the client reads slower
            s.end()
        threading.Thread(target=write_all).start()
        return s

    @route("/sse")
    def sse(self, request):
        events = EventStream(request, heartbeat=0.05)

        def tick():
            i = 0
            try:
                while True:
                    events.send(f"tick {i}", event="tick", id=str(i))
                    i += 1
                    time.sleep(0.05)
            except BrokenPipeError:
                count("sse")
        threading.Thread(target=tick).start()
        return events.stream


if __name__ == "__main__":
    serve("stream", {"http": App}, workers=int_arg("--workers", 2))
