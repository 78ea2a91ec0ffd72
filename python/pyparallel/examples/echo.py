"""Echo (RFC 862): every byte received is sent back."""

from __future__ import annotations

from ._cli import serve


class Echo:
    """Echo service: sends back what it receives."""

    def data_received(self, transport, data: bytes) -> bytes:
        return data


def main(argv: list[str] | None = None) -> None:
    serve("echo", Echo, 8007, argv)


if __name__ == "__main__":
    main()
