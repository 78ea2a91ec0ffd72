"""Publish/subscribe: clients subscribe to topics and publish to them; each
message goes to every subscriber of its topic, on every worker.

    python -m pyparallel.examples.pubsub --port 6380 [--workers K]
        [--max-line BYTES] [--max-backlog BYTES]

The protocol is one command a line (LF or CRLF), words split on spaces, the
command's name in any case; each reply is one line (the text shape of Redis'
pub/sub)::

    SUBSCRIBE topic [topic ...]    subscribe TOPIC COUNT        (one a topic)
    UNSUBSCRIBE [topic ...]        unsubscribe TOPIC COUNT      (no topic: all;
                                   unsubscribe - 0 when there were none)
    PUBLISH topic message text     published TOPIC RECEIVERS
                                   and each subscriber gets: message TOPIC message text
    PING [text]                    pong [text]
    INFO                           info id ID worker W subscriptions COUNT
    QUIT                           bye, then the server closes

COUNT is how many topics this client is subscribed to, RECEIVERS how many
subscribers the message was sent to. A malformed or unknown command is
answered ``error ...`` and the connection stays; a line longer than
``--max-line`` is answered ``error line longer than N bytes`` and closed. A
subscriber that does not keep up is dropped (``--max-backlog``; see
``_fanout``). Messages come after the ``subscribe`` reply of their topic and,
once an ``unsubscribe`` reply has been sent, none published after it does.

Fan-out: each topic maps to a tuple of transports replaced on (un)subscribe,
so a publisher reads its topic's subscribers without a lock and sends to
each; the sends to clients of other workers are posted to those workers.
"""

from __future__ import annotations

import argparse
import threading
from types import TracebackType
from typing import Any

import pyparallel as px

from . import _fanout
from ._cli import serve

__all__ = ["PubSub", "Limits", "Topics", "TOPICS", "main"]


class Limits(_fanout.Limits):
    name = "pubsub"


class Topics:
    """topic -> tuple of subscribed transports: publishers read without a
    lock; subscribe and unsubscribe replace a topic's tuple under one lock."""

    def __init__(self) -> None:
        self._by_topic: dict[bytes, tuple[px.Transport, ...]] = {}
        self._lock = threading.Lock()

    def subscribers(self, topic: bytes) -> tuple[px.Transport, ...]:
        return self._by_topic.get(topic, ())

    def subscribe(self, topic: bytes, transport: px.Transport) -> None:
        with self._lock:
            current = self._by_topic.get(topic, ())
            if transport not in current:
                self._by_topic[topic] = (*current, transport)

    def unsubscribe(self, topic: bytes, transport: px.Transport) -> None:
        with self._lock:
            current = self._by_topic.get(topic, ())
            if transport in current:
                rest = tuple(t for t in current if t is not transport)
                if rest:
                    self._by_topic[topic] = rest
                else:
                    del self._by_topic[topic]

    def __len__(self) -> int:
        return len(self._by_topic)


TOPICS = Topics()


class PubSub:
    """Publish/subscribe over a line protocol (SUBSCRIBE, UNSUBSCRIBE, PUBLISH)."""

    line_mode = True
    max_line_length = _fanout.DEFAULT_MAX_LINE

    def connection_made(self, transport: px.Transport) -> None:
        self.topics: set[bytes] = set()

    def lines_received(self, transport: px.Transport, lines: list[bytes]) -> None:
        for line in lines:
            words = line.split(b" ", 1)
            command = words[0].upper()
            rest = words[1] if len(words) > 1 else b""
            handler = _COMMANDS.get(command)
            if handler is None:
                reply = b"error unknown command '%s'\n" % command[:64]
            else:
                reply = handler(self, transport, rest)
            if reply:
                transport.send(reply)
            if command == b"QUIT":
                transport.close()
                return

    def subscribe(self, transport: px.Transport, rest: bytes) -> bytes:
        topics = rest.split()
        if not topics:
            return b"error SUBSCRIBE needs a topic\n"
        for topic in topics:
            # The reply goes first: messages of the topic come after it.
            self.topics.add(topic)
            transport.send(b"subscribe %s %d\n" % (topic, len(self.topics)))
            TOPICS.subscribe(topic, transport)
        return b""

    def unsubscribe(self, transport: px.Transport, rest: bytes) -> bytes:
        topics = rest.split() or sorted(self.topics)
        if not topics:
            return b"unsubscribe - 0\n"
        replies = []
        for topic in topics:
            TOPICS.unsubscribe(topic, transport)
            self.topics.discard(topic)
            replies.append(b"unsubscribe %s %d\n" % (topic, len(self.topics)))
        return b"".join(replies)

    def publish(self, transport: px.Transport, rest: bytes) -> bytes:
        words = rest.split(b" ", 1)
        if not words[0]:
            return b"error PUBLISH needs a topic\n"
        topic = words[0]
        text = words[1] if len(words) > 1 else b""
        receivers = _fanout.broadcast(TOPICS.subscribers(topic),
                                      b"message %s %s\n" % (topic, text), Limits)
        return b"published %s %d\n" % (topic, receivers)

    def ping(self, transport: px.Transport, rest: bytes) -> bytes:
        return b"pong %s\n" % rest if rest else b"pong\n"

    def info(self, transport: px.Transport, rest: bytes) -> bytes:
        return b"info id %d worker %d subscriptions %d\n" % (transport.id, transport.worker,
                                                             len(self.topics))

    def quit(self, transport: px.Transport, rest: bytes) -> bytes:
        return b"bye\n"

    def connection_lost(self, transport: px.Transport, exc: BaseException | None) -> None:
        for topic in self.topics:
            TOPICS.unsubscribe(topic, transport)
        self.topics.clear()

    def exception_handler(self, transport: px.Transport, syscall: str,
                          exc_info: tuple[type[BaseException], BaseException,
                                          TracebackType | None]) -> None:
        # The engine closes the connection after this (what is sent here first).
        _fanout.too_long(transport, exc_info[1], b"error ", Limits)


_COMMANDS = {
    b"SUBSCRIBE": PubSub.subscribe,
    b"UNSUBSCRIBE": PubSub.unsubscribe,
    b"PUBLISH": PubSub.publish,
    b"PING": PubSub.ping,
    b"INFO": PubSub.info,
    b"QUIT": PubSub.quit,
}


def _configure(args: argparse.Namespace) -> dict[str, Any]:
    return _fanout.engine_options(args, Limits, PubSub)


def main(argv: list[str] | None = None) -> None:
    serve("pubsub", PubSub, 6380, argv, add_arguments=_fanout.add_arguments,
          configure=_configure)


if __name__ == "__main__":
    main()
