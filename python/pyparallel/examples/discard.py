"""Discard (RFC 863): reads everything, sends nothing."""

from __future__ import annotations

import pyparallel as px

from ._cli import serve

__all__ = ["Discard", "main"]


class Discard:
    """Discard service: swallows what it receives."""

    def data_received(self, transport: px.Transport, data: bytes) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    serve("discard", Discard, 8009, argv)


if __name__ == "__main__":
    main()
