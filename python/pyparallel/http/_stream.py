"""Streamed responses: bodies sent as they are produced, after the handler
returned if need be, and Server-Sent Events.

Three ways, from the simplest:

* return a generator (or any iterator) from a handler: its items (bytes or
  str) are sent as they come, chunked (HTTP/1.1) or until the close
  (HTTP/1.0); :class:`StreamingResponse` sets the status, headers and a
  ``length`` (then sent with Content-Length, which is enforced). When the
  client goes away the generator is closed (``GeneratorExit`` at its
  ``yield``); ``close()`` of any iterator is called at the end.
* :func:`stream` starts the response inside the handler and returns an
  :class:`HttpStream` that any thread writes to, later: ``write()``,
  ``end()``, ``abort()``, ``closed``; a write waits while the client reads
  slower than the stream is written (the engine's high-water mark), and
  raises ``BrokenPipeError`` once the client has gone.
* :class:`EventStream`: Server-Sent Events (``text/event-stream``) over such
  a stream, with heartbeats that also find out soon when a client went away.

Names follow Starlette (``StreamingResponse``) and the EventSource standard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyparallel import _core

from ._response import Response

__all__ = ["Deferred", "EventStream", "HttpStream", "StreamingResponse", "defer", "format_event",
           "stream"]

HttpStream = _core.HttpStream
Deferred = _core.Deferred

_Headers = Mapping[str, str] | Iterable[tuple[str, str]] | None


class StreamingResponse(Response):
    """A response whose body is an iterable sent as it is produced.

    ``length``: the body's length when known (sent as Content-Length; a body
    longer or shorter is an error in the log and a closed connection, never a
    corrupt stream); None: chunked, or until the close for HTTP/1.0."""

    __slots__ = ("length",)

    def __init__(self, content: Iterable[bytes | str], status: int = 200,
                 content_type: str | None = "text/plain; charset=utf-8",
                 headers: _Headers = None, length: int | None = None) -> None:
        super().__init__(iter(content), status, content_type, headers)
        self.length = length


def stream(request: Any, status: int = 200,
           content_type: str | None = "text/plain; charset=utf-8",
           headers: _Headers = None, length: int | None = None) -> HttpStream:
    """Start the response to ``request`` now (call it in its handler) and
    return the :class:`HttpStream` of its body, which any thread may write to
    until it calls ``end()``. Return the stream (or anything: it is ignored)
    from the handler. The connection's next request waits for the end."""
    return _core.http_stream(request, status, content_type, headers, length)


def defer(request: Any) -> Deferred:
    """Answer ``request`` later: call it in its handler, return (anything: it
    is ignored), and give the :class:`Deferred` what the handler would have
    returned with ``respond(result)``, from any thread, when it is ready, or
    an exception with ``fail(exc)`` (an HttpError's status, else 500 and the
    traceback in the log). No thread waits meanwhile; the connection's next
    request waits for the answer. A Deferred dropped unanswered answers 500.
    ``respond``/``fail`` return False when the client went away first.
    ``respond_with(fn, gone=None)`` answers with what ``fn(request)``
    returns, called on the request's worker as its handler would be:
    ``stream(request)`` works in it, so a response may start streaming after
    the handler returned; ``gone()`` is called instead when the client goes
    away before fn could run."""
    return _core.http_defer(request)


def format_event(data: str | bytes | None = None, event: str | None = None,
                 id: str | None = None, retry: int | None = None,
                 comment: str | None = None) -> bytes:
    """One Server-Sent Event as sent: ``data`` split into ``data:`` lines."""
    out: list[str] = []
    if comment is not None:
        out += [f": {line}" for line in comment.splitlines() or [""]]
    for name, value in (("event", event), ("id", id)):
        if value is not None:
            if "\n" in value or "\r" in value:
                raise ValueError(f"an event {name} cannot hold a line break")
            out.append(f"{name}: {value}")
    if retry is not None:
        out.append(f"retry: {int(retry)}")
    if data is not None:
        text = data.decode() if isinstance(data, bytes) else data
        # CRLF, LF and a lone CR all end a line for the client (the SSE grammar)
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        out += [f"data: {line}" for line in lines]
    return ("\n".join(out) + "\n\n").encode()


class EventStream:
    """Server-Sent Events to one client: ``send()`` from any thread.

    ``heartbeat``: seconds of silence after which a comment line is sent
    (proxies keep the connection, and a client gone is noticed); 0: none."""

    def __init__(self, request: Any, heartbeat: float = 15.0, headers: _Headers = None,
                 status: int = 200) -> None:
        fields: list[tuple[str, str]] = [("Cache-Control", "no-cache"),
                                          ("X-Accel-Buffering", "no")]
        if headers:
            fields += list(headers.items() if isinstance(headers, Mapping) else headers)
        self.stream = stream(request, status, "text/event-stream", fields)
        if heartbeat > 0:
            self.stream.heartbeat(heartbeat)

    @property
    def closed(self) -> bool:
        """True once the client went away (or the stream was closed)."""
        return bool(self.stream.closed)

    def send(self, data: str | bytes | None = None, event: str | None = None,
             id: str | None = None, retry: int | None = None, *, block: bool = True,
             timeout: float | None = None) -> None:
        """Send one event; BrokenPipeError once the client has gone."""
        self.stream.write(format_event(data, event, id, retry), block=block, timeout=timeout)

    def comment(self, text: str = "") -> None:
        self.stream.write(format_event(comment=text))

    def close(self) -> None:
        """End the stream (the client sees the end of the response)."""
        self.stream.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
