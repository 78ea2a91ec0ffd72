"""ASGI requests per second and server CPU per request: pyparallel's ASGI
interface against uvicorn (uvloop + httptools) and granian
(``--interface asgi``), with a bare ASGI app (peers/asgi_app.py,
TechEmpower ``/json`` and ``/plaintext``, and ``/await``: the /json answer
after awaiting 1 ms) and a FastAPI hello app (peers/fastapi_hello.py).

Every server runs one worker (pyparallel: one worker thread on the
free-threaded interpreter; the peers on the GIL interpreter, .venv-gil),
pinned to the first CPU with taskset; wrk (``-t1 -c64``) is pinned to the
second. Method as bench/wsgi_bench.py (whose measurement and tables this
reuses): a 1 s warm-up, then SECONDS measured, RUNS interleaved rounds with
a fresh server each, medians; server CPU per request is the server's
utime + stime over the measured run divided by the requests served.

    python bench/asgi_bench.py [--runs 3] [--seconds 2] [--only px,uvicorn,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402  (wrk, CPU and process helpers)
import wsgi_bench as wb  # noqa: E402  (measure, table, ratio, the readiness check)

HOST = hb.HOST
PEERS = hb.PEERS
ENDPOINTS = ["/json", "/plaintext"]
BARE = ENDPOINTS + ["/await"]  # the bare app's /json after an await of 1 ms


def log(msg: str) -> None:
    print(f"asgi_bench: {msg}", file=sys.stderr, flush=True)


def pyparallel(target: str, python: str = hb.PY_FT):
    return lambda port, _d: [python, "-m", "pyparallel", "serve", target, "--interface",
                             "asgi", "--app-dir", PEERS, "--host", HOST, "--port", str(port),
                             "--workers", "1"]


def uvicorn(target: str):
    return lambda port, _d: [hb.PY_GIL, "-m", "uvicorn", "--host", HOST, "--port", str(port),
                             "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                             "--log-level", "warning", "--timeout-keep-alive", "600",
                             "--backlog", "4096", "--app-dir", PEERS, target]


def granian(target: str):
    return lambda port, _d: [hb.GRANIAN, "--interface", "asgi", "--workers", "1", "--http", "1",
                             "--no-ws", "--log-level", "warning", "--host", HOST, "--port",
                             str(port), "--working-dir", PEERS, target]


def servers() -> list[tuple[str, hb.Server]]:
    """(group, server) for every configuration that can run here."""
    out = [("bare", hb.Server("px", "pyparallel ASGI (io_uring)", "3.13t, 1 worker",
                              pyparallel("asgi_app:app"), BARE, {"PX_BACKEND": "uring"}))]
    if hb.python_has(hb.PY_GIL, "pyparallel"):  # the same server on the GIL interpreter
        out.append(("bare", hb.Server("px-gil", "pyparallel ASGI (io_uring)", "3.11, 1 worker",
                                      pyparallel("asgi_app:app", hb.PY_GIL), BARE,
                                      {"PX_BACKEND": "uring"})))
    if hb.python_has(hb.PY_GIL, "uvicorn"):
        out.append(("bare", hb.Server("uvicorn", "uvicorn + uvloop + httptools",
                                      "3.11, 1 worker", uvicorn("asgi_app:app"), BARE)))
    if os.path.exists(hb.GRANIAN):
        out.append(("bare", hb.Server("granian", "granian --interface asgi", "3.11, 1 worker",
                                      granian("asgi_app:app"), BARE)))
    if hb.python_has(hb.PY_FT, "fastapi"):
        out.append(("fastapi", hb.Server("px-fastapi", "pyparallel ASGI + FastAPI",
                                         "3.13t, 1 worker", pyparallel("fastapi_hello:app"),
                                         ENDPOINTS, {"PX_BACKEND": "uring"})))
    if hb.python_has(hb.PY_GIL, "fastapi"):
        if hb.python_has(hb.PY_GIL, "pyparallel"):
            out.append(("fastapi", hb.Server("px-gil-fastapi", "pyparallel ASGI + FastAPI",
                                             "3.11, 1 worker",
                                             pyparallel("fastapi_hello:app", hb.PY_GIL),
                                             ENDPOINTS, {"PX_BACKEND": "uring"})))
        if hb.python_has(hb.PY_GIL, "uvicorn"):
            out.append(("fastapi", hb.Server("uvicorn-fastapi", "uvicorn + FastAPI",
                                             "3.11, 1 worker", uvicorn("fastapi_hello:app"),
                                             ENDPOINTS)))
        if os.path.exists(hb.GRANIAN):
            out.append(("fastapi", hb.Server("granian-fastapi", "granian ASGI + FastAPI",
                                             "3.11, 1 worker", granian("fastapi_hello:app"),
                                             ENDPOINTS)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--only", help="comma-separated server keys")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        log("wrk is not installed")
        return 1
    hb.check_bodies = wb.check
    hb.BODIES.setdefault("/await", hb.BODIES["/json"])  # the same answer, after an await
    hb.ensure_gil_packages()
    configs = servers()
    if args.only:
        keep = set(args.only.split(","))
        configs = [c for c in configs if c[1].key in keep]
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, client_cpus = (cpus[:1], cpus[1:2]) if len(cpus) >= 2 else ([], [])
    results: dict = {}
    t_start = time.monotonic()
    for rnd in range(args.runs):
        for _, srv in configs:
            try:
                run = hb.Running(srv, server_cpus)
            except Exception as e:
                log(f"{srv.name}: {e}")
                continue
            try:
                for path in srv.endpoints:
                    r = wb.measure(run, path, args.seconds, args.conns, client_cpus)
                    results.setdefault(srv.key, {}).setdefault(path, []).append(r)
                    log(f"round {rnd + 1} {srv.name} {path}: {r['rps']:,.0f} req/s, "
                        f"{r['us_per_req']:.1f} µs CPU/req, busy {r['busy_cpus']:.2f} CPUs")
            finally:
                run.stop()
    busy = [r["busy_cpus"] for per in results.values() for rs in per.values() for r in rs]
    print(f"### ASGI ({args.runs} rounds × {args.seconds:g} s per endpoint, wrk -t1 "
          f"-c{args.conns}, medians; {time.monotonic() - t_start:.0f} s in all)\n")
    for group in ("bare", "fastapi"):
        rows = [c for c in configs if c[0] == group]
        if rows:
            print(wb.table(rows, results, BARE if group == "bare" else ENDPOINTS) + "\n")
    print(f"pyparallel / granian ASGI, /json: {wb.ratio(results, 'px', 'granian', '/json')}; "
          f"/ uvicorn: {wb.ratio(results, 'px', 'uvicorn', '/json')}. FastAPI /json: "
          f"{wb.ratio(results, 'px-fastapi', 'granian-fastapi', '/json')} of granian, "
          f"{wb.ratio(results, 'px-fastapi', 'uvicorn-fastapi', '/json')} of uvicorn. "
          f"/await: {wb.ratio(results, 'px', 'granian', '/await')} of granian, "
          f"{wb.ratio(results, 'px', 'uvicorn', '/await')} of uvicorn.")
    if busy:
        print(f"Both CPUs busy {statistics.median(busy):.2f} CPUs (median) during the runs "
              "(server + wrk + anything else on the machine).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
