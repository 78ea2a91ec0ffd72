"""1,000 concurrent requests to a Flask view that sleeps 100 ms finish in
the time of a few batches, because a blocked worker is handed to a spare
thread, while a fast view beside them is not held up by the sleeps.

Once one view of a worker was found blocked, the worker's next releases hand
it to a spare at once rather than after handoff_ms each: a burst of sleepers
queued on one worker then costs a thread switch each, not 2-3 ms each one
behind the other (which held a fast request queued behind 500 of them for a
second). The figures are printed; bench/handoff_flask.py measures them on
pinned CPUs. The bounds asserted are loose enough for a loaded machine and
still fail with hand-offs decided by the supervisor one at a time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import sysconfig
import time

import pytest
from wsgi_helpers import served

pytest.importorskip("flask", reason="Flask comes from tools/requirements-test.txt")

SLEEPERS = 1000
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
# A smaller burst, after the first: the spares made for the first serve it.
WITHIN_SPARES = 200


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


# The fast view's client is a process of its own, so that the 1,000
# connections of this one never delay its measurements.
PROBER = """
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("ready", flush=True)
sys.stdin.readline()
out, buf, end = [], b"", time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    t0 = time.perf_counter()
    s.sendall(b"GET /fast HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n")
    while not buf.endswith(b"fast"):
        buf += s.recv(4096)
    out.append(time.perf_counter() - t0)
    buf = b""
    time.sleep(0.005)
print(" ".join("%.6f" % x for x in out), flush=True)
"""


async def _load(port: int, sleepers: int) -> tuple[float, list[bytes]]:
    start = time.perf_counter()
    replies = await asyncio.gather(*(_get(port, "/sleep") for _ in range(sleepers)))
    return time.perf_counter() - start, replies


def _probed(port: int, sleepers: int, probe_seconds: float) -> tuple[float, list[float]]:
    prober = subprocess.Popen([sys.executable, "-c", PROBER, str(port), str(probe_seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert prober.stdout is not None and prober.stdin is not None
    assert prober.stdout.readline().strip() == "ready"
    prober.stdin.write("go\n")
    prober.stdin.flush()
    elapsed, replies = asyncio.run(_load(port, sleepers))
    out, _ = prober.communicate(timeout=60)
    assert all(r.startswith(b"HTTP/1.1 200") and r.endswith(b"slept") for r in replies)
    return elapsed, sorted(float(x) for x in out.split())


def _p99(latencies: list[float]) -> float:
    return latencies[int(len(latencies) * 0.99)]


@pytest.mark.parametrize("backend", ["uring", "epoll"])
@pytest.mark.timeout(120)
def test_sleeping_views_are_handed_off(backend: str) -> None:
    with served(backend, "flask_app:app", "--workers", "2") as proc:
        elapsed, crowded = _probed(proc.port, SLEEPERS, 1.5)
        # the spares made for the first wave serve the second
        _, latencies = _probed(proc.port, WITHIN_SPARES, 1.0)
    print(f"\n{SLEEPERS} sleeping requests in {elapsed:.2f} s (fast view p99 "
          f"{_p99(crowded) * 1000:.1f} ms meanwhile); beside {WITHIN_SPARES} sleeping: fast "
          f"view p99 {_p99(latencies) * 1000:.1f} ms over {len(latencies)} requests")
    # Without the hand-off: 1000 x 100 ms over 2 workers = 50 s.
    assert elapsed < 15
    # Without it a fast request waits for every sleeping view queued before
    # it on its worker (100 of them: 10 s).
    assert latencies and _p99(latencies) < 1.0
    if not FREE_THREADED:
        return  # with the GIL every view's Python takes turns: bounds above only
    # Hand-offs decided by the supervisor one per handoff_ms per worker took
    # 2.0-2.6 s for the 1,000; eager hand-offs 0.6-1.3 s on a loaded 2-CPU
    # machine (cold: the spares are started during the burst).
    assert elapsed < 1.8
    # The fast view's p99 among the 1,000 was 0.7-1.7 s, and 0.08-0.6 s with
    # eager hand-offs on a loaded machine; the 20 ms the issue asks for is
    # measured by bench/handoff_flask.py, not asserted on a shared machine.
    assert crowded and _p99(crowded) < 1.0
    assert _p99(latencies) < 0.2
