"""1,000 concurrent requests to a Flask view that sleeps 100 ms, with a fast
view beside them: how long the 1,000 take and the fast view's latency
meanwhile (what tests/py/wsgi/test_flask_handoff.py checks with wide margins).

``pyparallel serve flask_app:app --workers 2`` (tests/py/wsgi/apps) may use
both CPUs; the sleepers' client (asyncio, one connection each) and the fast
view's prober (one keep-alive connection, a request every 5 ms, in a process
of its own) are pinned to CPU 1. Per round: a fresh server, one warm-up burst
(its spare threads then exist, as on a server that has seen load before), then
the measured burst; the server's threads and memory (RSS, PSS) after it.

    python bench/handoff_flask.py [--runs 5] [--sleepers 1000] [--handoff-threads N]
                                  [--baseline PYTHON]

--baseline names another interpreter with pyparallel installed (another
build, e.g. the main branch's): its rounds alternate with this tree's, so that
both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
PY_FT = os.path.join(TOP, ".venv", "bin", "python")
APPS = os.path.join(TOP, "tests", "py", "wsgi", "apps")
HOST = "127.0.0.1"

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


async def _get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


async def _burst(port: int, n: int) -> float:
    start = time.perf_counter()
    replies = await asyncio.gather(*(_get(port, "/sleep") for _ in range(n)))
    if not all(r.endswith(b"slept") for r in replies):
        raise RuntimeError("a sleeper failed")
    return time.perf_counter() - start


def _memory(pid: int) -> tuple[int, float, float]:
    """(threads, RSS MiB, PSS MiB) of pid."""
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    with open(f"/proc/{pid}/smaps_rollup") as f:
        pss = int(re.search(r"Pss:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]
    return threads, rss / 1024, pss / 1024


def one_round(args: argparse.Namespace, port: int, python: str) -> dict:
    argv = [
        "taskset",
        "-c",
        "0,1",
        python,
        "-m",
        "pyparallel",
        "serve",
        "flask_app:app",
        "--app-dir",
        APPS,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    if args.handoff_threads:
        argv += ["--handoff-threads", str(args.handoff_threads)]
    env = dict(os.environ, PX_BACKEND=args.backend)
    server = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                asyncio.run(_burst(port, 1))
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)
        before = _memory(server.pid)
        asyncio.run(_burst(port, args.sleepers))  # warm-up: the spares get started
        prober = subprocess.Popen(
            [
                "taskset",
                "-c",
                "1",
                sys.executable,
                "-c",
                PROBER,
                str(port),
                str(args.probe_seconds),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert prober.stdout is not None and prober.stdin is not None
        assert prober.stdout.readline().strip() == "ready"
        prober.stdin.write("go\n")
        prober.stdin.flush()
        elapsed = asyncio.run(_burst(port, args.sleepers))
        out, _ = prober.communicate(timeout=60)
        after = _memory(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat = sorted(float(x) * 1000 for x in out.split())
    return {
        "elapsed": elapsed,
        "p50": lat[len(lat) // 2],
        "p99": lat[int(len(lat) * 0.99)],
        "max": lat[-1],
        "probes": len(lat),
        "threads": after[0],
        "rss": after[1],
        "pss": after[2],
        "rss0": before[1],
        "pss0": before[2],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--sleepers", type=int, default=1000)
    p.add_argument("--probe-seconds", type=float, default=1.5)
    p.add_argument("--backend", default="uring", choices=["uring", "epoll"])
    p.add_argument(
        "--handoff-threads",
        type=int,
        default=0,
        help="the engine's cap on hand-off threads (0: its default)",
    )
    p.add_argument("--port", type=int, default=18431)
    p.add_argument("--baseline", default=None, help="another interpreter, rounds alternating")
    args = p.parse_args()
    os.sched_setaffinity(0, {1})
    pythons = [("this tree", PY_FT)] + ([("baseline", args.baseline)] if args.baseline else [])
    results: dict[str, list[dict]] = {label: [] for label, _ in pythons}
    port = args.port
    for i in range(args.runs):
        for label, python in pythons:
            port += 1
            r = one_round(args, port, python)
            results[label].append(r)
            print(
                f"{label}, run {i + 1}: {args.sleepers} sleepers in {r['elapsed']:.2f} s; fast view "
                f"p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms max {r['max']:.1f} ms "
                f"({r['probes']} probes); {r['threads']} threads, RSS {r['rss0']:.1f} -> "
                f"{r['rss']:.1f} MiB, PSS {r['pss0']:.1f} -> {r['pss']:.1f} MiB; "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for label, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"{label}, median of {args.runs}: {med['elapsed']:.2f} s; fast p50 {med['p50']:.1f} ms, "
            f"p99 {med['p99']:.1f} ms, max {med['max']:.1f} ms; {med['threads']:.0f} threads, "
            f"RSS {med['rss']:.1f} MiB, PSS {med['pss']:.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
