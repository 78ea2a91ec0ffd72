"""Echo round trips per second: pyparallel against asyncio and uvloop.

Each configuration starts an echo server, pinned with ``taskset``, and runs the C
load generator (``echo_load.c``, compiled here with ``cc -O2``) pinned to another
CPU: CONNS connections, each with one 64-byte message in flight, for SECONDS after
a short warm-up. Every configuration runs RUNS times, the runs interleaved so that
drift in the machine's speed spreads evenly; the table reports the median, the
range and the ratio to uvloop's median.

Servers:
  * pyparallel: ``python -m pyparallel.examples.echo --workers N`` on the
    free-threaded interpreter (.venv);
  * uvloop and plain asyncio: a Protocol-based echo server (this file, ``--serve``)
    on the GIL interpreter (.venv-gil); uvloop is installed there from
    bench/requirements.txt when missing.

Pinning: single-threaded servers get the first CPU, the generator the second.
The two-worker pyparallel server gets the first two CPUs; the generator gets the
third if there is one, otherwise it shares the second CPU with a worker (so on a
two-core machine that run measures the whole machine, generator included).

    python bench/echo_bench.py [--runs 3] [--seconds 5] [--conns 64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
PY_FT = os.path.join(TOP, ".venv", "bin", "python")
PY_GIL = os.path.join(TOP, ".venv-gil", "bin", "python")
LOAD_SRC = os.path.join(BENCH, "echo_load.c")
LOAD_BIN = os.path.join(TOP, "build", "bench", "echo_load")
RAW_DIR = os.path.join(BENCH, "results", "raw")
LISTENING = re.compile(rb"listening on \S*:(\d+)")


# --- the asyncio / uvloop server (run in the GIL interpreter) ---------------------

def serve(loop_kind: str, host: str, port: int) -> None:
    """Protocol-based echo server on asyncio's default loop, uvloop's or
    pyparallel.asyncio's (bench/asyncio_bench.py)."""
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, host, port, backlog=1024)
        bound = server.sockets[0].getsockname()[1]
        print(f"{loop_kind}: listening on {host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with server:
            await stop.wait()

    if loop_kind == "uvloop":
        import uvloop
        uvloop.run(main())
    elif loop_kind == "pyparallel":
        import pyparallel.asyncio
        pyparallel.asyncio.run(main())
    else:
        asyncio.run(main())


# --- the benchmark driver ---------------------------------------------------------

@dataclass
class Config:
    name: str
    interpreter: str
    argv: list[str]
    server_cpus: list[int]
    load_cpus: list[int]
    results: list[dict] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r["roundtrips_per_sec"] for r in self.results)


def log(msg: str) -> None:
    print(f"echo_bench: {msg}", file=sys.stderr, flush=True)


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over SECONDS: other work skews every number here."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def build_load() -> str:
    if (not os.path.exists(LOAD_BIN)
            or os.path.getmtime(LOAD_BIN) < os.path.getmtime(LOAD_SRC)):
        os.makedirs(os.path.dirname(LOAD_BIN), exist_ok=True)
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-o", LOAD_BIN, LOAD_SRC],
                       check=True)
    return LOAD_BIN


def python_has(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def ensure_uvloop() -> bool:
    if python_has(PY_GIL, "uvloop"):
        return True
    log("installing uvloop into .venv-gil (bench/requirements.txt)")
    subprocess.run([PY_GIL, "-m", "pip", "install", "-q", "-r",
                    os.path.join(BENCH, "requirements.txt")], check=False)
    return python_has(PY_GIL, "uvloop")


def pinned(cpus: list[int], argv: list[str]) -> list[str]:
    if not cpus or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", ",".join(map(str, cpus))] + argv


def start_server(cfg: Config, logfile: IO[bytes]) -> tuple[subprocess.Popen, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("PX_WORKERS", "PYTHONPATH")}
    proc = subprocess.Popen(pinned(cfg.server_cpus, [cfg.interpreter] + cfg.argv),
                            stdout=logfile, stderr=subprocess.STDOUT, env=env,
                            cwd=tempfile.gettempdir())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        logfile.seek(0)
        m = LISTENING.search(logfile.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_server(proc)
    logfile.seek(0)
    raise RuntimeError(f"{cfg.name}: server did not start:\n"
                       + logfile.read().decode(errors="replace"))


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


WARMUP = 0.5  # seconds the generator runs before it counts


def run_once(cfg: Config, load: str, seconds: float, conns: int, size: int) -> dict:
    import http_bench as hb  # its /proc readers; imported here: it imports nothing of ours

    with tempfile.TemporaryFile() as logfile:
        proc, port = start_server(cfg, logfile)
        try:
            gen = subprocess.Popen(
                pinned(cfg.load_cpus, [load, "127.0.0.1", str(port), str(conns),
                                       str(seconds), str(size), str(WARMUP)]),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # The server's CPU over the counted part: from the end of the
            # warm-up to the generator's exit (the server idles after it).
            time.sleep(WARMUP)
            pids = hb.descendants(proc.pid)
            ticks0 = hb.cpu_ticks(pids)
            stdout, stderr = gen.communicate(timeout=seconds + 30)
            ticks1 = hb.cpu_ticks(pids)
        finally:
            stop_server(proc)
    if gen.returncode != 0:
        raise RuntimeError(f"{cfg.name}: load generator failed: {stderr.strip()}")
    fields = dict(kv.split("=", 1) for kv in stdout.split())
    roundtrips = int(fields["roundtrips"])
    server_s = (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK")
    return {"roundtrips_per_sec": float(fields["roundtrips_per_sec"]),
            "roundtrips": roundtrips, "seconds": float(fields["seconds"]),
            "load_cpu": float(fields["cpu"]),
            "server_us_per_roundtrip": server_s / roundtrips * 1e6 if roundtrips else 0.0}


def cpu_text(cpus: list[int]) -> str:
    return ",".join(map(str, cpus)) if cpus else "any"


def table(configs: list[Config], ref: Config | None) -> str:
    lines = ["| server | interpreter | server CPUs | generator CPU | round trips/s (median) "
             "| range | vs uvloop | generator CPU load | server µs CPU per round trip |",
             "|---|---|---|---|---:|---|---:|---:|---:|"]
    for c in configs:
        rates = [r["roundtrips_per_sec"] for r in c.results]
        load = statistics.median(r["load_cpu"] for r in c.results)
        server_us = statistics.median(r["server_us_per_roundtrip"] for r in c.results)
        ratio = f"{c.median / ref.median:.2f}x" if ref and ref.results else "n/a"
        interp = "free-threaded" if c.interpreter == PY_FT else "GIL"
        lines.append(f"| {c.name} | {interp} | {cpu_text(c.server_cpus)} | "
                     f"{cpu_text(c.load_cpus)} | {c.median:,.0f} | "
                     f"{min(rates):,.0f}–{max(rates):,.0f} | {ratio} | {load:.2f} | "
                     f"{server_us:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--size", type=int, default=64, help="message bytes")
    ap.add_argument("--serve", choices=["asyncio", "uvloop"], help=argparse.SUPPRESS)
    ap.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.host, args.port)
        return 0

    if not python_has(PY_FT, "pyparallel"):
        log("pyparallel is not installed in .venv: run `make build` first")
        return 1
    load = build_load()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        log("fewer than two CPUs or no taskset: running unpinned")
        one, gen, two, gen2 = [], [], [], []
    else:
        one, gen = cpus[:1], cpus[1:2]
        two, gen2 = cpus[:2], (cpus[2:3] if len(cpus) > 2 else cpus[1:2])

    echo = ["-m", "pyparallel.examples.echo", "--port", "0", "--workers"]
    me = os.path.abspath(__file__)
    configs = [Config("pyparallel, 1 worker", PY_FT, echo + ["1"], one, gen)]
    uv = None
    if os.path.exists(PY_GIL):
        if ensure_uvloop():
            uv = Config("asyncio + uvloop", PY_GIL, [me, "--serve", "uvloop"], one, gen)
            configs.append(uv)
        else:
            log("uvloop could not be installed into .venv-gil: skipping it")
        configs.append(Config("asyncio", PY_GIL, [me, "--serve", "asyncio"], one, gen))
    else:
        log("no .venv-gil: skipping the asyncio servers")
    configs.append(Config("pyparallel, 2 workers", PY_FT, echo + ["2"], two, gen2))

    busy = busy_fraction()
    if busy > 0.10:
        log(f"warning: the machine was {busy:.0%} busy before the runs: expect noisy numbers")
    log(f"{len(configs)} configurations x {args.runs} runs x {args.seconds:g}s, "
        f"{args.conns} connections, {args.size}-byte messages")
    for run in range(args.runs):
        for cfg in configs:
            r = run_once(cfg, load, args.seconds, args.conns, args.size)
            cfg.results.append(r)
            log(f"run {run + 1}/{args.runs} {cfg.name}: {r['roundtrips_per_sec']:,.0f} "
                f"round trips/s (generator CPU {r['load_cpu']:.2f})")

    print(table(configs, uv))
    os.makedirs(RAW_DIR, exist_ok=True)
    raw = os.path.join(RAW_DIR, time.strftime("echo-%Y%m%d-%H%M%S.json"))
    with open(raw, "w") as f:
        json.dump({"busy_before": round(busy, 3), "conns": args.conns, "size": args.size, "seconds": args.seconds,
                   "cpus": cpus, "configs": [
                       {"name": c.name, "interpreter": c.interpreter,
                        "server_cpus": c.server_cpus, "load_cpus": c.load_cpus,
                        "runs": c.results} for c in configs]}, f, indent=1)
    log(f"raw results: {os.path.relpath(raw, TOP)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
