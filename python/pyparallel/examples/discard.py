"""Discard (RFC 863): reads everything, sends nothing."""

from __future__ import annotations

from ._cli import serve


class Discard:
    """Discard service: swallows what it receives."""

    def data_received(self, transport, data: bytes) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    serve("discard", Discard, 8009, argv)


if __name__ == "__main__":
    main()
