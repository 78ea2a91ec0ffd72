"""Server-Sent Events: a clock streamed by a generator, and events broadcast
to every subscriber by one thread.

    python -m pyparallel.examples.sse [--port 8000] [--interval 1.0]

Open http://127.0.0.1:8000/ in a browser, or ``curl -N`` the streams:

* ``/clock``: a generator per client yields the time every interval; it runs
  on the client's worker, handed to a spare thread while it sleeps, and is
  closed (``GeneratorExit``) when the client goes away.
* ``/events``: an :class:`~pyparallel.http.EventStream` per client; one
  thread sends each tick to all of them, from outside the workers; a client
  gone raises ``BrokenPipeError`` there and leaves the set. Heartbeats keep
  idle proxies from closing the connection and find departed clients soon.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyparallel as px
from pyparallel.http import (
    EventStream,
    HttpServer,
    StreamingResponse,
    format_event,
    route,
)

__all__ = ["Broadcast", "SseApp", "main"]

_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>pyparallel Server-Sent Events</title>
<p>clock: <span id="clock">-</span></p>
<p>broadcast: <span id="tick">-</span></p>
<script>
new EventSource("/clock").addEventListener("time", e => clock.textContent = e.data);
new EventSource("/events").addEventListener("tick", e => tick.textContent = e.data);
</script>
"""


class Broadcast:
    """The subscribers of /events and the thread that sends them each tick."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.streams: set[EventStream] = set()
        self.lock = threading.Lock()
        self.sent = 0

    def add(self, stream: EventStream) -> None:
        with self.lock:
            self.streams.add(stream)

    def run(self) -> None:
        n = 0
        while True:
            time.sleep(self.interval)
            n += 1
            with self.lock:
                streams = list(self.streams)
            for stream in streams:
                try:
                    # never blocks this thread behind one slow client
                    stream.send(f"tick {n} at {time.strftime('%H:%M:%S')}", event="tick",
                                id=str(n), block=False)
                    self.sent += 1
                except (BrokenPipeError, BlockingIOError):
                    stream.stream.abort()
                    with self.lock:
                        self.streams.discard(stream)


_BROADCAST = Broadcast(1.0)


class SseApp(HttpServer):
    """Server-Sent Events: /clock (a generator), /events (a broadcast)."""

    interval = 1.0

    @route("/")
    def index(self, request: Any) -> str:
        return _PAGE

    @route("/clock")
    def clock(self, request: Any) -> StreamingResponse:
        interval = self.interval

        def times() -> Iterator[bytes]:
            while True:
                yield format_event(time.strftime("%H:%M:%S"), event="time")
                time.sleep(interval)
        return StreamingResponse(times(), content_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @route("/events")
    def events(self, request: Any) -> Any:
        stream = EventStream(request, heartbeat=15.0)
        stream.send("subscribed", event="hello")
        _BROADCAST.add(stream)
        return stream.stream


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyparallel.examples.sse",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between two clock ticks and two broadcasts")
    args = parser.parse_args(argv)
    SseApp.interval = _BROADCAST.interval = args.interval
    try:
        server = px.server(args.host, args.port)
        px.engine(args.workers)
    except OSError as e:
        raise SystemExit(f"sse: {e}") from None
    px.register(transport=server, protocol=SseApp)
    threading.Thread(target=_BROADCAST.run, name="sse-broadcast", daemon=True).start()
    print(f"sse: listening on {args.host}:{server.port}", flush=True)
    px.run(workers=args.workers)


if __name__ == "__main__":
    main()
