"""TCP proxy: round trips per second and MB/s through pyparallel's proxy
example, the same proxy on asyncio + uvloop, and HAProxy (Debian) in TCP mode.

Every proxy runs on one core (``taskset``, one worker / one thread); the C
load generator (``echo_load.c``) and a C echo upstream (``echo_upstream.c``)
share the other core. Two loads:

  * round trips: CONNS connections, each with one SIZE-byte message in
    flight through the proxy to the echo upstream and back;
  * bulk: BULK_CONNS connections, each with one 64 KiB message in flight;
    MB/s is the bytes carried each way per second.

Each (proxy, load) pair runs RUNS times, interleaved; the table gives the
median, the range, the ratio to uvloop and to HAProxy, and the proxy's CPU
time per round trip (its user+system time over the load, divided by the
round trips of that time). Bounded: about 6 s per run, under two minutes
with the defaults.

    python bench/proxy_bench.py [--runs 3] [--seconds 3] [--conns 64] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from echo_bench import (  # noqa: E402
    BENCH,
    PY_FT,
    PY_GIL,
    build_load,
    busy_fraction,
    ensure_uvloop,
    pinned,
    python_has,
    start_server,
    stop_server,
)

UPSTREAM_SRC = os.path.join(BENCH, "echo_upstream.c")
UPSTREAM_BIN = os.path.join(os.path.dirname(BENCH), "build", "bench", "echo_upstream")
BULK_SIZE = 65536
HAPROXY_CFG = """global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend proxy
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
    server echo 127.0.0.1:{upstream}
"""


@dataclass
class Proxy:
    name: str
    interpreter: str  # "" for a native program
    argv: list[str]
    server_cpus: list[int]
    load_cpus: list[int]
    results: dict[str, list[dict]] = field(default_factory=dict)

    def median(self, load: str, key: str) -> float:
        return statistics.median(r[key] for r in self.results.get(load, [])) \
            if self.results.get(load) else 0.0


def log(msg: str) -> None:
    print(f"proxy_bench: {msg}", file=sys.stderr, flush=True)


def build_upstream() -> str:
    if (not os.path.exists(UPSTREAM_BIN)
            or os.path.getmtime(UPSTREAM_BIN) < os.path.getmtime(UPSTREAM_SRC)):
        os.makedirs(os.path.dirname(UPSTREAM_BIN), exist_ok=True)
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-std=c11", "-Wall", "-Wextra",
                        "-o", UPSTREAM_BIN, UPSTREAM_SRC], check=True)
    return UPSTREAM_BIN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system time of the whole process (every thread)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_haproxy(p: Proxy, cfgdir: str, logfile: IO[bytes]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    path = os.path.join(cfgdir, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(HAPROXY_CFG.format(port=port, upstream=p.argv[0]))
    proc = subprocess.Popen(pinned(p.server_cpus, ["haproxy", "-f", path, "-db"]),
                            stdout=logfile, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30  # a busy machine starts it slowly
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    stop_server(proc)
    logfile.seek(0)
    raise RuntimeError("haproxy did not start:\n" + logfile.read().decode(errors="replace"))


def run_once(p: Proxy, load_bin: str, kind: str, seconds: float, conns: int,
             size: int) -> dict:
    with tempfile.TemporaryFile() as logfile, tempfile.TemporaryDirectory() as cfgdir:
        if p.interpreter:
            proc, port = start_server(p, logfile)  # type: ignore[arg-type]
        else:
            proc, port = start_haproxy(p, cfgdir, logfile)
        try:
            pid = proc.pid  # taskset execs the program: the same process
            c0, t0 = cpu_seconds(pid), time.monotonic()
            out = subprocess.run(
                pinned(p.load_cpus, [load_bin, "127.0.0.1", str(port), str(conns),
                                     str(seconds), str(size), "0.5"]),
                capture_output=True, text=True, timeout=seconds + 30)
            c1, t1 = cpu_seconds(pid), time.monotonic()
        finally:
            stop_server(proc)
    if out.returncode != 0:
        raise RuntimeError(f"{p.name} ({kind}): load generator failed: {out.stderr.strip()}")
    f = dict(kv.split("=", 1) for kv in out.stdout.split())
    rate = float(f["roundtrips_per_sec"])
    return {"roundtrips_per_sec": rate, "mb_per_sec": rate * size / 1e6,
            "proxy_cpu": (c1 - c0) / (t1 - t0),
            "cpu_us_per_roundtrip": (c1 - c0) / max(rate * (t1 - t0), 1) * 1e6,
            "load_cpu": float(f["cpu"])}


def table(proxies: list[Proxy], kind: str, key: str, unit: str) -> str:
    uv = next((p for p in proxies if "uvloop" in p.name), None)
    ha = next((p for p in proxies if "HAProxy" in p.name), None)
    lines = [f"| proxy | {unit} (median) | range | vs uvloop | vs HAProxy "
             "| proxy CPU per round trip | proxy CPU busy |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for p in proxies:
        rs = p.results.get(kind, [])
        if not rs:
            continue
        m = p.median(kind, key)
        vals = [r[key] for r in rs]

        def ratio(ref: Proxy | None, m: float = m) -> str:
            return f"{m / ref.median(kind, key):.2f}x" if ref and ref.median(kind, key) else "n/a"
        lines.append(f"| {p.name} | {m:,.1f} | {min(vals):,.1f}–{max(vals):,.1f} | {ratio(uv)} "
                     f"| {ratio(ha)} | {p.median(kind, 'cpu_us_per_roundtrip'):.1f} µs "
                     f"| {p.median(kind, 'proxy_cpu'):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    ap.add_argument("--conns", type=int, default=64, help="connections, round-trip load")
    ap.add_argument("--size", type=int, default=64, help="message bytes, round-trip load")
    ap.add_argument("--bulk-conns", type=int, default=8, help="connections, bulk load")
    args = ap.parse_args(argv)

    if not python_has(PY_FT, "pyparallel"):
        log("pyparallel is not installed in .venv: run `make build` first")
        return 1
    load_bin, up_bin = build_load(), build_upstream()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        log("fewer than two CPUs or no taskset: running unpinned")
        one, other = [], []
    else:
        one, other = cpus[:1], cpus[1:2]

    with tempfile.TemporaryFile() as uplog:
        proc = subprocess.Popen(pinned(other, [up_bin]), stdout=uplog, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            up_port = 0
            while not up_port and time.monotonic() < deadline:
                uplog.seek(0)
                text = uplog.read().decode()
                if "listening on" in text:
                    up_port = int(text.split(":")[-1])
                time.sleep(0.02)
            assert up_port, f"echo upstream did not start: {text}"
            target = f"127.0.0.1:{up_port}"
            proxies = [Proxy("pyparallel proxy, 1 worker", PY_FT,
                             ["-m", "pyparallel.examples.proxy", "--port", "0", "--workers", "1",
                              "--upstream", target], one, other)]
            if os.path.exists(PY_GIL) and ensure_uvloop():
                proxies.append(Proxy("asyncio + uvloop proxy", PY_GIL,
                                     [os.path.join(BENCH, "peers", "uvloop_proxy.py"),
                                      "--upstream", target], one, other))
            else:
                log("no uvloop in .venv-gil: skipping it")
            if shutil.which("haproxy"):
                proxies.append(Proxy("HAProxy (TCP mode, 1 thread)", "", [str(up_port)], one,
                                     other))
            else:
                log("no haproxy (tools/bootstrap-python installs it): skipping it")
            busy = busy_fraction()
            if busy > 0.10:
                log(f"warning: the machine was {busy:.0%} busy before the runs: noisy numbers")
            loads = [("roundtrips", args.conns, args.size), ("bulk", args.bulk_conns, BULK_SIZE)]
            for run in range(args.runs):
                for kind, conns, size in loads:
                    for p in proxies:
                        r = run_once(p, load_bin, kind, args.seconds, conns, size)
                        p.results.setdefault(kind, []).append(r)
                        log(f"run {run + 1}/{args.runs} {kind} {p.name}: "
                            f"{r['roundtrips_per_sec']:,.0f} rt/s {r['mb_per_sec']:,.1f} MB/s "
                            f"proxy CPU {r['proxy_cpu']:.2f} "
                            f"({r['cpu_us_per_roundtrip']:.1f} µs/rt) "
                            f"load CPU {r['load_cpu']:.2f}")
        finally:
            stop_server(proc)
    print(f"Round trips: {args.conns} connections, {args.size}-byte messages, one in flight "
          f"each (machine {busy:.0%} busy before)\n")
    print(table(proxies, "roundtrips", "roundtrips_per_sec", "round trips/s"))
    print(f"\nBulk: {args.bulk_conns} connections, 64 KiB messages, one in flight each; "
          "MB/s each way\n")
    print(table(proxies, "bulk", "mb_per_sec", "MB/s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
