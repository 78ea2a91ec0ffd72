"""What the chat and pub/sub examples share: a set of connections every worker
reads without a lock, the fan-out of one message to it with the slow-consumer
policy, and their command-line options.

Slow consumers. A client that reads more slowly than messages arrive would
make the server buffer for it without bound; instead each client has an
output limit (``--max-backlog``, default 1 MiB, the engine's send high-water
mark): a send that finds the client's unsent output over it -- refused by
the engine when made from another worker, or leaving the backlog over it on
the client's own worker -- drops the client. It is aborted (its backlog
discarded: a graceful close would wait for the same stuck reader) and the
server logs ``NAME: dropped client ID ...`` (on stdout, as the banner). This is Redis' pub/sub
``client-output-buffer-limit`` hard limit; the others go on receiving.
"""

from __future__ import annotations

import argparse
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import pyparallel as px

__all__ = ["Members", "Limits", "broadcast", "drop", "too_long", "add_arguments", "engine_options",
           "DEFAULT_MAX_BACKLOG", "DEFAULT_MAX_LINE"]

DEFAULT_MAX_BACKLOG = 1 << 20
DEFAULT_MAX_LINE = 4096


class Limits:
    """The per-client limits one server applies (set once, from the command line)."""

    name = "fanout"
    max_backlog = DEFAULT_MAX_BACKLOG
    max_line = DEFAULT_MAX_LINE
    dropped = 0  # clients dropped over the output limit (a statistic; races only undercount)


class Members:
    """A set of transports, read by every worker without a lock.

    Readers (every message sent) take ``members``, an immutable tuple, with
    one attribute read. Writers (joins and leaves, rare next to messages)
    copy it under a lock and publish the new tuple: read-copy-update. A
    broadcast racing a leave may still send to the client that left, which
    then fails harmlessly (the transport is closed)."""

    __slots__ = ("members", "_lock")

    def __init__(self) -> None:
        self.members: tuple[px.Transport, ...] = ()
        self._lock = threading.Lock()

    def add(self, transport: px.Transport) -> int:
        """Add transport (once); how many members there are then."""
        with self._lock:
            if transport not in self.members:
                self.members = (*self.members, transport)
            return len(self.members)

    def remove(self, transport: px.Transport) -> int:
        """Remove transport if present; how many members are left."""
        with self._lock:
            if transport in self.members:
                self.members = tuple(t for t in self.members if t is not transport)
            return len(self.members)

    def discard(self, transports: list[px.Transport]) -> None:
        """Remove every one of transports that is present, in one copy."""
        gone = set(transports)
        with self._lock:
            self.members = tuple(t for t in self.members if t not in gone)

    def __len__(self) -> int:
        return len(self.members)


def drop(transport: px.Transport, limits: type[Limits]) -> None:
    """The slow-consumer policy: abort a client whose backlog passed the limit."""
    if transport.closed:
        return  # another worker dropped it first, or it left
    transport.abort()
    limits.dropped += 1
    print(f"{limits.name}: dropped client {transport.id}: output backlog over "
          f"{limits.max_backlog} bytes", flush=True)


def broadcast(targets: tuple[px.Transport, ...], data: bytes, limits: type[Limits],
              forget: Callable[[list[px.Transport]], None] | None = None) -> int:
    """Send data to every target, from any thread; how many took it. A target
    over its output limit is dropped (see the module's docstring).

    The targets found closed (gone, or dropped here) are passed to forget,
    which should take them out of the set the targets came from: a closed
    connection stays a member until its connection_lost runs, and until then
    every broadcast would pay a raised exception for it again. When many close
    at once (all of them, at shutdown) each one's leave broadcast would meet
    all the others: a quadratic number of exceptions, seconds per thousand
    members. Forgotten at the first miss, each closed member costs one."""
    limit = limits.max_backlog
    missed = 0  # counted on the rare path only: the loop runs once per receiver
    closed: list[px.Transport] = []
    for target in targets:
        try:
            if target.send(data) and target.unsent <= limit:
                continue
        except ConnectionError:
            missed += 1  # it left meanwhile
            closed.append(target)
            continue
        drop(target, limits)
        missed += 1
        if target.closed:
            closed.append(target)
    if closed and forget is not None:
        forget(closed)
    return len(targets) - missed


def too_long(transport: px.Transport, exc: BaseException, prefix: bytes,
             limits: type[Limits]) -> None:
    """From an exception_handler: tell a client its line was over the limit
    (the engine closes the connection after that); anything else is logged."""
    if isinstance(exc, ValueError) and "max_line_length" in str(exc):
        try:
            transport.send(prefix + b"line longer than %d bytes\n" % limits.max_line)
        except ConnectionError:
            pass
        return
    traceback.print_exception(exc, file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-backlog", type=int, default=DEFAULT_MAX_BACKLOG, metavar="BYTES",
                        help="unsent output a client may have before it is dropped "
                             "(default: %(default)s)")
    parser.add_argument("--max-line", type=int, default=DEFAULT_MAX_LINE, metavar="BYTES",
                        help="longest line a client may send; longer: an error, then "
                             "the connection is closed (default: %(default)s)")


def engine_options(args: argparse.Namespace, limits: type[Limits],
                   protocol: type) -> dict[str, Any]:
    """Apply the limits of the command line to limits and protocol; the
    engine's options that go with them."""
    if args.max_backlog < 1 or args.max_line < 1:
        raise SystemExit(f"{limits.name}: --max-backlog and --max-line must be positive")
    limits.max_backlog = args.max_backlog
    limits.max_line = args.max_line
    protocol.max_line_length = args.max_line  # type: ignore[attr-defined]
    # Cross-worker sends are refused over the same mark the policy uses;
    # the low-water mark must stay below it.
    return {"send_high_water": args.max_backlog,
            "send_low_water": max(1, min(args.max_backlog // 2, 256 << 10))}
