"""asyncio transports on the engine's connections.

An engine connection carries an asyncio protocol through :class:`_Conn` (the
engine's protocol object for the connection) and :class:`EngineTransport`
(the ``asyncio.Transport`` the asyncio protocol sees). The engine calls _Conn
on the worker that owns the connection, which is where the loop runs, so the
asyncio protocol's methods are called directly, with that loop as the running
loop, with no hop through the ready queue.

With hand-off, the loop's code may be running on another thread when the
engine calls: a handler's first step on its own thread, or a pump released
and blocked while a spare serves the worker. A worker loop's code runs on one
thread at a time (the waker's claim); an engine callback that cannot claim
the loop is queued behind this connection's earlier ones and run by the
loop's next pump, so a protocol never runs beside the loop's other code and
sees its events in order.

Writes go to the engine's output queue (copied, sent at the end of the
worker's turn, gathered with what else is queued). Write flow control is
asyncio's: above the high-water mark ``pause_writing()``, and
``resume_writing()`` once the queue is at or below the low-water mark, which a
paused transport checks every millisecond (only while paused: the hot path
takes no drain callback from the engine).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from asyncio import events
from collections.abc import Callable
from typing import Any

from .. import _core

_HIGH = 64 * 1024


def _call(loop: Any, conn: _Conn, fn: Callable[..., object], *args: Any) -> None:
    """Call a method of the asyncio protocol as its loop would."""
    if not loop._px_direct:
        # The loop is not running (a standalone loop between runs): later.
        loop._ready.append(asyncio.Handle(_call, (loop, conn, fn, *args), loop, None))
        return
    prev = events._get_running_loop()
    if prev is not loop:
        events._set_running_loop(loop)
    try:
        fn(*args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        _failed(loop, conn, fn, exc)
    finally:
        if prev is not loop:
            events._set_running_loop(prev)


def _feed_buffered(proto: asyncio.BufferedProtocol, data: bytes) -> None:
    """data_received for a buffered protocol: copied into its buffers."""
    asyncio.protocols._feed_data_to_buffered_proto(proto, data)  # type: ignore[attr-defined]


def _failed(loop: Any, conn: _Conn, fn: Callable[..., object], exc: BaseException) -> None:
    """A protocol method raised: asyncio's fatal error (logged, transport aborted)."""
    loop.call_exception_handler({
        "message": f"Fatal error: protocol.{getattr(fn, '__name__', fn)}() call failed.",
        "exception": exc,
        "transport": conn.tr,
        "protocol": conn.proto,
    })
    if conn.tr is not None:
        conn.tr.abort()


class EngineTransport(asyncio.Transport):
    """An asyncio.Transport over an engine connection."""

    # loop.start_tls() may stack an SSL protocol on it (set_protocol, pause
    # and resume reading, _force_close: all served here)
    _start_tls_compatible = True

    def __init__(self, loop: Any, t: _core.Transport, conn: _Conn) -> None:
        self._px_extra = {"peername": t.peername, "sockname": t.sockname}
        super().__init__(self._px_extra)
        self._loop = loop
        self._t = t
        self._conn = conn
        self._closing = False
        self._reading = True
        self._high = _HIGH
        self._low = _HIGH // 4
        self._writing_paused = False
        self._eof = False
        self._px_forced: BaseException | None = None  # _force_close's reason
        # close() of a protocol paused for writing resumes it first: what it
        # held back (the SSL protocol's records and close_notify) is written,
        # then sent before the engine closes; asyncio sends such writes too
        self._px_close_pending = False

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<EngineTransport {state} peer={self._px_extra.get('peername')}>"

    # ---- writing -----------------------------------------------------------------

    def write(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if (self._closing and not self._px_close_pending) or not data:
            return
        t = self._t
        try:
            t.send(data)
        except ConnectionError:
            return  # gone: connection_lost tells the protocol
        if not self._writing_paused and t.unsent > self._high:
            self._conn.maybe_pause()

    def writelines(self, list_of_data: Any) -> None:
        items = [bytes(d) if not isinstance(d, bytes) else d for d in list_of_data]
        if items:
            self.write(b"".join(items))

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        try:
            self._t.shutdown_send()
        except ConnectionError:
            pass

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0 if self._t.closed else int(self._t.unsent)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = _HIGH if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._conn.maybe_pause()

    # ---- reading -----------------------------------------------------------------

    def pause_reading(self) -> None:
        if self._closing or not self._reading:
            return
        self._reading = False
        self._t.pause_reading()

    def resume_reading(self) -> None:
        if self._closing or self._reading:
            return
        self._reading = True
        self._t.resume_reading()

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    # ---- the rest ------------------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._conn.set_proto(protocol)
        if self._writing_paused:
            # the old protocol was paused: the new one is told afresh, so
            # that its resume_writing follows its own pause_writing
            self._writing_paused = False
            self._conn.maybe_pause()

    def get_protocol(self) -> asyncio.BaseProtocol:
        proto: asyncio.BaseProtocol = self._conn.proto
        return proto

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._writing_paused and self._conn.proto is not None:
            self._writing_paused = False
            self._px_close_pending = True  # its last writes are taken
            try:
                self._conn.call(self._conn.proto.resume_writing)
            finally:
                self._px_close_pending = False
        self._t.close()

    def abort(self) -> None:
        self._closing = True
        self._t.abort()

    def _force_close(self, exc: BaseException | None) -> None:
        """Abort, the protocol's connection_lost given exc (asyncio's SSL
        protocol calls this on a fatal error or a shutdown timeout)."""
        if self._px_forced is None:
            self._px_forced = exc
        self.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None  # the engine owns the socket
        return self._px_extra.get(name, default)


class _Conn:
    """The engine's protocol object of one connection carrying an asyncio protocol."""

    # The asyncio protocol pauses itself (pause_reading), not the engine for it.
    output_backpressure = False

    def __init__(self, loop: Any, factory: Callable[[], Any],
                 made: Callable[[_Conn], None] | None = None,
                 failed: Callable[[BaseException], None] | None = None) -> None:
        self.loop = loop
        self.proto: Any = None
        self.buffered = False  # proto is an asyncio.BufferedProtocol
        self.factory = factory
        self.tr: EngineTransport | None = None
        self.made = made
        self.failed = failed
        # Engine callbacks queued while another thread ran the loop (_enter).
        self.backlog: collections.deque[tuple[Callable[..., object], tuple[Any, ...]]] = \
            collections.deque()

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        _call(self.loop, self, fn, *args)

    def set_proto(self, proto: Any) -> None:
        self.proto = proto
        self.buffered = isinstance(proto, asyncio.BufferedProtocol)

    def _enter(self, fn: Callable[..., object], *args: Any) -> None:
        """Run the engine callback fn(*args) as the loop's own code: here when
        no other thread runs the loop (claimed meanwhile), else queued, in
        order, for its next pump. Only the thread serving the connection's
        worker calls this, so the backlog has one writer."""
        loop = self.loop
        if not loop._px_shared:  # one thread runs this loop: nothing to claim
            fn(*args)
            return
        waker = loop._px_waker
        if self.backlog or not waker.claim():
            self.backlog.append((fn, args))
            loop._ready.append(asyncio.Handle(self._run_queued, (), loop, None))
            loop._px_wake()
            return
        prev = events._get_running_loop()
        events._set_running_loop(loop)
        debug = loop._debug
        if debug:  # debug mode's call_soon checks the thread that runs the loop
            prev_thread = loop._thread_id
            loop._thread_id = threading.get_ident()
        try:
            fn(*args)
        finally:
            if debug:
                loop._thread_id = prev_thread
            events._set_running_loop(prev)
            waker.unclaim()

    def _run_queued(self) -> None:
        fn, args = self.backlog.popleft()
        fn(*args)

    def maybe_pause(self) -> None:
        tr = self.tr
        if tr is None:
            return
        unsent = tr.get_write_buffer_size()
        if not tr._writing_paused and unsent > tr._high:
            tr._writing_paused = True
            self.call(self.proto.pause_writing)
        elif tr._writing_paused and unsent <= tr._low:
            tr._writing_paused = False
            self.call(self.proto.resume_writing)
        if tr._writing_paused and not tr._closing:
            self.loop.call_later(0.001, self.maybe_pause)

    # ---- the engine's callbacks ------------------------------------------------------

    def connection_made(self, t: _core.Transport) -> None:
        self._enter(self._made, t)

    def _made(self, t: _core.Transport) -> None:
        server = getattr(self.factory, "_px_server", None)
        if server is not None and server._px_closed:
            t.abort()  # the server was closed: its port takes no more connections
            return
        self.tr = EngineTransport(self.loop, t, self)
        try:
            self.set_proto(self.factory())
        except BaseException as exc:
            t.abort()
            if self.failed is not None:
                self.failed(exc)
                return
            raise
        if server is not None:
            server._px_attach(self.tr)
        self.call(self.proto.connection_made, self.tr)
        if self.made is not None:
            self.made(self)

    def data_received(self, t: _core.Transport, data: bytes) -> None:
        if self.loop._px_shared:
            self._enter(self._data, data)
        else:
            self._data(data)

    def _data(self, data: bytes) -> None:
        proto = self.proto
        loop = self.loop
        if proto is None:
            return
        if self.buffered:  # get_buffer/buffer_updated (asyncio's SSL protocol)
            _call(loop, self, _feed_buffered, proto, data)
            return
        if loop._px_direct and events._get_running_loop() is loop:
            try:  # the hot path: the loop is this thread's and runs
                proto.data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                _failed(loop, self, proto.data_received, exc)
            return
        _call(loop, self, proto.data_received, data)

    def recv_shutdown(self, t: _core.Transport) -> None:
        self._enter(self._shut)

    def _shut(self) -> None:
        if self.proto is not None:
            self.call(self._eof)

    def _eof(self) -> None:
        keep_open = self.proto.eof_received()
        if not keep_open and self.tr is not None:
            self.tr.close()

    def connection_lost(self, t: _core.Transport, exc: BaseException | None) -> None:
        self._enter(self._lost, exc)

    def _lost(self, exc: BaseException | None) -> None:
        tr = self.tr
        if tr is None or self.proto is None:
            return
        tr._closing = True
        if exc is None:
            exc = tr._px_forced
        elif type(exc) is ConnectionError and exc.errno:
            # The errno's own class, as asyncio's transports give it
            # (BrokenPipeError, ConnectionResetError...).
            exc = OSError(exc.errno, exc.strerror)
        server = getattr(self.factory, "_px_server", None)
        if server is not None:
            server._px_detach(tr)
        self.call(self.proto.connection_lost, exc)

    def connection_failed(self, exc: BaseException) -> None:
        self._enter(self._connect_failed, exc)

    def _connect_failed(self, exc: BaseException) -> None:
        if self.failed is not None:
            self.failed(exc)
