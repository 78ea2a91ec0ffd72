"""A Flask view doing ~200 µs of pure Python per request, on 1 and 2 workers:
pyparallel serve with 1 and with 2 worker threads (one process, free-threaded
3.13t) against gunicorn with 2 worker processes, sync and gthread (3.11).
``--app fastapi``: the same work in a FastAPI view (peers/fastapi_work.py,
``async def``) under ``pyparallel serve --interface asgi`` with 1 and 2
workers against uvicorn with 2 worker processes (3.11).

The view is peers/flask_work.py (``/work``: a fixed loop of integer
arithmetic, no sleep, no I/O). For each server: requests per second, server
CPU per request, requests per server CPU-second (the server's efficiency) and
the server's memory at the end of the measured run, summed over all its
processes: RSS, and PSS from /proc/PID/smaps_rollup (gunicorn's forked
workers share pages with the arbiter, which RSS counts once per process).

Pinning, on a 2-CPU machine: the 1-worker server is pinned to CPU 0 and
wrk to CPU 1, as in wsgi_bench.py. A 2-worker server needs both CPUs, so it
is allowed both and wrk stays pinned to CPU 1, sharing it with a worker:
requests per second then depend on how much CPU wrk (and anything else on
the machine) takes, while requests per server CPU-second only count the
server's own CPU time and are the robust figure. ``wrk -t1 -c64``; per
server a 1 s warm-up, then SECONDS measured; RUNS rounds, interleaved, a
fresh server each round; medians. The whole run stops starting servers
after BUDGET seconds (default 170) so it stays within 3 minutes.

    python bench/wsgi_scale.py [--runs 3] [--seconds 3] [--only px1,px2,...]
                               [--baseline OTHER/bin/python] [--app flask|fastapi]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402  (the wrk, CPU and process helpers)

HOST = hb.HOST
PEERS = hb.PEERS
GUNICORN = os.path.join(hb.TOP, ".venv-gil", "bin", "gunicorn")
UVICORN = os.path.join(hb.TOP, ".venv-gil", "bin", "uvicorn")
PATH = "/work"
# the app under test: its module, and pyparallel serve's interface for it
APPS = {"flask": ("flask_work:app", "wsgi"), "fastapi": ("fastapi_work:app", "asgi")}
APP = APPS["flask"]


def log(msg: str) -> None:
    print(f"wsgi_scale: {msg}", file=sys.stderr, flush=True)


def pyparallel(workers: int, python: str = hb.PY_FT):
    return lambda port, _d: [python, "-m", "pyparallel", "serve", APP[0], "--interface", APP[1],
                             "--app-dir", PEERS, "--host", HOST, "--port", str(port),
                             "--workers", str(workers)]


def uvicorn(port: int, _d: object) -> list[str]:
    return [UVICORN, "--app-dir", PEERS, "--host", HOST, "--port", str(port), "--workers", "2",
            "--log-level", "warning", "--no-access-log", "--backlog", "4096", APP[0]]


def gunicorn(worker: str):
    threads = ["--threads", "4"] if worker == "gthread" else []
    return lambda port, _d: [GUNICORN, "-k", worker, "-w", "2", *threads, "--chdir", PEERS,
                             "-b", f"{HOST}:{port}", "--keep-alive", "600", "--log-level",
                             "warning", "--backlog", "4096", "flask_work:app"]


def servers(cpus: list[int], baseline: str | None = None) -> list[tuple[hb.Server, list[int]]]:
    """(server, the CPUs it may use) for every configuration that can run here."""
    one, both = cpus[:1], cpus[:2]
    uring = {"PX_BACKEND": "uring"}
    out = [(hb.Server("px1", "pyparallel serve", "3.13t, 1 worker thread", pyparallel(1),
                      [PATH], uring), one),
           (hb.Server("px2", "pyparallel serve", "3.13t, 2 worker threads", pyparallel(2),
                      [PATH], uring), both)]
    if baseline:  # another build, in the same rounds
        out += [(hb.Server("px1-base", "pyparallel serve (baseline)", "3.13t, 1 worker thread",
                           pyparallel(1, baseline), [PATH], uring), one),
                (hb.Server("px2-base", "pyparallel serve (baseline)", "3.13t, 2 worker threads",
                           pyparallel(2, baseline), [PATH], uring), both)]
    if APP[1] == "asgi":
        if os.path.exists(UVICORN) and hb.python_has(hb.PY_GIL, "fastapi"):
            out.append((hb.Server("uvicorn", "uvicorn", "3.11, 2 processes", uvicorn, [PATH]),
                        both))
        else:
            log("no uvicorn or FastAPI in .venv-gil: uvicorn skipped")
    elif os.path.exists(GUNICORN) and hb.python_has(hb.PY_GIL, "flask"):
        out.append((hb.Server("gunicorn-sync", "gunicorn sync", "3.11, 2 processes",
                              gunicorn("sync"), [PATH]), both))
        out.append((hb.Server("gunicorn-gthread", "gunicorn gthread",
                              "3.11, 2 processes × 4 threads", gunicorn("gthread"), [PATH]),
                    both))
    else:
        log("no gunicorn or Flask in .venv-gil: gunicorn skipped")
    return out


def check(port: int, endpoints: list[str]) -> dict:
    """/work answers 200 with the view's total (keep-alive not required: sync)."""
    with socket.create_connection((HOST, port), timeout=20) as s:
        status, _headers, body, size = hb.http_get(s, PATH)
    if not (status.startswith(b"HTTP/1.1 200") or status.startswith(b"HTTP/1.0 200")):
        raise RuntimeError(f"{PATH}: {status!r}")
    if not isinstance(json.loads(body).get("total"), int):
        raise RuntimeError(f"{PATH}: body {body!r}")
    return {PATH: {"response_bytes": size}}


def pss_kib(pids: list[int]) -> int | None:
    """PSS summed over PIDS (None where smaps_rollup is missing)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except FileNotFoundError:
            return None
        except OSError:
            pass
    return total


VIEW_COST = """\
import sys, time
sys.path.insert(0, sys.argv[1])
from werkzeug.test import create_environ
from flask_work import app, work

def call():
    out = app(create_environ("/work"), lambda status, headers, exc_info=None: None)
    b"".join(out)
    out.close()

def best(fn):
    fn()
    b = 1e9
    for _ in range(20):
        t = time.process_time()
        for _ in range(20):
            fn()
        b = min(b, (time.process_time() - t) / 20)
    return b * 1e6

print(best(work), best(call))
"""


def view_cost(python: str) -> tuple[float, float]:
    """µs per call on PYTHON, in-process, best of 20 × 20: work() alone, and the
    whole Flask app called as WSGI (environ built by werkzeug, body joined)."""
    r = subprocess.run([python, "-c", VIEW_COST, PEERS], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        log(f"{python}: {r.stderr.strip()[-300:]}")
        return float("nan"), float("nan")
    work, call = r.stdout.split()
    return float(work), float(call)


def measure(run: hb.Running, seconds: float, conns: int, wrk_cpus: list[int]) -> dict:
    hb.run_wrk(run.port, PATH, 1, conns, wrk_cpus)  # warm-up (wrk counts whole seconds)
    pids = run.pids()
    b0, t0 = hb.busy_ticks(), hb.cpu_ticks(pids)
    r = hb.run_wrk(run.port, PATH, seconds, conns, wrk_cpus)
    t1, b1 = hb.cpu_ticks(pids), hb.busy_ticks()
    pids = run.pids()  # gunicorn may have replaced a worker: memory of those alive now
    cpu = (t1 - t0) / hb.CLK_TCK
    return {"rps": r["rps"], "requests": r["requests"], "server_cpu_s": cpu,
            "us_per_req": cpu * 1e6 / max(r["requests"], 1),
            "req_per_cpu_s": r["requests"] / cpu if cpu > 0 else 0.0,
            "server_cpus": cpu / r["seconds"],
            "rss_kib": hb.rss_kib(pids), "pss_kib": pss_kib(pids), "processes": len(pids),
            "errors": sum(r["socket_errors"].values()) + r["non_2xx"],
            "busy_cpus": (b1 - b0) / hb.CLK_TCK / r["seconds"], "loadavg": hb.loadavg()}


def med(rs: list[dict], key: str) -> float:
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def table(configs: list[tuple[hb.Server, list[int]]], results: dict) -> str:
    rows = ["| server | runtime | CPUs allowed | req/s | server CPUs used | µs CPU/req "
            "| req per CPU-s | RSS MiB | PSS MiB | runs |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s, cpus in configs:
        rs = results.get(s.key, [])
        if not rs:
            continue
        rows.append(f"| {s.name} | {s.runtime} | {','.join(map(str, cpus))} "
                    f"| {med(rs, 'rps'):,.0f} | {med(rs, 'server_cpus'):.2f} "
                    f"| {med(rs, 'us_per_req'):.0f} | {med(rs, 'req_per_cpu_s'):,.0f} "
                    f"| {med(rs, 'rss_kib') / 1024:.1f} | {med(rs, 'pss_kib') / 1024:.1f} "
                    f"| {len(rs)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--budget", type=float, default=170.0, help="seconds; no new server after")
    ap.add_argument("--only", help="comma-separated server keys")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--baseline", help="another interpreter with pyparallel (another build): "
                    "its px1-base and px2-base run in the same rounds")
    ap.add_argument("--app", choices=sorted(APPS), default="flask")
    args = ap.parse_args(argv)
    global APP
    APP = APPS[args.app]
    if shutil.which("wrk") is None:
        log("wrk is not installed")
        return 1
    t_start = time.monotonic()
    hb.check_bodies = check  # Running's readiness check
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        log("needs 2 CPUs")
        return 1
    wrk_cpus = cpus[1:2]
    configs = servers(cpus, args.baseline)
    if args.only:
        keep = set(args.only.split(","))
        configs = [c for c in configs if c[0].key in keep]
    cost = {"3.13t": view_cost(hb.PY_FT), "3.11": view_cost(hb.PY_GIL)}
    log(f"work() alone / the whole Flask call: {cost['3.13t'][0]:.0f} / {cost['3.13t'][1]:.0f}"
        f" µs on 3.13t, {cost['3.11'][0]:.0f} / {cost['3.11'][1]:.0f} µs on 3.11")
    load0 = hb.loadavg()
    results: dict = {}
    for rnd in range(args.runs):
        for srv, srv_cpus in configs:
            if time.monotonic() - t_start > args.budget:
                log(f"budget of {args.budget:g} s spent: round {rnd + 1} cut short")
                break
            try:
                run = hb.Running(srv, srv_cpus)
            except Exception as e:
                log(f"{srv.key}: {e}")
                continue
            try:
                r = measure(run, args.seconds, args.conns, wrk_cpus)
            except Exception as e:
                log(f"{srv.key}: {e}")
                continue
            finally:
                run.stop()
            results.setdefault(srv.key, []).append(r)
            log(f"round {rnd + 1} {srv.key}: {r['rps']:,.0f} req/s, {r['us_per_req']:.0f} µs "
                f"CPU/req, {r['req_per_cpu_s']:,.0f} req/CPU-s, RSS {r['rss_kib'] / 1024:.0f} "
                f"MiB, PSS {(r['pss_kib'] or 0) / 1024:.0f} MiB, {r['errors']} errors, "
                f"machine busy {r['busy_cpus']:.2f} CPUs, load {r['loadavg']:.1f}")
    elapsed = time.monotonic() - t_start
    print(f"### {args.app} view with ~200 µs of Python per request ({args.runs} rounds × "
          f"{args.seconds} s, wrk -t1 -c{args.conns} on CPU {wrk_cpus[0]}, medians; "
          f"{elapsed:.0f} s in all)\n")
    print(f"In-process, µs per call (work() alone / the whole Flask app called as WSGI): "
          f"{cost['3.13t'][0]:.0f} / {cost['3.13t'][1]:.0f} on 3.13t, {cost['3.11'][0]:.0f} / "
          f"{cost['3.11'][1]:.0f} on 3.11.\n")
    print(table(configs, results) + "\n")

    def ratio(a: str, b: str, key: str) -> str:
        ra, rb = results.get(a), results.get(b)
        if not ra or not rb or not med(rb, key):
            return "n/a"
        return f"{med(ra, key) / med(rb, key):.2f}x"

    gun = [k for k in ("gunicorn-sync", "gunicorn-gthread", "uvicorn") if results.get(k)]
    best = max(gun, key=lambda k: med(results[k], "rps")) if gun else None
    print(f"pyparallel 2 workers / 1 worker: {ratio('px2', 'px1', 'rps')} req/s, "
          f"{ratio('px2', 'px1', 'req_per_cpu_s')} req per CPU-s.")
    if results.get("px2-base"):
        print(f"baseline 2 workers / 1 worker: {ratio('px2-base', 'px1-base', 'rps')} req/s, "
              f"{ratio('px2-base', 'px1-base', 'req_per_cpu_s')} req per CPU-s.")
    if best:
        print(f"pyparallel 2 workers / {best} (the faster peer): "
              f"{ratio('px2', best, 'rps')} req/s, {ratio('px2', best, 'req_per_cpu_s')} "
              f"req per CPU-s, {ratio('px2', best, 'pss_kib')} PSS, "
              f"{ratio('px2', best, 'rss_kib')} RSS.")
    busy = [r["busy_cpus"] for rs in results.values() for r in rs]
    loads = [r["loadavg"] for rs in results.values() for r in rs]
    if busy:
        print(f"Machine: both CPUs busy {statistics.median(busy):.2f} CPUs (median, server + "
              f"wrk + others) during the runs; 1-minute load average {load0:.1f} at the start, "
              f"{min(loads):.1f}–{max(loads):.1f} during.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"view_us": cost, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
