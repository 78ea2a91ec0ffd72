"""TechEmpower's database tests against a real PostgreSQL: requests per second
and server CPU per request for pyparallel's ``tfb --db`` and the Python peers,
each written the way its own documentation recommends (bench/peers/tfb_db_*.py):
granian WSGI on psycopg's ConnectionPool, granian ASGI on psycopg's
AsyncConnectionPool, uvicorn (uvloop, httptools) on asyncpg's pool.

One throwaway cluster (tools/pg-cluster) holds TechEmpower's database for the
whole run. The server under test is pinned to the first CPU; PostgreSQL (every
one of its processes, and so the backends it forks) and wrk (``-t1 -cCONNS``)
share the second, as a one-core server beside its database would. For each
server and endpoint (``/db``, ``/queries?queries=20``, ``/fortunes``,
``/updates?queries=20``): a 2 s warm-up, then SECONDS measured; RUNS rounds
(a fresh server per round), medians. Server CPU per request is the server's
utime + stime (all its processes and threads) over the measured run divided by
the requests answered; PostgreSQL's CPU per request is measured the same way.
Before measuring, every endpoint of every server is checked: status 200,
the JSON shapes, the clamped counts and the escaped fortunes.

    python bench/db_bench.py [--runs 1] [--seconds 5] [--conns 64]
                             [--only px,granian-wsgi,...] [--dsn DSN]
                             [--px-python PYTHON] [--json FILE]

``--dsn`` measures against a database started elsewhere (nothing is pinned
for it then); ``--px-python`` runs pyparallel's side with another interpreter
that has pyparallel installed.
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
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402  (the wrk, CPU and process helpers)

sys.path.insert(0, os.path.join(hb.TOP, "tools"))
import pg_cluster  # noqa: E402

HOST = hb.HOST
ENDPOINTS = ["/db", "/queries?queries=20", "/fortunes", "/updates?queries=20"]
# The targets: pyparallel against the best peer.
TARGETS = {"/db": 1.5, "/queries?queries=20": 2.0, "/fortunes": 1.5, "/updates?queries=20": 2.0}
DRIVERS = ["psycopg", "psycopg_pool", "asyncpg", "jinja2", "granian", "uvicorn", "uvloop",
           "httptools"]
# Connections in each peer's pool; granian WSGI's backpressure (its docs: for a
# database with a limited number of connections, set backpressure to it and
# leave the blocking threads at their default, half of it).
POOL = 16


def log(msg: str) -> None:
    print(f"db_bench: {msg}", file=sys.stderr, flush=True)


def _version(python: str) -> str:
    """The interpreter's version as the tables write it: "3.13t", "3.11"."""
    code = ("import sys, sysconfig; print('%d.%d%s' % (*sys.version_info[:2], "
            "'t' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''))")
    try:
        return subprocess.run([python, "-c", code], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def servers(px_python: str, dsn: str) -> list[hb.Server]:
    env = {"TFB_DB_DSN": dsn, "TFB_DB_POOL": str(POOL)}
    out = [hb.Server("px", "pyparallel tfb --db (io_uring)", f"{_version(px_python)}, 1 worker",
                     lambda port, _d: [px_python, "-m", "pyparallel.examples.tfb", "--host", HOST,
                                       "--port", str(port), "--workers", "1", "--db", dsn],
                     ENDPOINTS, {"PX_BACKEND": "uring"})]
    if os.path.exists(hb.GRANIAN):
        out.append(hb.Server(
            "granian-wsgi", "granian WSGI + psycopg_pool", "3.11, 1 worker, "
            f"backpressure {POOL}",
            lambda port, _d: [hb.GRANIAN, "--interface", "wsgi", "--workers", "1",
                              "--backpressure", str(POOL), "--http", "1",
                              "--no-ws", "--log-level", "warning", "--host", HOST, "--port",
                              str(port), "--working-dir", hb.PEERS, "tfb_db_wsgi:app"],
            ENDPOINTS, env))
        out.append(hb.Server(
            "granian-asgi", "granian ASGI + psycopg AsyncConnectionPool", "3.11, 1 worker",
            lambda port, _d: [hb.GRANIAN, "--interface", "asgi", "--workers", "1", "--http", "1",
                              "--no-ws", "--log-level", "warning", "--host", HOST, "--port",
                              str(port), "--working-dir", hb.PEERS, "tfb_db_asgi:app"],
            ENDPOINTS, env))
    out.append(hb.Server(
        "uvicorn-asyncpg", "uvicorn + uvloop + httptools + asyncpg", "3.11, 1 process",
        lambda port, _d: [hb.PY_GIL, "-m", "uvicorn", "--host", HOST, "--port", str(port),
                          "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                          "--log-level", "warning", "--timeout-keep-alive", "600",
                          "--backlog", "4096", "--app-dir", hb.PEERS, "tfb_db_asyncpg:app"],
        ENDPOINTS, env))
    return out


def check_endpoint(path: str, body: bytes) -> None:
    """The shape TechEmpower's rules give each answer."""
    if path == "/fortunes":
        text = body.decode()
        for part in ("&lt;script&gt;", "フレームワークのベンチマーク",
                     "Additional fortune added at request time."):
            if part not in text:
                raise RuntimeError(f"/fortunes lacks {part!r}")
        if "<script>" in text:
            raise RuntimeError("/fortunes does not escape the <script> fortune")
        return
    data = json.loads(body)
    rows = [data] if path == "/db" else data
    if path != "/db" and len(rows) != 20:
        raise RuntimeError(f"{path}: {len(rows)} rows")
    for row in rows:
        if set(row) != {"id", "randomNumber"} or not 1 <= row["id"] <= 10000:
            raise RuntimeError(f"{path}: row {row!r}")


def check(port: int, endpoints: list[str]) -> dict:
    """Every endpoint on one kept-alive connection, then the clamping rule."""
    out = {}
    with socket.create_connection((HOST, port), timeout=30) as s:
        for path in endpoints + ["/queries?queries=0", "/queries?queries=foo",
                                 "/queries?queries=501"]:
            status, headers, body, size = hb.http_get(s, path)
            if not status.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: {status!r} {body[:200]!r}")
            if path in endpoints:
                check_endpoint(path, body)
                out[path] = {"response_bytes": size}
            else:
                n = len(json.loads(body))
                if n != (500 if path.endswith("501") else 1):
                    raise RuntimeError(f"{path}: {n} rows")
    return out


def pin_tree(pid: int, cpus: list[int]) -> None:
    """PostgreSQL's processes onto CPUS; the backends it forks later inherit it."""
    for p in pg_cluster.process_tree(pid):
        try:
            os.sched_setaffinity(p, cpus)
        except OSError:
            pass


def measure(run: hb.Running, path: str, seconds: float, conns: int, wrk_cpus: list[int],
            pg_pid: int | None) -> dict:
    hb.run_wrk(run.port, path, 2, conns, wrk_cpus)  # warm-up: pools filled, statements prepared
    pids = run.pids()
    db_pids = pg_cluster.process_tree(pg_pid) if pg_pid else []
    b0, t0, d0 = hb.busy_ticks(), hb.cpu_ticks(pids), hb.cpu_ticks(db_pids)
    r = hb.run_wrk(run.port, path, seconds, conns, wrk_cpus)
    t1, d1, b1 = hb.cpu_ticks(pids), hb.cpu_ticks(db_pids), hb.busy_ticks()
    cpu, db_cpu = (t1 - t0) / hb.CLK_TCK, (d1 - d0) / hb.CLK_TCK
    n = max(r["requests"], 1)
    return {"rps": r["rps"], "requests": r["requests"], "server_cpu_s": cpu,
            "us_per_req": cpu * 1e6 / n, "db_us_per_req": db_cpu * 1e6 / n if pg_pid else None,
            "errors": sum(r["socket_errors"].values()) + r["non_2xx"],
            "latency_avg_ms": r["latency_avg_ms"],
            "busy_cpus": (b1 - b0) / hb.CLK_TCK / r["seconds"]}


def med(results: dict, key: str, path: str, field: str) -> float | None:
    xs = [r[field] for r in results.get(key, {}).get(path, []) if r.get(field) is not None]
    return statistics.median(xs) if xs else None


def table(srvs: list[hb.Server], results: dict) -> str:
    short = {e: e.split("=")[0].replace("?queries", "") + ("=20" if "=" in e else "")
             for e in ENDPOINTS}
    rows = ["| server | runtime | " + " | ".join(f"{short[e]} req/s | µs CPU/req"
                                                for e in ENDPOINTS) + " |",
            "|---|---|" + "---:|---:|" * len(ENDPOINTS)]
    for s in srvs:
        cells = []
        for e in ENDPOINTS:
            rps, us = med(results, s.key, e, "rps"), med(results, s.key, e, "us_per_req")
            cells += ["–", "–"] if rps is None else [f"{rps:,.0f}", f"{us:.0f}"]
        rows.append(f"| {s.name} | {s.runtime} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def db_table(srvs: list[hb.Server], results: dict) -> str:
    rows = ["| server | " + " | ".join(f"{e} PostgreSQL µs CPU/req" for e in ENDPOINTS) + " |",
            "|---|" + "---:|" * len(ENDPOINTS)]
    for s in srvs:
        cells = []
        for e in ENDPOINTS:
            v = med(results, s.key, e, "db_us_per_req")
            cells.append("–" if v is None else f"{v:.0f}")
        rows.append(f"| {s.name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ratios(results: dict, peers: list[str]) -> list[str]:
    out = []
    for e in ENDPOINTS:
        px = med(results, "px", e, "rps")
        best = max(((med(results, k, e, "rps") or 0.0, k) for k in peers), default=(0.0, ""))
        if px is None or not best[0]:
            out.append(f"* `{e}`: n/a (pyparallel or every peer missing)")
            continue
        ratio = px / best[0]
        verdict = "met" if ratio >= TARGETS[e] else "not met"
        out.append(f"* `{e}`: pyparallel / best peer ({best[1]}) = {ratio:.2f}x "
                   f"(target {TARGETS[e]:g}x: {verdict})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--only", help="comma-separated server keys")
    ap.add_argument("--dsn", help="an existing database instead of a throwaway cluster")
    ap.add_argument("--px-python", default=hb.PY_FT,
                    help="the interpreter (with pyparallel) for pyparallel's side")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        log("wrk is not installed (tools/bench-deps)")
        return 1
    hb.check_bodies = check  # Running's readiness check
    missing = [m for m in DRIVERS if not hb.python_has(hb.PY_GIL, m)]
    if missing:
        log(f"installing {', '.join(missing)} into .venv-gil (bench/requirements.txt)")
        subprocess.run([hb.PY_GIL, "-m", "pip", "install", "-q", "-r",
                        os.path.join(hb.BENCH, "requirements.txt")], check=False)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, other_cpus = (cpus[:1], cpus[1:2]) if len(cpus) >= 2 else ([], [])
    cluster = None
    pg_pid = None
    dsn = args.dsn
    if dsn is None:
        cluster = pg_cluster.Cluster(tempfile.mkdtemp(prefix="px-db-bench-"))
        try:
            dsn = cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        pg_pid = cluster.pid()
        if other_cpus and pg_pid:
            pin_tree(pg_pid, other_cpus)
    configs = servers(args.px_python, dsn)
    if args.only:
        keep = set(args.only.split(","))
        configs = [c for c in configs if c.key in keep]
    results: dict = {}
    failed: dict[str, str] = {}
    t_start = time.monotonic()
    try:
        for rnd in range(args.runs):
            for srv in configs:
                if srv.key in failed:
                    continue
                try:
                    run = hb.Running(srv, server_cpus)
                except Exception as e:
                    failed[srv.key] = str(e).strip().splitlines()[-1][:200]
                    log(f"{srv.name}: {e}")
                    continue
                try:
                    for path in srv.endpoints:
                        r = measure(run, path, args.seconds, args.conns, other_cpus, pg_pid)
                        results.setdefault(srv.key, {}).setdefault(path, []).append(r)
                        log(f"round {rnd + 1} {srv.name} {path}: {r['rps']:,.0f} req/s, "
                            f"{r['us_per_req']:.0f} µs CPU/req, errors {r['errors']}, "
                            f"busy {r['busy_cpus']:.2f} CPUs")
                finally:
                    run.stop()
    finally:
        if cluster is not None:
            cluster.destroy()
    ran = [s for s in configs if s.key in results]
    print(f"### Database ({args.runs} round(s) × {args.seconds:g} s per endpoint, wrk -t1 "
          f"-c{args.conns}, server on CPU {server_cpus}, PostgreSQL and wrk on CPU "
          f"{other_cpus}; {time.monotonic() - t_start:.0f} s in all)\n")
    print(table(ran, results) + "\n")
    if pg_pid:
        print(db_table(ran, results) + "\n")
    print("\n".join(ratios(results, [s.key for s in ran if s.key != "px"])))
    for key, why in failed.items():
        print(f"\n{key} did not run: {why}")
    busy = [r["busy_cpus"] for per in results.values() for rs in per.values() for r in rs]
    if busy:
        print(f"\nBoth CPUs busy {statistics.median(busy):.2f} CPUs (median) during the runs "
              "(server + PostgreSQL + wrk + anything else on the machine).")
    errors = {f"{k} {e}": sum(r["errors"] for r in rs)
              for k, per in results.items() for e, rs in per.items()}
    bad = {k: v for k, v in errors.items() if v}
    if bad:
        print(f"\nErrors or non-2xx answers: {bad}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "failed": failed}, f, indent=1)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
