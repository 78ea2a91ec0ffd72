"""Fast requests next to sleeping ones: hand-off on against hand-off off.

An HTTP server (this file, ``--serve``, on the free-threaded interpreter) has one
route, ``/req/{i}``, whose handler sleeps SLEEP seconds when i is a multiple of
EVERY and answers at once otherwise: a handler that calls a slow database, say.
CLIENTS keep-alive connections (threads of this script) send requests one after
another with i counting up over all of them, for SECONDS. What is measured is
the latency of the fast requests (p50, p99, max) and how many were served:
without hand-off every sleeping handler stalls its worker and every request
queued behind it; with hand-off a spare thread serves the worker meanwhile.

Each configuration (hand-off on/off x backend) runs RUNS times, interleaved, a
fresh server each time; the table gives medians over the runs.

    python bench/handoff_bench.py [--runs 3] [--seconds 5] [--clients 32]
                                  [--workers 1] [--sleep 0.2] [--every 10]
                                  [--backends uring,epoll]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
PY_FT = os.path.join(TOP, ".venv", "bin", "python")
RAW_DIR = os.path.join(BENCH, "results", "raw")
LISTENING = re.compile(rb"listening on \S*:(\d+)")


# --- the server (run by the free-threaded interpreter) ----------------------------

def serve(port: int, workers: int, handoff_ms: int, sleep: float, every: int) -> None:
    """The sleeping-handler HTTP server, until SIGTERM."""
    import pyparallel as px
    from pyparallel.http import HttpServer, route

    class App(HttpServer):
        @route("/req/{i}")
        def req(self, request, i):
            if int(i) % every == 0:
                time.sleep(sleep)
            return f"req {i}".encode()

    server = px.register(transport=px.server("127.0.0.1", port), protocol=App)
    px.engine(workers, handoff_ms=handoff_ms)
    print(f"handoff-bench: listening on 127.0.0.1:{server.port}", flush=True)
    px.run()
    handoffs = sum(w["handoffs"] for w in px.stats()["workers"])
    print(f"HANDOFFS {handoffs}", flush=True)


# --- the load --------------------------------------------------------------------

def read_response(sock: socket.socket, buf: bytearray) -> bytes:
    """One response with a Content-Length body; returns the body."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    buf[:] = rest[length:]
    return rest[:length]


@dataclass
class Result:
    fast: list[float] = field(default_factory=list)
    slow: int = 0
    errors: int = 0


def load(port: int, clients: int, seconds: float, every: int) -> Result:
    res = Result()
    lock = threading.Lock()
    counter = iter(range(1 << 62))
    stop = time.monotonic() + seconds

    def client() -> None:
        fast: list[float] = []
        slow = errors = 0
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = bytearray()
            while time.monotonic() < stop:
                with lock:
                    i = next(counter)
                t0 = time.monotonic()
                sock.sendall(f"GET /req/{i} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
                body = read_response(sock, buf)
                elapsed = time.monotonic() - t0
                if body != f"req {i}".encode():
                    errors += 1
                if i % every == 0:
                    slow += 1
                else:
                    fast.append(elapsed)
            sock.close()
        except OSError:
            errors += 1
        with lock:
            res.fast += fast
            res.slow += slow
            res.errors += errors

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return res


def quantile(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


@dataclass
class Config:
    name: str
    backend: str
    handoff_ms: int
    runs: list[dict] = field(default_factory=list)


def run_once(cfg: Config, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PX_BACKEND=cfg.backend)
    env.pop("PX_WORKERS", None)
    proc = subprocess.Popen(
        [PY_FT, os.path.abspath(__file__), "--serve", "--workers", str(args.workers),
         "--handoff-ms", str(cfg.handoff_ms), "--sleep", str(args.sleep),
         "--every", str(args.every)],
        stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = LISTENING.search(line)
    if m is None:
        proc.kill()
        raise RuntimeError(f"{cfg.name}: server did not start: {line!r}")
    try:
        res = load(int(m.group(1)), args.clients, args.seconds, args.every)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    handoffs = int(re.search(rb"HANDOFFS (\d+)", out).group(1)) if b"HANDOFFS" in out else -1
    return {"fast": len(res.fast), "slow": res.slow, "errors": res.errors,
            "p50_ms": quantile(res.fast, 0.5) * 1e3, "p99_ms": quantile(res.fast, 0.99) * 1e3,
            "max_ms": max(res.fast, default=float("nan")) * 1e3,
            "fast_per_sec": len(res.fast) / args.seconds, "handoffs": handoffs}


def table(configs: list[Config]) -> str:
    med = statistics.median
    lines = ["| configuration | fast req/s | fast p50 ms | fast p99 ms | fast max ms "
             "| slow requests | hand-offs | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in configs:
        r = c.runs
        lines.append(f"| {c.name} | {med(x['fast_per_sec'] for x in r):,.0f} "
                     f"| {med(x['p50_ms'] for x in r):.1f} | {med(x['p99_ms'] for x in r):.1f} "
                     f"| {med(x['max_ms'] for x in r):.1f} | {med(x['slow'] for x in r):.0f} "
                     f"| {med(x['handoffs'] for x in r):.0f} | {sum(x['errors'] for x in r)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--sleep", type=float, default=0.2, help="seconds a slow handler sleeps")
    ap.add_argument("--every", type=int, default=10, help="one request in EVERY is slow")
    ap.add_argument("--backends", default="uring,epoll")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--handoff-ms", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.port, args.workers, args.handoff_ms, args.sleep, args.every)
        return 0
    configs = [Config(f"{b}, hand-off {'on (2 ms)' if h else 'off'}", b, h)
               for b in args.backends.split(",") for h in (2, 0)]
    print(f"{len(configs)} configurations x {args.runs} runs x {args.seconds:g} s, "
          f"{args.workers} worker(s), {args.clients} clients, one request in {args.every} "
          f"sleeps {args.sleep:g} s", file=sys.stderr, flush=True)
    for run in range(args.runs):
        for cfg in configs:
            r = run_once(cfg, args)
            cfg.runs.append(r)
            print(f"run {run + 1}/{args.runs} {cfg.name}: p99 {r['p99_ms']:.1f} ms, "
                  f"{r['fast_per_sec']:,.0f} fast req/s, {r['handoffs']} hand-offs",
                  file=sys.stderr, flush=True)
    print(table(configs))
    os.makedirs(RAW_DIR, exist_ok=True)
    raw = os.path.join(RAW_DIR, time.strftime("handoff-%Y%m%d-%H%M%S.json"))
    with open(raw, "w") as f:
        json.dump({"args": {k: v for k, v in vars(args).items() if k != "serve"},
                   "configs": [{"name": c.name, "backend": c.backend,
                                "handoff_ms": c.handoff_ms, "runs": c.runs}
                               for c in configs]}, f, indent=1)
    print(f"raw results: {os.path.relpath(raw, TOP)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
