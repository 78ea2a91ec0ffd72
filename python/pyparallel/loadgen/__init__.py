"""pyparallel-bench: an open-loop HTTP/1.1 load generator on the pyparallel engine.

Requests are sent at a fixed rate, each at its scheduled time
(``t0 + i / rate``), spread over keep-alive connections; latency is measured
from the scheduled time to the end of the response, so a server that stalls
is charged for every request it delayed (no coordinated omission)::

    from pyparallel.loadgen import run
    result = run("http://127.0.0.1:8080/json", rate=2000, duration=3, connections=20)
    print(result.percentile(99.9))   # milliseconds

The command line (``pyparallel-bench`` or ``python -m pyparallel.loadgen``) prints a
wrk2-style report and writes the full percentile spectrum with ``--json``;
``python -m pyparallel.loadgen chart a.json b.json -o chart.png`` draws several
runs on one percentile chart.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .. import _loadgen

__all__ = ["Target", "Result", "LoadgenError", "SUMMARY_PERCENTILES", "parse_url",
           "build_request", "run"]

#: The percentiles of the summary, as wrk2 prints them.
SUMMARY_PERCENTILES = (50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0)


class LoadgenError(ValueError):
    """A URL, an argument or a host that cannot be used; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where the requests go: what a URL says."""

    host: str        # as written, without brackets
    port: int
    target: str      # request-target: path and query
    host_header: str

    @property
    def url(self) -> str:
        """The URL, normalised."""
        return f"http://{self.host_header}{self.target}"


def parse_url(url: str) -> Target:
    """Check an http:// URL and split it; LoadgenError with the reason otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        raise LoadgenError(f"{url!r}: https is not supported (plain HTTP/1.1 only)")
    if parts.scheme != "http":
        raise LoadgenError(f"{url!r}: not an http:// URL")
    if parts.username is not None or parts.password is not None:
        raise LoadgenError(f"{url!r}: user information in the URL is not supported")
    if not parts.hostname:
        raise LoadgenError(f"{url!r}: no host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise LoadgenError(f"{url!r}: bad port ({exc})") from None
    if parts.fragment:
        raise LoadgenError(f"{url!r}: a fragment (#...) is never sent; remove it")
    host = parts.hostname
    for ch in host + parts.path + parts.query:
        if ord(ch) <= 0x20 or ord(ch) >= 0x7f:
            raise LoadgenError(f"{url!r}: space, control or non-ASCII character in the URL")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == 80 else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(host, port, target, host_header)


def build_request(target: Target, method: str = "GET", headers: tuple[str, ...] = (),
                  body: bytes | None = None) -> bytes:
    """The bytes of one HTTP/1.1 request for target.

    headers are ``"Name: value"`` strings added after Host; a body gets a
    Content-Length."""
    if not method or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in method):
        raise LoadgenError(f"method {method!r} is not an HTTP token")
    lines = [f"{method} {target.target} HTTP/1.1", f"Host: {target.host_header}"]
    names = {"host"}
    for header in headers:
        name, sep, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or any(c in header for c in "\r\n\0") or \
                not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
            raise LoadgenError(f"header {header!r} is not 'Name: value'")
        if name.lower() in ("host", "content-length", "transfer-encoding"):
            raise LoadgenError(f"header {name} is set by pyparallel-bench itself")
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if "user-agent" not in names:
        lines.append("User-Agent: pyparallel-bench")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class Result(dict[str, Any]):
    """What a run measured (a dict, as ``_loadgen.run`` returns it), with helpers.

    Latencies inside are in microseconds; the helpers answer in milliseconds."""

    @property
    def achieved_rate(self) -> float:
        """Responses per second, from the first scheduled request to the last response."""
        elapsed = self["elapsed"]
        return self["responses"] / elapsed if elapsed > 0 else 0.0

    @property
    def failed(self) -> int:
        """Scheduled requests that got no response (every cause)."""
        return sum(self["errors"].values())

    def percentile(self, p: float) -> float:
        """Latency at percentile p (one of SUMMARY_PERCENTILES) in milliseconds."""
        for level, value in self["latency_us"]["percentiles"]:
            if abs(level - p) < 1e-9:
                return float(value) / 1000.0
        raise KeyError(f"percentile {p} is not in the summary {SUMMARY_PERCENTILES}")


def _resolve(host: str, port: int) -> str:
    """The first address of host, as a string; OSError when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    return str(infos[0][4][0])


def run(url: str, rate: float, duration: float, connections: int = 10, workers: int = 1,
        timeout: float = 2.0, method: str = "GET", headers: tuple[str, ...] = (),
        body: bytes | None = None, backend: str | None = None) -> Result:
    """Load url at rate requests/s for duration seconds and return the measurements.

    backend is ``auto``, ``uring`` or ``epoll`` (default: ``PX_BACKEND`` or auto).
    Blocks until the run is over; Ctrl-C ends it early (``result["interrupted"]``)."""
    target = parse_url(url)
    _check_numbers(rate, duration, connections, workers, timeout)
    request = build_request(target, method, headers, body)
    address = _resolve(target.host, target.port)
    raw = _loadgen.run(address, target.port, request, rate=float(rate),
                       duration=float(duration), connections=int(connections),
                       timeout=float(timeout), workers=int(workers),
                       backend=backend or os.environ.get("PX_BACKEND", "auto"),
                       head=method == "HEAD")
    result = Result(raw)
    result.update(url=target.url, rate=float(rate), duration=float(duration), method=method)
    return result


def _check_numbers(rate: float, duration: float, connections: int, workers: int,
                   timeout: float) -> None:
    """LoadgenError unless every number is in its range."""
    if not rate > 0 or rate > 10_000_000:
        raise LoadgenError(f"--rate must be in (0, 10000000] requests/s, not {rate}")
    if not duration > 0 or duration > 86400:
        raise LoadgenError(f"--duration must be in (0, 86400] seconds, not {duration}")
    if rate * duration >= 1e12:
        raise LoadgenError("--rate x --duration is too many requests")
    if not 1 <= connections <= 1_000_000:
        raise LoadgenError(f"--connections must be in 1..1000000, not {connections}")
    if not 1 <= workers <= 1024:
        raise LoadgenError(f"--workers must be in 1..1024, not {workers}")
    if not 0 < timeout < 86400:
        raise LoadgenError(f"--timeout must be in (0, 86400) seconds, not {timeout}")
