"""Helpers of the ASGI suites: ``pyparallel serve`` as a test server on the
apps here, through the WSGI suites' helpers (the same command)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wsgi"))

from wsgi_helpers import read_reply, served  # noqa: E402

from helpers import ServerProcess  # noqa: E402

APPS = Path(__file__).resolve().parent / "apps"

__all__ = ["APPS", "read_reply", "served_asgi"]


@contextmanager
def served_asgi(backend: str, target: str, *args: str,
                **kw: Any) -> Iterator[ServerProcess]:
    """``pyparallel serve target --interface asgi args...`` on backend, from
    the apps here; it must exit cleanly when stopped."""
    with served(backend, target, "--interface", "asgi", *args, app_dir=APPS, **kw) as proc:
        yield proc
