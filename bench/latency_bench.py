"""Percentile latency at a fixed request rate: pyparallel ``/json`` against nginx,
Node.js and uvicorn, the picture PyParallel drew against Tornado and Node.js.

Each server runs on the first CPU (one worker or process, as in
``http_bench.py``, whose server definitions this reuses); ``pyparallel-bench``
(the project's open-loop generator, latency counted from each request's
scheduled send time) runs on the second CPU at RATE requests/s over CONNS
connections for SECONDS, after a 2-second warm-up at the same rate. Every server
runs RUNS times, interleaved; the table gives the median of each percentile over
the runs and the chart (``--chart``) draws each server's run with the median
p99.9.

    python bench/latency_bench.py [--rate 20000] [--conns 64] [--seconds 15]
                                  [--runs 3] [--chart docs/latency.png]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

import http_bench  # noqa: E402  (bench/ is on sys.path)

SERVERS = ("px", "nginx", "node", "uvicorn")
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99, 100.0)


def generate(port: int, rate: float, conns: int, seconds: float, cpus: list[int],
             label: str, out: str) -> dict:
    argv = http_bench.pinned(cpus, [
        http_bench.PY_FT, "-m", "pyparallel.loadgen", f"http://{http_bench.HOST}:{port}/json",
        "--rate", str(rate), "--connections", str(conns), "--duration", str(seconds),
        "--json", out, "--label", label])
    res = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if res.returncode != 0:
        raise RuntimeError(f"pyparallel-bench failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")
    with open(out) as f:
        return json.load(f)


def at(run: dict, p: float) -> float:
    """The latency (ms) at percentile p of a run's summary."""
    for row in run["latency_ms"]["summary"]:
        if abs(row["percentile"] - p) < 1e-9:
            return row["value"]
    if p == 100.0:
        return run["latency_ms"]["max"]
    raise KeyError(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--chart", default=None, help="write the percentile chart here")
    ap.add_argument("--max-wait", type=float, default=600.0)
    args = ap.parse_args(argv)
    http_bench.ensure_gil_packages()
    wanted = args.servers.split(",")
    servers = [s for s in http_bench.servers() if s.key in wanted]
    server_cpus, client_cpus = [0], [1]
    tmp = tempfile.mkdtemp(prefix="latency-bench-")
    runs: dict[str, list[dict]] = {s.key: [] for s in servers}
    http_bench.wait_quiet(args.max_wait)
    for i in range(args.runs):
        for srv in servers:
            run = http_bench.Running(srv, server_cpus)
            try:
                generate(run.port, args.rate, args.conns, 2.0, client_cpus, "warm-up",
                         os.path.join(tmp, "warm.json"))
                out = os.path.join(tmp, f"{srv.key}-{i}.json")
                r = generate(run.port, args.rate, args.conns, args.seconds, client_cpus,
                             srv.name, out)
                r["file"] = out
                runs[srv.key].append(r)
                print(f"run {i + 1} {srv.name}: achieved {r['achieved_rate']:,.0f}/s, "
                      f"p50 {at(r, 50):.3f} ms, p99 {at(r, 99):.3f} ms, "
                      f"p99.9 {at(r, 99.9):.3f} ms, max {at(r, 100):.3f} ms, "
                      f"errors {sum(r['errors'].values())}", flush=True)
            finally:
                run.stop()
    head = " | ".join(f"p{p:g}" if p < 100 else "max" for p in PERCENTILES)
    print(f"\n| server | achieved req/s | {head} (ms, medians of {args.runs} runs) | errors |")
    print("|---|---|" + "---|" * len(PERCENTILES) + "---|")
    medians = {}
    for srv in servers:
        rs = runs[srv.key]
        if not rs:
            continue
        cells = [statistics.median(at(r, p) for r in rs) for p in PERCENTILES]
        medians[srv.key] = dict(zip(PERCENTILES, cells))
        errs = sum(sum(r["errors"].values()) + r["non_2xx_3xx"] for r in rs)
        print(f"| {srv.name} | {statistics.median(r['achieved_rate'] for r in rs):,.0f} | "
              + " | ".join(f"{c:.3f}" for c in cells) + f" | {errs} |")
    if "px" in medians and "nginx" in medians:
        a, b = medians["px"][99.9], medians["nginx"][99.9]
        print(f"\npyparallel p99.9 {a:.3f} ms vs nginx {b:.3f} ms: "
              f"{'met' if a <= b else 'not met'} (target: no worse than nginx)")
    if args.chart:
        files = []
        for srv in servers:
            rs = runs[srv.key]
            if rs:
                mid = sorted(rs, key=lambda r: at(r, 99.9))[len(rs) // 2]
                files.append(mid["file"])
        subprocess.run([http_bench.PY_FT, "-m", "pyparallel.loadgen", "chart", *files,
                        "-o", args.chart, "--title",
                        f"/json at {args.rate:,.0f} requests/s, server on one core"], check=True)
        print(f"chart: {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
