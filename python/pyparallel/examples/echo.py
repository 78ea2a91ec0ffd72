"""Echo (RFC 862): every byte received is sent back."""

from __future__ import annotations

import pyparallel as px

from ._cli import serve

__all__ = ["Echo", "main"]


class Echo:
    """Echo service: sends back what it receives."""

    def data_received(self, transport: px.Transport, data: bytes) -> bytes:
        return data


def main(argv: list[str] | None = None) -> None:
    serve("echo", Echo, 8007, argv)


if __name__ == "__main__":
    main()
