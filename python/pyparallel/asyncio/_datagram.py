"""Datagram endpoints of a pyparallel.asyncio loop (create_datagram_endpoint).

The engine carries streams; a datagram socket is watched like any descriptor
the program brings (:mod:`._fdwatch`: readiness posted to the loop by its
helper thread). asyncio's own create_datagram_endpoint resolves the
addresses, makes, binds and connects the socket; it asks the loop for the
transport (:meth:`DatagramNet._make_datagram_transport`), which is this
module's. A readiness reads up to ``_READS_PER_WAKE`` datagrams, so a burst
costs one wake-up of the loop rather than one per datagram. Sends go out at
once when the socket takes them and queue otherwise (flow control as
asyncio's: ``pause_writing`` above the high-water mark).
"""

from __future__ import annotations

import asyncio
import collections
import socket
from asyncio import trsock
from typing import Any

__all__ = ["DatagramNet", "DatagramTransport"]

_MAX_SIZE = 256 * 1024  # the largest datagram read
_READS_PER_WAKE = 64
_HEADER = 8  # counted per queued datagram in the write buffer's size (as asyncio)


class DatagramTransport(asyncio.DatagramTransport, asyncio.Transport):
    """asyncio.DatagramTransport over a non-blocking datagram socket (an
    asyncio.Transport too, as the selector loops' is: code checks for it)."""

    def __init__(self, loop: Any, sock: socket.socket, protocol: asyncio.DatagramProtocol,
                 address: Any = None, waiter: asyncio.Future[None] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(extra)
        self._info: dict[str, Any] = dict(extra or {})
        self._info["socket"] = trsock.TransportSocket(sock)
        try:
            self._info["sockname"] = sock.getsockname()
        except OSError:
            self._info["sockname"] = None
        try:
            self._info["peername"] = sock.getpeername()
        except OSError:
            self._info["peername"] = None
        self._connected = self._info["peername"] is not None
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._address = address
        self._queue: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._queued = 0
        self._closing = False
        self._lost = 0
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._paused = False
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_settle, waiter)

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<DatagramTransport fd={self._fd} {state}>"

    # ---- reading -----------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._closing:
            self._loop.add_reader(self._fd, self._read_ready)

    def _read_ready(self) -> None:
        for _ in range(_READS_PER_WAKE):
            if self._lost or self._closing:
                return
            try:
                data, addr = self._sock.recvfrom(_MAX_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. a refusal reported by a connected socket
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal read error on datagram transport")
                return
            self._protocol.datagram_received(data, addr)

    # ---- writing -----------------------------------------------------------------

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._lost:
            self._lost += 1  # sent after the transport was lost: dropped, as asyncio does
            return
        if not self._queue:
            sent = self._send_one(data, addr)
            if sent is not False:
                return  # sent, or its error reported
            self._loop.add_writer(self._fd, self._send_ready)
        self._queue.append((bytes(data), addr))
        self._queued += len(data) + _HEADER
        self._maybe_pause()

    def _send_one(self, data: Any, addr: Any) -> bool | None:
        """Send one datagram: True when sent, False when the socket is full,
        None when it failed (an OSError goes to error_received: dropped)."""
        try:
            if self._connected:
                self._sock.send(data)
            else:
                self._sock.sendto(data, addr)
            return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal write error on datagram transport")
        return None

    def _send_ready(self) -> None:
        while self._queue:
            data, addr = self._queue[0]
            sent = self._send_one(data, addr)
            if sent is False:
                return  # still full: the writer stays armed
            if self._lost:
                return  # a fatal error closed the transport, its queue with it
            self._queue.popleft()
            self._queued -= len(data) + _HEADER
        self._maybe_resume()
        if self._queue:
            return  # resume_writing queued more: the writer stays armed
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._lost_soon(None)

    def _maybe_pause(self) -> None:
        if not self._paused and self._queued > self._high:
            self._paused = True
            self._call_protocol("pause_writing")

    def _maybe_resume(self) -> None:
        if self._paused and self._queued <= self._low:
            self._paused = False
            self._call_protocol("resume_writing")

    def _call_protocol(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed", "exception": exc,
                "transport": self, "protocol": self._protocol})

    def get_write_buffer_size(self) -> int:
        return self._queued

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause()

    # ---- the rest ----------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._info.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._queue:  # else once the queue is sent (_send_ready)
            self._lost_soon(None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Exception | None) -> None:
        if self._lost:
            return
        if self._queue:
            self._queue.clear()
            self._queued = 0
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._lost_soon(exc)

    def _lost_soon(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost += 1
        self._loop.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler({
                "message": message, "exception": exc, "transport": self,
                "protocol": self._protocol})
        self._force_close(exc if isinstance(exc, Exception) else None)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.cancelled():
        waiter.set_result(None)


class DatagramNet:
    """What asyncio's create_datagram_endpoint asks of the loop (mixed in)."""

    def _make_datagram_transport(self, sock: socket.socket, protocol: asyncio.DatagramProtocol,
                                 address: Any = None,
                                 waiter: asyncio.Future[None] | None = None,
                                 extra: dict[str, Any] | None = None) -> DatagramTransport:
        return DatagramTransport(self, sock, protocol, address, waiter, extra)
