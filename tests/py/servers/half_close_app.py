"""Half-close (shutdown_send, recv_shutdown, send_shutdown) on two workers.

    python half_close_app.py [--workers K]

answer   echoes; when the client shuts its side (recv_shutdown) answers
         ``bye`` and shuts its own: the client reads everything, then EOF.
first    sends ``data`` and shuts its side at once; a send after that
         prints ``REFUSED Type``; keeps receiving (``GOT n`` per chunk)
         until the client shuts its side too.
plain    echoes, without recv_shutdown: the client's end closes it.
thread   a plain thread sends ``posted`` and shuts the side, then tries
         to send again and prints ``THREAD-REFUSED Type``.
held     reads nothing for its first second (paused) and shuts its side at
         once; then takes all the client sent and its end: prints
         ``HELD n`` with the bytes it got, and closes.
lagging  on its first input waits 0.3 s (the rest and the client's end
         arrive meanwhile), pauses reading, sends 16 MiB and shuts its
         side, resumes 2 s later; prints ``HELD n`` as ``held`` does.
filerace on its first input has a plain thread shut its side while the
         callback waits, then sends a file: ``FILE-REFUSED Type`` (the
         file must not overtake the shutdown); closes at the client's end.
factory  a factory's protocol: greets ``hi``, prints ``COMPLETE`` from
         send_complete, and answers the client's end as ``answer`` does.

Every protocol prints ``SENT-SHUT port`` from send_shutdown, ``EOF port``
from recv_shutdown and ``LOST port exc`` from connection_lost.
"""

from __future__ import annotations

import threading
import time

from _common import int_arg, say, serve

import pyparallel as px


class _Reporting:
    def send_shutdown(self, transport: px.Transport) -> None:
        say(f"SENT-SHUT {transport.protocol.name}")

    def connection_lost(self, transport: px.Transport, exc: object) -> None:
        say(f"LOST {transport.protocol.name} {exc}")


class Answer(_Reporting):
    name = "answer"

    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        return data

    def recv_shutdown(self, transport: px.Transport) -> None:
        say(f"EOF {self.name}")
        transport.send(b"bye")
        transport.shutdown_send()


class First(_Reporting):
    name = "first"

    def connection_made(self, transport: px.Transport) -> None:
        transport.send(b"data")
        transport.shutdown_send()
        transport.shutdown_send()  # twice: nothing more
        try:
            transport.send(b"late")
        except ConnectionError as e:
            say(f"REFUSED {type(e).__name__}")

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        say(f"GOT {data.decode()}")

    def recv_shutdown(self, transport: px.Transport) -> None:
        say("EOF first")


class Plain(_Reporting):
    name = "plain"

    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        return data


class Thread(_Reporting):
    name = "thread"

    def connection_made(self, transport: px.Transport) -> None:
        def run() -> None:
            transport.send(b"posted")
            transport.shutdown_send()
            try:
                transport.send(b"late")
            except ConnectionError as e:
                say(f"THREAD-REFUSED {type(e).__name__}")
        threading.Thread(target=run).start()

    def recv_shutdown(self, transport: px.Transport) -> None:
        say("EOF thread")


class Held(_Reporting):
    name = "held"

    def connection_made(self, transport: px.Transport) -> None:
        self.got = 0
        transport.pause_reading()
        transport.shutdown_send()
        threading.Timer(1.0, transport.resume_reading).start()

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        self.got += len(data)

    def recv_shutdown(self, transport: px.Transport) -> None:
        say(f"HELD {self.got}")
        transport.close()


class Lagging(Held):
    name = "lagging"

    def connection_made(self, transport: px.Transport) -> None:
        self.got = 0

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        if self.got == 0:
            time.sleep(0.3)
            transport.pause_reading()
            transport.send(b"y" * (16 << 20))
            transport.shutdown_send()
            threading.Timer(2.0, transport.resume_reading).start()
        self.got += len(data)


class FileRace(_Reporting):
    name = "filerace"

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        asked = threading.Event()

        def other() -> None:
            transport.shutdown_send()  # posted: waits for this callback
            asked.set()
        threading.Thread(target=other).start()
        asked.wait(10)
        try:
            transport.send(px.sendfile(__file__))
        except ConnectionError as e:
            say(f"FILE-REFUSED {type(e).__name__}")

    def recv_shutdown(self, transport: px.Transport) -> None:
        transport.close()


class Made(Answer):
    name = "factory"

    def connection_made(self, transport: px.Transport) -> bytes:
        return b"hi"

    def send_complete(self, transport: px.Transport, send_id: int) -> None:
        say("COMPLETE")


if __name__ == "__main__":
    serve("half_close", {"answer": Answer, "first": First, "plain": Plain, "thread": Thread,
                         "held": Held, "lagging": Lagging, "filerace": FileRace,
                         "factory": lambda: Made()},  # type: ignore[dict-item]
          workers=int_arg("--workers", 2))
