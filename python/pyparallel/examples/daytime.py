"""Daytime (RFC 867): the date and time, then close."""

from __future__ import annotations

import time

import pyparallel as px

from ._cli import serve

__all__ = ["Daytime", "main"]


class Daytime:
    """Daytime service: one line with the local date and time."""

    def connection_made(self, transport: px.Transport) -> None:
        transport.send(time.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode())
        transport.close()


def main(argv: list[str] | None = None) -> None:
    serve("daytime", Daytime, 8013, argv)


if __name__ == "__main__":
    main()
