"""Quote of the day (RFC 865): one quotation, then close."""

from __future__ import annotations

import random

import pyparallel as px

from ._cli import serve

__all__ = ["Qotd", "main"]


class Qotd:
    """Quote-of-the-day service."""

    # The quotations it picks from.
    QUOTES = (
        b"There should be one-- and preferably only one --obvious way to do it.",
        b"Now is better than never.",
        b"Simple is better than complex.",
        b"Readability counts.",
        b"In the face of ambiguity, refuse the temptation to guess.",
    )

    def connection_made(self, transport: px.Transport) -> None:
        transport.send(random.choice(self.QUOTES) + b"\r\n")
        transport.close()


def main(argv: list[str] | None = None) -> None:
    serve("qotd", Qotd, 8017, argv)


if __name__ == "__main__":
    main()
