"""An HttpServer with WebSocket routes for the WebSocket suites
(tests/py/websocket).

    python ws_app.py [--workers K] [--memory-budget BYTES]

Routes: /echo (every message back; 2 MiB messages), /limited (messages of
at most 1000 bytes, frames of 500), /proto (subprotocols chat.v2, chat.v1),
/refuse (on_connect answers 403 unless ?ok=1), /ping (pings every 0.2 s, 0.4 s
to answer), /idle (closes after 0.4 s without input), /push (on_open starts a
thread that sends 20 messages and closes with 4001), /cmd (text commands:
"close" -> close(4000, "bye"), "raise" -> an exception, "quick" -> a close
whose answer is awaited 0.3 s), /raise (every message raises, "close" after
close(4000); 5 s to answer a close), /flood (pings every 0.2 s, 0.4 s to
answer, for clients that stop reading), /closes (HTTP: the close codes the server
saw, as JSON), /opened (HTTP: how many WebSockets are open).
Async routes: /aecho (async def per message: awaits, then returns it),
/session (async def per connection: greets, answers each message upper-cased
with its number, "bye" returns (close 1000), "boom" raises (1011); records
the close code it saw in receive()), /slow (a session that takes a message
every 50 ms, max_queue=4: the client must be slowed, nothing lost),
/sessions (HTTP: the close codes sessions saw), /abadopen (an async session
whose on_open raises: closed with 1011, nothing left waiting).
Compression: /echo takes permessage-deflate offers with the defaults;
/plain (echo, compression=None), /ctx (echo; the client keeps its context,
windows of 2**10), /zall (echo; every message compressed, min_size 0),
/zlimited (echo, 1000-byte messages, for inflation bombs), /compression
(text: the WebSocket's compression attribute), /zfanout ("go N": four
threads each send N compressed messages at once, then "done"), /zbig (echo,
32 MiB messages: for the memory budget).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from _common import int_arg, serve

from pyparallel.http import HttpServer, Response, WebSocketClosed, route, websocket

_lock = threading.Lock()
_closes: Counter[str] = Counter()
_open = [0]
_session_closes: Counter[str] = Counter()


def _closed(code: int) -> None:
    with _lock:
        _closes[str(code)] += 1
        _open[0] -= 1


def _opened() -> None:
    with _lock:
        _open[0] += 1


class App(HttpServer):
    @websocket("/echo", max_message=2 << 20, ping_interval=None)
    def echo(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @echo.on_open
    def echo_open(self, ws: Any, request: Any) -> None:
        _opened()

    @echo.on_close
    def echo_close(self, ws: Any, code: int, reason: str) -> None:
        _closed(code)

    @websocket("/plain", compression=None, ping_interval=None)
    def plain(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/ctx", ping_interval=None,
               compression_options={"client_context": True, "window_bits": 10})
    def ctx(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/zall", ping_interval=None, compression_options={"min_size": 0, "level": 9})
    def zall(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/zbig", max_message=32 << 20, ping_interval=None)
    def zbig(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/zlimited", max_message=1000, ping_interval=None)
    def zlimited(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/zfanout", ping_interval=None)
    def zfanout(self, ws: Any, message: str | bytes) -> None:
        n = int(str(message).split()[1])

        def sender(t: int) -> None:
            for i in range(n):
                ws.send(f"thread {t} message {i} " + "payload " * (50 + i % 50))
        threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        ws.send("done")

    @websocket("/compression", ping_interval=None)
    def compression(self, ws: Any, message: str | bytes) -> str:
        return str(ws.compression)

    @websocket("/limited", max_message=1000, max_frame=500)
    def limited(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/proto", subprotocols=("chat.v2", "chat.v1"))
    def proto(self, ws: Any, message: str | bytes) -> str:
        return str(ws.subprotocol)

    @websocket("/refuse")
    def refuse(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @refuse.on_connect
    def refuse_connect(self, request: Any) -> Response | None:
        if request.args.get("ok") == "1":
            return None
        return Response("go away\n", status=403)

    @websocket("/ping", ping_interval=0.2, ping_timeout=0.4)
    def ping(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/idle", idle_timeout=0.4, ping_interval=None)
    def idle(self, ws: Any, message: str | bytes) -> str | bytes:
        return message

    @websocket("/push")
    def push(self, ws: Any, message: str | bytes) -> None:
        return None

    @push.on_open
    def push_open(self, ws: Any, request: Any) -> None:
        def run() -> None:
            for i in range(20):
                ws.send(f"push {i}")
            ws.close(4001, "pushed")
        threading.Thread(target=run).start()

    @websocket("/cmd", close_timeout=0.3)
    def cmd(self, ws: Any, message: str | bytes) -> str | None:
        if message == "close":
            ws.close(4000, "bye")
        elif message == "raise":
            raise RuntimeError("on purpose")
        elif message == "sendafter":
            ws.close()
            try:
                ws.send("too late")
            except ConnectionError:
                return None
            return None
        return None

    @cmd.on_close
    def cmd_close(self, ws: Any, code: int, reason: str) -> None:
        with _lock:
            _closes["cmd " + str(code)] += 1

    @websocket("/raise", close_timeout=5.0)
    def raise_(self, ws: Any, message: str | bytes) -> None:
        if message == "close":
            ws.close(4000, "bye")
        raise RuntimeError("on purpose")

    @raise_.on_close
    def raise_close(self, ws: Any, code: int, reason: str) -> None:
        with _lock:
            _closes["raise " + str(code)] += 1

    @websocket("/flood", ping_interval=0.2, ping_timeout=0.4)
    def flood(self, ws: Any, message: str | bytes) -> None:
        return None

    @flood.on_close
    def flood_close(self, ws: Any, code: int, reason: str) -> None:
        with _lock:
            _closes["flood"] += 1

    @websocket("/aecho", ping_interval=None)
    async def aecho(self, ws: Any, message: str | bytes) -> str | bytes:
        await asyncio.sleep(0.001)
        return message

    @websocket("/session", ping_interval=None)
    async def session(self, ws: Any) -> None:
        await ws.send("hello " + ws.path)
        n = 0
        try:
            while True:
                message = await ws.receive()
                n += 1
                if message == "bye":
                    return
                if message == "boom":
                    raise RuntimeError("session boom")
                text = message if isinstance(message, str) else message.decode()
                await ws.send(f"{n}:{text.upper()}")
        except WebSocketClosed as e:
            with _lock:
                _session_closes[str(e.code)] += 1

    @websocket("/slow", ping_interval=None, max_queue=4)
    async def slow(self, ws: Any) -> None:
        total = 0
        async for message in ws:
            await asyncio.sleep(0.05)
            total += len(message)
            await ws.send(str(total))

    @websocket("/abadopen", ping_interval=None, max_queue=2)
    async def abadopen(self, ws: Any) -> None:
        async for _message in ws:
            pass

    @abadopen.on_open
    def abadopen_open(self, ws: Any, request: Any) -> None:
        raise RuntimeError("on_open boom")

    @route("/sessions")
    def sessions(self, request: Any) -> dict[str, int]:
        with _lock:
            return dict(_session_closes)

    @route("/closes")
    def closes(self, request: Any) -> dict[str, int]:
        with _lock:
            return dict(_closes)

    @route("/opened")
    def opened(self, request: Any) -> int:
        with _lock:
            return _open[0]


if __name__ == "__main__":
    budget = int_arg("--memory-budget", None)
    serve("ws", {"http": App}, workers=int_arg("--workers", 2),
          **({"memory_budget": budget} if budget else {}))
