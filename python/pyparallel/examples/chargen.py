"""Character generator (RFC 864): an endless stream of rotating lines."""

from __future__ import annotations

import pyparallel as px

from ._cli import serve

__all__ = ["Chargen", "main"]

_CHARS = bytes(range(32, 127))
_LINE_LEN = 72
# One full cycle of 95 lines, so any run of lines is a slice of it.
_CYCLE = b"".join(
    (_CHARS * 2)[i:i + _LINE_LEN] + b"\r\n" for i in range(len(_CHARS)))
_CHUNK = _CYCLE * 8


class Chargen:
    """Chargen service: streams lines until the client goes away."""

    def connection_made(self, transport: px.Transport) -> bytes:
        return _CHUNK

    def send_complete(self, transport: px.Transport, send_id: int) -> bytes:
        # Called once everything queued has been written: keep the pipe full.
        return _CHUNK


def main(argv: list[str] | None = None) -> None:
    serve("chargen", Chargen, 8019, argv)


if __name__ == "__main__":
    main()
