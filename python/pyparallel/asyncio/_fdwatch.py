"""add_reader/add_writer and the sock_* coroutines of a pyparallel.asyncio loop.

The engine watches its own connections; a descriptor the program brings (a
socket of its own, a pipe) is watched by one helper thread per loop with an
epoll selector. Readiness is posted to the loop (call_soon_threadsafe) and the
descriptor is not watched for that event again until its callback has run, so
the callbacks are level-triggered, once per readiness, as asyncio's.
"""

from __future__ import annotations

import asyncio
import errno
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any


def _fd_of(fileobj: Any) -> int:
    fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _Watcher:
    """The helper thread of one loop."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        # fd -> [reader handle, writer handle], and what is armed in the selector
        self.handles: dict[int, list[asyncio.Handle | None]] = {}
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="pyparallel-asyncio-fds",
                                       daemon=True)
        self.thread.start()

    def _arm(self, fd: int, pending: int = 0) -> None:
        """Watch fd for the events it has handles for, less those pending."""
        hs = self.handles.get(fd)
        mask = 0
        if hs is not None:
            if hs[0] is not None and not pending & selectors.EVENT_READ:
                mask |= selectors.EVENT_READ
            if hs[1] is not None and not pending & selectors.EVENT_WRITE:
                mask |= selectors.EVENT_WRITE
        try:
            key = self.sel.get_key(fd)
        except KeyError:
            key = None
        if key is None and mask:
            self.sel.register(fd, mask, 0)
        elif key is not None and not mask:
            self.sel.unregister(fd)
        elif key is not None and key.events != mask:
            self.sel.modify(fd, mask, key.data)

    def set(self, fd: int, which: int, handle: asyncio.Handle | None) -> bool:
        with self.lock:
            hs = self.handles.setdefault(fd, [None, None])
            old = hs[which]
            if old is not None:
                old.cancel()
            hs[which] = handle
            if hs == [None, None]:
                del self.handles[fd]
            self._arm(fd)
        self.wake_w.send(b"\0")
        return old is not None

    def _run(self) -> None:
        while not self.stopped:
            for key, mask in self.sel.select():
                if key.fileobj is self.wake_r:
                    try:
                        while self.wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                with self.lock:
                    self._arm(key.fd, mask)  # until the callbacks have run
                self.loop.call_soon_threadsafe(self._fire, key.fd, mask)

    def _fire(self, fd: int, mask: int) -> None:
        for which, bit in ((0, selectors.EVENT_READ), (1, selectors.EVENT_WRITE)):
            if mask & bit:
                hs = self.handles.get(fd)
                h = hs[which] if hs else None
                if h is not None and not h._cancelled:
                    h._run()
        with self.lock:
            self._arm(fd)

    def close(self) -> None:
        self.stopped = True
        self.wake_w.send(b"\0")
        self.thread.join(5)
        self.sel.close()
        self.wake_r.close()
        self.wake_w.close()


class FdWatch:
    """The methods of a loop that watch descriptors (mixed into the loop)."""

    _px_watcher: _Watcher | None = None

    def _px_watch(self, fd: int, which: int, handle: asyncio.Handle | None) -> bool:
        w = self._px_watcher
        if w is None:
            if handle is None:
                return False
            w = self._px_watcher = _Watcher(self)
        return w.set(fd, which, handle)

    def _px_watch_close(self) -> None:
        w, self._px_watcher = self._px_watcher, None
        if w is not None:
            w.close()

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        self._check_closed()  # type: ignore[attr-defined]
        self._px_watch(_fd_of(fd), 0, asyncio.Handle(callback, args, self, None))  # type: ignore[arg-type]

    def remove_reader(self, fd: Any) -> bool:
        return self._px_watch(_fd_of(fd), 0, None)

    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        self._check_closed()  # type: ignore[attr-defined]
        self._px_watch(_fd_of(fd), 1, asyncio.Handle(callback, args, self, None))  # type: ignore[arg-type]

    def remove_writer(self, fd: Any) -> bool:
        return self._px_watch(_fd_of(fd), 1, None)

    # The names asyncio's own pipe and subprocess transports call.
    def _add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        self.add_reader(fd, callback, *args)

    def _remove_reader(self, fd: Any) -> bool:
        return self.remove_reader(fd)

    def _add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        self.add_writer(fd, callback, *args)

    def _remove_writer(self, fd: Any) -> bool:
        return self.remove_writer(fd)

    # ---- sock_* ----------------------------------------------------------------------

    async def _px_wait(self, sock: socket.socket, write: bool, attempt: Callable[[], Any],
                       now: bool = True) -> Any:
        """attempt() until it stops raising BlockingIOError, on readiness (and
        first at once, when now)."""
        if sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        if now:
            try:
                return attempt()
            except (BlockingIOError, InterruptedError):
                pass
        loop: Any = self
        fut: asyncio.Future[Any] = loop.create_future()
        fd = sock.fileno()

        def ready() -> None:
            if fut.done():
                return
            try:
                result = attempt()
            except (BlockingIOError, InterruptedError):
                return
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        (self.add_writer if write else self.add_reader)(fd, ready)
        try:
            return await fut
        finally:
            (self.remove_writer if write else self.remove_reader)(fd)

    async def sock_recv(self, sock: socket.socket, nbytes: int) -> bytes:
        data: bytes = await self._px_wait(sock, False, lambda: sock.recv(nbytes))
        return data

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        n: int = await self._px_wait(sock, False, lambda: sock.recv_into(buf))
        return n

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        r: tuple[bytes, Any] = await self._px_wait(sock, False, lambda: sock.recvfrom(bufsize))
        return r

    async def sock_recvfrom_into(self, sock: socket.socket, buf: Any,
                                 nbytes: int = 0) -> tuple[int, Any]:
        r: tuple[int, Any] = await self._px_wait(
            sock, False, lambda: sock.recvfrom_into(buf, nbytes or len(buf)))
        return r

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        n: int = await self._px_wait(sock, True, lambda: sock.sendto(data, address))
        return n

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        view = memoryview(data).cast("B")
        sent = 0

        def attempt() -> int:
            nonlocal sent
            while sent < len(view):
                sent += sock.send(view[sent:])
            return sent

        await self._px_wait(sock, True, attempt)

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        def attempt() -> tuple[socket.socket, Any]:
            conn, addr = sock.accept()
            conn.setblocking(False)
            return conn, addr
        r: tuple[socket.socket, Any] = await self._px_wait(sock, False, attempt)
        return r

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        if sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            loop: Any = self
            infos = await loop.getaddrinfo(*address[:2], family=sock.family,
                                           type=sock.type, proto=sock.proto)
            address = infos[0][4]
        err = sock.connect_ex(address)
        if err == 0:
            return
        if err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EINTR):
            raise OSError(err, f"Connect call failed {address}")

        def attempt() -> None:
            e = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e in (errno.EINPROGRESS, errno.EALREADY):
                raise BlockingIOError
            if e:
                raise OSError(e, f"Connect call failed {address}")

        # Not before the socket is writable: SO_ERROR is 0 while the connect is pending.
        await self._px_wait(sock, True, attempt, now=False)
