"""Broadcast: chat messages delivered per second to 1,000 subscribers.

The same chat server (every line any client sends goes to every client) on
pyparallel (``python -m pyparallel.examples.chat --no-notices``, 1 and 2
workers, free-threaded interpreter), on asyncio + uvloop (bench/peers/
chat_asyncio.py, GIL interpreter; uvloop is installed into .venv-gil from
bench/requirements.txt when missing) and on Node.js (bench/peers/chat_node.js;
skipped without ``node``). All three split each read into lines and send its
complete lines to every client in one write, and drop a client whose backlog
passes 1 MiB.

The load (bench/broadcast_load.c, compiled here with ``cc -O2``): RECEIVERS
connections that only read and SENDERS that write one 64-byte line per send(),
in one epoll loop, the senders held back while the slowest client is WINDOW
lines behind; every receiver checks that it gets each sender's lines in order,
none missing. Measured over SECONDS after a warm-up: lines the receivers read
per second (deliveries), lines sent per second, the senders' latency to see
their own line back, the server's CPU time (from /proc) per delivery, and the
generator's CPU (near 1.0 would mean the generator, not the server, was the
limit).

Pinning (taskset): single-threaded servers get the first CPU, the generator the
second; the 2-worker server gets the first two CPUs and the generator shares the
second unless there is a third (on a 2-core machine that run measures the whole
machine). Each configuration runs RUNS times, interleaved; the table shows
medians. About a minute with the defaults.

    python bench/broadcast_bench.py [--runs 3] [--seconds 3] [--receivers 1000]
                                    [--senders 10] [--window 256]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from echo_bench import (  # noqa: E402  (bench/ is on sys.path)
    PY_FT,
    PY_GIL,
    RAW_DIR,
    TOP,
    Config,
    busy_fraction,
    cpu_text,
    ensure_uvloop,
    pinned,
    python_has,
    start_server,
    stop_server,
)

LOAD_SRC = os.path.join(BENCH, "broadcast_load.c")
LOAD_BIN = os.path.join(TOP, "build", "bench", "broadcast_load")
PEERS = os.path.join(BENCH, "peers")
FIELDS = ("deliveries_per_sec", "sent_per_sec", "sender_deliveries_per_sec", "latency_ms_mean",
          "latency_ms_max", "cpu", "server_cpu")


def log(msg: str) -> None:
    print(f"broadcast_bench: {msg}", file=sys.stderr, flush=True)


def build_load() -> str:
    if (not os.path.exists(LOAD_BIN)
            or os.path.getmtime(LOAD_BIN) < os.path.getmtime(LOAD_SRC)):
        os.makedirs(os.path.dirname(LOAD_BIN), exist_ok=True)
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-o", LOAD_BIN, LOAD_SRC],
                       check=True)
    return LOAD_BIN


def run_once(cfg: Config, load: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryFile() as logfile:
        proc, port = start_server(cfg, logfile)
        try:
            out = subprocess.run(
                pinned(cfg.load_cpus, [load, "127.0.0.1", str(port), str(args.receivers),
                                       str(args.senders), str(args.seconds), "64", "1",
                                       str(args.window), str(proc.pid)]),
                capture_output=True, text=True, timeout=args.seconds + 60)
        finally:
            stop_server(proc)
            logfile.seek(0)
            server_log = logfile.read().decode(errors="replace")
    if out.returncode != 0:
        raise RuntimeError(f"{cfg.name}: load generator failed: {out.stderr.strip()}\n"
                           f"server output:\n{server_log[-2000:]}")
    fields = dict(kv.split("=", 1) for kv in out.stdout.split())
    return {k: float(fields[k]) for k in FIELDS}


def median(cfg: Config, key: str) -> float:
    return statistics.median(r[key] for r in cfg.results)


def table(configs: list[Config], uv: Config | None, node: Config | None) -> str:
    lines = ["| server | server CPUs | generator CPU | deliveries/s (median) | range | vs uvloop "
             "| vs Node.js | lines sent/s | server CPU | server CPU ns/delivery "
             "| sender latency ms (mean) | generator CPU load |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in configs:
        rates = [r["deliveries_per_sec"] for r in c.results]
        rate = median(c, "deliveries_per_sec")
        ns = statistics.median(r["server_cpu"] / max(r["deliveries_per_sec"], 1) * 1e9
                               for r in c.results)
        vs = [f"{rate / median(ref, 'deliveries_per_sec'):.2f}x" if ref and ref.results else "n/a"
              for ref in (uv, node)]
        lines.append(f"| {c.name} | {cpu_text(c.server_cpus)} | {cpu_text(c.load_cpus)} | "
                     f"{rate:,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | {vs[0]} | {vs[1]} | "
                     f"{median(c, 'sent_per_sec'):,.0f} | {median(c, 'server_cpu'):.2f} | "
                     f"{ns:,.0f} | {median(c, 'latency_ms_mean'):.1f} | "
                     f"{median(c, 'cpu'):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run")
    ap.add_argument("--receivers", type=int, default=1000)
    ap.add_argument("--senders", type=int, default=10)
    ap.add_argument("--window", type=int, default=256,
                    help="lines the slowest client may be behind the senders")
    args = ap.parse_args(argv)

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

    chat = ["-m", "pyparallel.examples.chat", "--port", "0", "--no-notices", "--workers"]
    configs = [Config("pyparallel, 1 worker", PY_FT, chat + ["1"], one, gen)]
    uv = node = None
    if os.path.exists(PY_GIL) and ensure_uvloop():
        uv = Config("asyncio + uvloop", PY_GIL,
                    [os.path.join(PEERS, "chat_asyncio.py"), "uvloop", "127.0.0.1", "0"], one, gen)
        configs.append(uv)
    else:
        log("no .venv-gil with uvloop: skipping asyncio + uvloop")
    if shutil.which("node"):
        node = Config("Node.js", shutil.which("node") or "node",
                      [os.path.join(PEERS, "chat_node.js"), "127.0.0.1", "0"], one, gen)
        configs.append(node)
    else:
        log("no node on PATH (tools/bench-deps installs it): skipping Node.js")
    configs.append(Config("pyparallel, 2 workers", PY_FT, chat + ["2"], two, gen2))

    busy = busy_fraction()
    if busy > 0.10:
        log(f"warning: the machine was {busy:.0%} busy before the runs: expect noisy numbers")
    log(f"{len(configs)} configurations x {args.runs} runs x {args.seconds:g}s, "
        f"{args.receivers} receivers, {args.senders} senders, window {args.window}")
    for run in range(args.runs):
        for cfg in configs:
            r = run_once(cfg, load, args)
            cfg.results.append(r)
            log(f"run {run + 1}/{args.runs} {cfg.name}: {r['deliveries_per_sec']:,.0f} "
                f"deliveries/s, server CPU {r['server_cpu']:.2f}, generator CPU {r['cpu']:.2f}")

    print(table(configs, uv, node))
    os.makedirs(RAW_DIR, exist_ok=True)
    raw = os.path.join(RAW_DIR, time.strftime("broadcast-%Y%m%d-%H%M%S.json"))
    with open(raw, "w") as f:
        json.dump({"busy_before": round(busy, 3), "receivers": args.receivers,
                   "senders": args.senders, "window": args.window, "seconds": args.seconds,
                   "cpus": cpus, "configs": [
                       {"name": c.name, "argv": c.argv, "server_cpus": c.server_cpus,
                        "load_cpus": c.load_cpus, "runs": c.results} for c in configs]},
                  f, indent=1)
    log(f"raw results: {os.path.relpath(raw, TOP)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
