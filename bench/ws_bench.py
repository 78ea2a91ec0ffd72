"""WebSocket echo: messages per second and server CPU per message, pyparallel's
HttpServer WebSocket routes against uvicorn (its websockets implementation)
and socketify.

Each server runs pinned to the first CPU (one worker, one process), the C
load generator (``ws_load.c``, compiled here with ``cc -O2``) pinned to the
second: CONNS connections, each with one SIZE-byte text message in flight,
for SECONDS after a one-second warm-up. Server CPU is the process's user +
system time over the whole run (/proc/PID/stat) divided by the messages
echoed in it. Every configuration runs RUNS times, interleaved; the table
reports medians.

    python bench/ws_bench.py [--runs 3] [--seconds 5] [--conns 64] [--size 32] [--deflate]

``--deflate``: every server agrees to permessage-deflate (pyparallel and
uvicorn by default, socketify with its shared compressor) and the load
sends a JSON-like message of SIZE bytes (say 1000) compressed, as a
browser's client would; the servers inflate each message and compress each
echo.

pyparallel runs on the free-threaded interpreter (.venv), the peers on the
GIL one (.venv-gil, where uvicorn, websockets and socketify are installed
from bench/requirements.txt when missing). A peer that cannot be installed
is reported as such.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
PY_FT = os.path.join(TOP, ".venv", "bin", "python")
PY_GIL = os.path.join(TOP, ".venv-gil", "bin", "python")
LOAD_SRC = os.path.join(BENCH, "ws_load.c")
LOAD_BIN = os.path.join(TOP, "build", "bench", "ws_load")
PEERS = os.path.join(BENCH, "peers")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def servers(port: int, deflate: bool = False) -> dict[str, list[str]]:
    return {
        "pyparallel": [PY_FT, os.path.join(PEERS, "ws_echo_pyparallel.py"), str(port), "1"],
        "uvicorn+websockets": [PY_GIL, "-m", "uvicorn", "--app-dir", PEERS, "--host",
                               "127.0.0.1", "--port", str(port), "--ws", "websockets",
                               "--log-level", "warning", "--no-access-log", "ws_echo_asgi:app"],
        "socketify": [PY_GIL, os.path.join(PEERS, "ws_echo_socketify.py"), str(port),
                      *(["deflate"] if deflate else [])],
    }


def available(name: str) -> bool:
    mods = {"uvicorn+websockets": "import uvicorn, websockets", "socketify": "import socketify"}
    if name not in mods:
        return True
    return subprocess.run([PY_GIL, "-c", mods[name]], capture_output=True).returncode == 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server never listened")


def run_one(name: str, args: argparse.Namespace) -> tuple[float, float]:
    port = free_port()
    argv = servers(port, args.deflate)[name]
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_port(port, proc)
        c0 = cpu_seconds(proc.pid)
        out = subprocess.run(["taskset", "-c", "1", LOAD_BIN, str(port), "/", str(args.conns),
                              str(args.seconds), str(args.size),
                              *(["deflate"] if args.deflate else [])],
                             capture_output=True, text=True, timeout=args.seconds + 60)
        c1 = cpu_seconds(proc.pid)
        m = re.search(r"MESSAGES (\d+) SECONDS ([\d.]+) TOTAL (\d+)", out.stdout)
        if m is None:
            raise RuntimeError(f"{name}: load failed: {out.stdout} {out.stderr}")
        rate = int(m.group(1)) / float(m.group(2))
        us_per_msg = (c1 - c0) / max(1, int(m.group(3))) * 1e6
        return rate, us_per_msg
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--deflate", action="store_true",
                    help="permessage-deflate agreed, compressed JSON-like messages")
    args = ap.parse_args()
    os.makedirs(os.path.dirname(LOAD_BIN), exist_ok=True)
    subprocess.run(["cc", "-O2", "-o", LOAD_BIN, LOAD_SRC, "-lz"], check=True)
    names = [n for n in servers(0) if available(n)]
    missing = [n for n in servers(0) if n not in names]
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for _ in range(args.runs):
        for name in names:
            results[name].append(run_one(name, args))
    print(f"WebSocket echo, {args.conns} connections, {args.size}-byte text messages"
          f"{' (permessage-deflate)' if args.deflate else ''}, "
          f"server on CPU 0, load on CPU 1, median of {args.runs} x {args.seconds:g} s")
    print("| server | messages/s | server CPU per message | vs pyparallel |")
    print("|---|---:|---:|---:|")
    base = statistics.median(r for r, _ in results["pyparallel"]) if "pyparallel" in results else 0
    for name in names:
        rate = statistics.median(r for r, _ in results[name])
        cpu = statistics.median(c for _, c in results[name])
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} us | {rate / base:.2f}x |")
    for name in missing:
        print(f"| {name} | not installed | | |")


if __name__ == "__main__":
    sys.exit(main())
