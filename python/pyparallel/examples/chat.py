"""Chat: every line a client sends goes to every connected client, on every
worker, in the order the server received it from that client.

    python -m pyparallel.examples.chat --port 8023 [--workers K]
        [--max-line BYTES] [--max-backlog BYTES] [--no-notices]

Lines end with LF (a CR before it is dropped) and are relayed as sent, the
sender included. The server's own lines start with ``* ``: on connecting a
client is told ``* welcome ID worker W`` (its connection id and the worker
serving it), then, unless ``--no-notices``, everyone sees ``* ID joined`` and
``* ID left`` (of two clients joining at the same moment, at least one sees
the other's notice: a client sees those who join after it is in the room).
A line longer than ``--max-line`` is answered ``* error: line longer than N
bytes`` and the connection is closed. A client that does not
keep up with what is said is dropped (see ``_fanout``: ``--max-backlog``).

Fan-out: the room is a tuple of transports replaced on join and leave, so a
message is sent by one worker to every client without a lock; the sends to
clients of other workers are posted to those workers by the transports.
"""

from __future__ import annotations

import argparse
from types import TracebackType
from typing import Any

import pyparallel as px

from . import _fanout
from ._cli import serve

__all__ = ["Chat", "Limits", "ROOM", "main"]

ROOM = _fanout.Members()


class Limits(_fanout.Limits):
    name = "chat"


class Chat:
    """Chat: every line a client sends goes to every connected client."""

    line_mode = True
    max_line_length = _fanout.DEFAULT_MAX_LINE
    notices = True

    def connection_made(self, transport: px.Transport) -> None:
        transport.send(b"* welcome %d worker %d\n" % (transport.id, transport.worker))
        ROOM.add(transport)
        if self.notices:
            _fanout.broadcast(ROOM.members, b"* %d joined\n" % transport.id, Limits, ROOM.discard)

    def lines_received(self, transport: px.Transport, lines: list[bytes]) -> None:
        # One send per client for all the lines of this read, in their order.
        _fanout.broadcast(ROOM.members, b"\n".join(lines) + b"\n", Limits, ROOM.discard)

    def connection_lost(self, transport: px.Transport, exc: BaseException | None) -> None:
        ROOM.remove(transport)
        if self.notices:
            _fanout.broadcast(ROOM.members, b"* %d left\n" % transport.id, Limits, ROOM.discard)

    def exception_handler(self, transport: px.Transport, syscall: str,
                          exc_info: tuple[type[BaseException], BaseException,
                                          TracebackType | None]) -> None:
        # The engine closes the connection after this (what is sent here first).
        _fanout.too_long(transport, exc_info[1], b"* error: ", Limits)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    _fanout.add_arguments(parser)
    parser.add_argument("--no-notices", action="store_true",
                        help="no '* ID joined' / '* ID left' lines")


def _configure(args: argparse.Namespace) -> dict[str, Any]:
    Chat.notices = not args.no_notices
    return _fanout.engine_options(args, Limits, Chat)


def main(argv: list[str] | None = None) -> None:
    serve("chat", Chat, 8023, argv, add_arguments=_add_arguments, configure=_configure)


if __name__ == "__main__":
    main()
