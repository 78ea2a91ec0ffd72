"""Protocols whose callbacks raise, with or without an exception_handler.

    python raiser.py --handler | --no-handler [--workers K] [--log]

Echo, except: data starting with b"boom" raises in data_received; connecting
to the ``made`` port raises in connection_made; the ``drain`` port raises in
send_complete after its first reply; the ``lost`` port echoes and raises in
connection_lost; with --handler, data starting with
b"double" makes the handler itself raise. Handlers print
``HANDLER syscall ExcType message transport-type traceback-type`` and send
b"handled\\n" to the peer. Without a handler, run(raise_errors=True)
re-raises in the main thread; the server prints ``RAISED ...`` and calls run()
again. With --log, run() keeps its default: what no handler takes is logged on
stderr and run() goes on serving.
"""

from __future__ import annotations

import sys

from _common import int_arg, say, serve


class Boom(Exception):
    pass


class Echo:
    def data_received(self, transport, data):
        if data.startswith(b"boom"):
            raise Boom("boom in data_received")
        if data.startswith(b"double"):
            raise Boom("first of two")
        if data.startswith(b"badtype"):
            return 12345  # not sendable
        return data


class Made:
    def connection_made(self, transport):
        raise Boom("boom in connection_made")


class Drain:
    def connection_made(self, transport):
        return b"first\n"

    def send_complete(self, transport, send_id):
        raise Boom("boom in send_complete")


class Lost(Echo):
    def connection_lost(self, transport, exc):
        raise Boom("boom in connection_lost")


class Handler:
    def exception_handler(self, transport, syscall, exc_info):
        typ, exc, tb = exc_info
        say(f"HANDLER {syscall} {typ.__name__} {exc} {type(transport).__name__} "
            f"{type(tb).__name__} {exc is exc_info[1] and isinstance(exc, typ)}")
        if str(exc) == "first of two":
            raise RuntimeError("the handler failed too")
        transport.send(b"handled\n")


class EchoH(Handler, Echo):
    pass


class MadeH(Handler, Made):
    pass


class DrainH(Handler, Drain):
    pass


if __name__ == "__main__":
    if "--handler" in sys.argv:
        protocols = {"echo": EchoH, "made": MadeH, "drain": DrainH}
    else:
        protocols = {"echo": Echo, "made": Made, "drain": Drain, "lost": Lost}
    serve("raiser", protocols, workers=int_arg("--workers", 1),
          rerun_after_error="--log" not in sys.argv)
