"""permessage-deflate settings of a WebSocket (RFC 7692; compressed in C).

The server takes a client's offer (browsers and the ``websockets`` library
make one) unless ``compression=None``. It keeps no compressor per
connection: each message it sends is compressed afresh by the sending
thread's (it answers ``server_no_context_takeover``), and by default it asks
the client to do the same (``client_no_context_takeover``), so an idle
connection holds no zlib memory at all. ``client_context=True`` lets the
client keep its context (better ratios for streams of similar messages), at
an inflater of ``2**window_bits`` bytes plus about 7 KiB per connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFLATE_DEFAULTS", "deflate_setting"]

#: level: zlib's 1..9; min_size: shorter messages are sent uncompressed
#: (compressing a few bytes costs more than it saves); client_context and
#: window_bits (9..15): see the module's docstring
DEFLATE_DEFAULTS: Mapping[str, Any] = {"level": 6, "min_size": 128, "client_context": False,
                                       "window_bits": 15}


def deflate_setting(compression: str | None,
                    options: Mapping[str, Any] | None = None) -> tuple[int, int, bool, int] | None:
    """What ``_core.ws_accept(deflate=)`` takes for ``compression`` (None or
    ``"deflate"``) and its ``options`` (keys of :data:`DEFLATE_DEFAULTS`)."""
    if compression is None:
        return None
    if compression != "deflate":
        raise ValueError(f"WebSocket compression: 'deflate' or None, not {compression!r}")
    opts = {**DEFLATE_DEFAULTS, **(options or {})}
    unknown = set(opts) - set(DEFLATE_DEFAULTS)
    if unknown:
        raise ValueError(f"WebSocket compression options: unknown {sorted(unknown)}")
    level, min_size, bits = int(opts["level"]), int(opts["min_size"]), int(opts["window_bits"])
    if not 1 <= level <= 9 or min_size < 0 or not 9 <= bits <= 15:
        raise ValueError("WebSocket compression options: level 1..9, min_size >= 0, "
                         "window_bits 9..15")
    return level, min_size, bool(opts["client_context"]), bits
