"""pyparallel._loadgen: the C load generator behind pyparallel.loadgen."""

from typing import Any

def run(
    host: str,
    port: int,
    request: bytes,
    *,
    rate: float,
    duration: float,
    connections: int = 10,
    timeout: float = 2.0,
    workers: int = 1,
    backend: str = "auto",
    head: bool = False,
    ticks_per_half: int = 5,
) -> dict[str, Any]:
    """Send `request` to host:port at `rate` requests per second for `duration`
    seconds over `connections` keep-alive connections; return the counts and the
    latency distribution in microseconds, measured from each request's
    scheduled time. Blocks (the thread state detached); Ctrl-C ends the run
    early and still returns its results, marked interrupted."""
