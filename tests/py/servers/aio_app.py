"""asyncio on the workers (pyparallel.asyncio): async protocol callbacks and
HttpServer handlers, and a line protocol that checks the worker's loop.

    python aio_app.py [--workers K]

Ports:
  aecho   async data_received: sleeps 10 ms on the loop, then echoes
  araise  async data_received that raises: the connection closes
  loop    one command per line, one answer line each:
          same       the running loop inside a task is worker_loop(), a WorkerLoop
          order      call_soon runs in order, after the callback that scheduled it
          later      call_later(0.05) fires after >= 50 ms; call_at ordering
          threadsafe call_soon_threadsafe from a plain thread wakes the worker
          executor   run_in_executor runs off the worker thread
          gai        getaddrinfo("localhost") runs off the worker thread
          handler    an exception in a callback goes to the loop's exception handler
          cancel     a cancelled call_later never runs
          worker     the worker's index (coroutines stay on their worker)
          unix       starts (once) a Unix socket server on this worker's loop,
                     answers its path; each of its connections answers a line
                     with the index of the worker whose loop serves it
  http    /fast (async, no await), /sleep (awaits 50 ms), /boom (raises after
          an await), /sync (a plain handler next to them), /yield (how long
          one await's resumption took, ms)
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
import time
from typing import Any

from _common import int_arg, serve

import pyparallel as px
from pyparallel.asyncio import WorkerLoop, worker_loop
from pyparallel.http import HttpServer, route


class AEcho:
    async def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        await asyncio.sleep(0.01)
        return data


class ARaise:
    async def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        await asyncio.sleep(0)
        raise ValueError("async boom")

    def exception_handler(self, transport: px.Transport, syscall: str, exc_info: Any) -> None:
        transport.send(f"HANDLED {syscall} {exc_info[1]!r}\n".encode())


async def check(cmd: str) -> str:
    loop = asyncio.get_running_loop()
    me = threading.get_ident()
    if cmd == "same":
        return str(loop is worker_loop() and isinstance(loop, WorkerLoop) and loop.is_running())
    if cmd == "order":
        seen: list[int] = []
        for i in range(5):
            loop.call_soon(seen.append, i)
        early = list(seen)
        await asyncio.sleep(0)
        return f"{early} {seen}"
    if cmd == "later":
        fut = loop.create_future()
        order: list[str] = []
        t0 = loop.time()
        loop.call_at(t0 + 0.06, order.append, "c")
        loop.call_later(0.05, lambda: (order.append("b"), fut.set_result(loop.time() - t0)))
        loop.call_later(0.02, order.append, "a")
        waited = await fut
        await asyncio.sleep(0.03)
        return f"{waited >= 0.05} {''.join(order)}"
    if cmd == "threadsafe":
        fut = loop.create_future()
        t = threading.Thread(target=lambda: (time.sleep(0.05),
                                             loop.call_soon_threadsafe(fut.set_result, "woken")))
        t.start()
        r = await fut
        t.join()
        return str(r)
    if cmd == "executor":
        ident = await loop.run_in_executor(None, threading.get_ident)
        return str(ident != me)
    if cmd == "gai":
        infos = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        return str(bool(infos))
    if cmd == "handler":
        got: list[str] = []
        loop.set_exception_handler(lambda lp, ctx: got.append(repr(ctx.get("exception"))))
        try:
            loop.call_soon(lambda: 1 / 0)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        finally:
            loop.set_exception_handler(None)
        return " ".join(got)
    if cmd == "cancel":
        ran: list[int] = []
        h = loop.call_later(0.01, ran.append, 1)
        h.cancel()
        await asyncio.sleep(0.05)
        return str(ran)
    if cmd == "worker":
        return str(worker_loop().worker)
    if cmd == "unix":
        return await _unix_server(loop)
    return "unknown"


_unix_path: list[str] = []


class _WhichWorker(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"%d\n" % worker_loop().worker)


async def _unix_server(loop: asyncio.AbstractEventLoop) -> str:
    if not _unix_path:
        path = os.path.join(tempfile.mkdtemp(prefix="px-unix-"), "s.sock")
        await loop.create_unix_server(_WhichWorker, path)
        _unix_path.append(path)
    return _unix_path[0]


class LoopChecks:
    line_mode = True

    def lines_received(self, transport: px.Transport, lines: list[bytes]) -> None:
        for line in lines:
            task = worker_loop().create_task(check(line.decode()))
            task.add_done_callback(lambda t: transport.send(
                (t.result() if t.exception() is None else repr(t.exception())).encode() + b"\n"))


class App(HttpServer):
    @route("/fast")
    async def fast(self, request: Any) -> dict[str, Any]:
        return {"fast": True, "worker": worker_loop().worker}

    @route("/sleep")
    async def sleep(self, request: Any) -> bytes:
        await asyncio.sleep(0.05)
        return b"slept"

    @route("/yield")
    async def yield_once(self, request: Any) -> bytes:
        # how long the task waited to resume: the handler's wait must hand
        # the worker (and its loop) off at once
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        loop.call_soon(woken.set_result, None)  # resumed only by a turn of the loop
        t0 = time.monotonic()
        await woken
        return b"%.3f" % ((time.monotonic() - t0) * 1000)

    @route("/boom")
    async def boom(self, request: Any) -> bytes:
        await asyncio.sleep(0.001)
        raise RuntimeError("async handler boom")

    @route("/sync")
    def sync(self, request: Any) -> bytes:
        return b"sync"


if __name__ == "__main__":
    serve("aio", {"aecho": AEcho, "araise": ARaise, "loop": LoopChecks, "http": App},
          workers=int_arg("--workers", 1))
