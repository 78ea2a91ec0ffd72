"""Quote of the day (RFC 865): one quotation, then close."""

from __future__ import annotations

import random

from ._cli import serve

QUOTES = (
    b"There should be one-- and preferably only one --obvious way to do it.",
    b"Now is better than never.",
    b"Simple is better than complex.",
    b"Readability counts.",
    b"In the face of ambiguity, refuse the temptation to guess.",
)


class Qotd:
    """Quote-of-the-day service."""

    def connection_made(self, transport) -> None:
        transport.send(random.choice(QUOTES) + b"\r\n")
        transport.close()


def main(argv: list[str] | None = None) -> None:
    serve("qotd", Qotd, 8017, argv)


if __name__ == "__main__":
    main()
