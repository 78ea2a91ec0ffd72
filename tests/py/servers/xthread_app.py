"""Transports used from threads that do not own them (two workers).

    python xthread_app.py [--workers K]

chat    every line a client sends goes to every client (all workers); a new
        client is greeted with ``HELLO worker``.
pair    greets with ``HELLO worker id``; a client that sends ``PEER id`` is
        paired with that connection (answered ``PAIRED``) and from then on
        what either sends goes to the other, as a proxy's two sides.
hub     sends on its own transport from elsewhere, one line command each:
        ``main`` (the main thread), ``work`` (a work callback), ``timer`` (a
        timer callback), ``thread`` (a plain thread) each answer ``from X``;
        ``pause`` pauses reading from a plain thread, which then sends
        ``paused id``; ``resume id`` resumes that connection from this one's
        callback and answers ``resumed``; ``owner`` sends from the connection's own callback and prints
        ``OWNER send=result wait=-1:what a negative wait gave``;
        ``after`` closes from a plain thread, then tries again and prints
        ``AFTER ...`` with what each call gave, and ``AFTER-GONE ...`` once
        the connection is gone; ``flood`` sends 64 KiB
        chunks from a plain thread until one is refused, prints ``REFUSED
        taken unsent``, then sends ``END`` waiting for room and prints
        ``RESUMED result``.
"""

from __future__ import annotations

import threading

from _common import int_arg, say, serve

import pyparallel as px

_lock = threading.Lock()
_chat: dict[int, px.Transport] = {}
_pairs: dict[int, px.Transport] = {}
_hubs: dict[int, px.Transport] = {}


class Chat:
    line_mode = True

    def connection_made(self, transport: px.Transport) -> None:
        with _lock:
            _chat[transport.id] = transport
        transport.send(b"HELLO %d\n" % transport.worker)

    def lines_received(self, transport: px.Transport, lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines)
        with _lock:
            targets = list(_chat.values())
        for target in targets:
            try:
                if not target.send(data, wait=30):
                    say(f"LOST {target.id}")
            except ConnectionError:
                pass  # that client left meanwhile

    def connection_lost(self, transport: px.Transport, exc: object) -> None:
        with _lock:
            _chat.pop(transport.id, None)


class Pair:
    def connection_made(self, transport: px.Transport) -> None:
        self.peer: px.Transport | None = None
        with _lock:
            _pairs[transport.id] = transport
        transport.send(b"HELLO %d %d\n" % (transport.worker, transport.id))

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        if self.peer is None:
            peer_id = int(data.split()[1])
            with _lock:
                self.peer = _pairs[peer_id]
            self.peer.protocol.peer = transport
            transport.send(b"PAIRED\n")
            return
        if not self.peer.send(data, wait=30):
            say("RELAY-REFUSED")
            transport.close()

    def connection_lost(self, transport: px.Transport, exc: object) -> None:
        with _lock:
            _pairs.pop(transport.id, None)
        if self.peer is not None:
            self.peer.close()  # the other side goes too, from this worker


def _calls_after_close(transport: px.Transport) -> str:
    results = [f"close={transport.close()!r}", f"closed={transport.closed}"]
    for name, call in (("send", lambda: transport.send(b"late\n")),
                       ("pause", transport.pause_reading)):
        try:
            results.append(f"{name}={call()!r}")
        except ConnectionError as exc:
            results.append(f"{name}={type(exc).__name__}")
    return " ".join(results)


def _after(transport: px.Transport) -> None:
    transport.close()
    say("AFTER " + _calls_after_close(transport))
    # Once the connection is freed the same calls answer the same.
    if transport.protocol.lost.wait(10):
        try:
            stats = f"stats={px.socket_stats(transport)['state']}"
        except ConnectionError as exc:
            stats = f"stats={type(exc).__name__}"
        say("AFTER-GONE " + _calls_after_close(transport) + f" abort={transport.abort()!r} "
            + stats)


def _post_lines(transport: px.Transport, posted: threading.Event) -> None:
    for i in range(300):
        transport.send(b"p %d\n" % i)
    posted.set()


def _peer(transport: px.Transport) -> None:
    say(f"PEER {transport.peername}")
    stats = px.socket_stats(transport)
    say(f"SOCKSTATS {stats['state']} {stats['engine_unsent']}")


def _pause(transport: px.Transport) -> None:
    transport.pause_reading()
    # Posted after the pause by the same thread: applied after it.
    transport.send(b"paused %d\n" % transport.id)


def _flood(transport: px.Transport) -> None:
    chunk = b"f" * 65536
    taken = 0
    while transport.send(chunk):
        taken += len(chunk)
        if taken > 1 << 30:
            say("REFUSED never")
            return
    say(f"REFUSED {taken} {transport.unsent}")
    resumed = transport.send(b"END\n", wait=60)
    say(f"RESUMED {resumed}")


class Hub:
    line_mode = True

    def connection_made(self, transport: px.Transport) -> None:
        self.lost = threading.Event()
        with _lock:
            _hubs[transport.id] = transport

    def connection_lost(self, transport: px.Transport, exc: object) -> None:
        with _lock:
            _hubs.pop(transport.id, None)
        self.lost.set()

    def lines_received(self, transport: px.Transport, lines: list[bytes]) -> bytes | None:
        for line in lines:
            if line == b"main":
                px.call_from_main_thread(transport.send, b"from main\n")
            elif line == b"work":
                px.submit_work(transport.send, (b"from work\n",))
            elif line == b"timer":
                px.timer(0.01, lambda: transport.send(b"from timer\n"))
            elif line == b"thread":
                threading.Thread(target=transport.send, args=(b"from thread\n",)).start()
            elif line == b"after":
                threading.Thread(target=_after, args=(transport,)).start()
            elif line == b"pause":
                threading.Thread(target=_pause, args=(transport,)).start()
            elif line.startswith(b"resume "):
                with _lock:
                    other = _hubs[int(line.split()[1])]
                other.resume_reading()
                transport.send(b"resumed\n")
            elif line == b"overtake":
                posted = threading.Event()
                threading.Thread(target=_post_lines, args=(transport, posted)).start()
                posted.wait(30)
                transport.send(b"owner-send\n")
                return b"owner-return\n"
            elif line == b"peer":
                threading.Thread(target=_peer, args=(transport,)).start()
            elif line == b"owner":
                try:
                    transport.send(b"", wait=-1)
                    bad_wait = "accepted"
                except ValueError:
                    bad_wait = "ValueError"
                taken = transport.send(b"from owner\n")
                say(f"OWNER send={taken!r} wait=-1:{bad_wait}")
            elif line == b"flood":
                threading.Thread(target=_flood, args=(transport,)).start()


if __name__ == "__main__":
    serve("xthread", {"chat": Chat, "pair": Pair, "hub": Hub}, workers=int_arg("--workers", 2))
