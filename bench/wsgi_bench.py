"""WSGI requests per second and server CPU per request: pyparallel's WSGI
interface against granian (WSGI), gunicorn (gthread and sync) and, where they
install, bjoern and meinheld; then the same Flask app on pyparallel, granian
and gunicorn.

Every server runs one worker (pyparallel: one worker thread on the
free-threaded interpreter; the peers on the GIL interpreter, .venv-gil),
pinned to the first CPU with taskset; wrk (``-t1 -c64``) is pinned to the
second. The bare app is peers/wsgi_app.py (TechEmpower ``/json`` and
``/plaintext``), the Flask app peers/flask_hello.py. For each server and
endpoint: a 1 s warm-up, then SECONDS measured; RUNS rounds, interleaved
(a fresh server per round); the tables give medians. Server CPU per request
is the server's utime + stime (all its processes and threads, /proc) over
the measured run divided by the requests served. gunicorn's sync worker
closes every connection (no keep-alive), so wrk reconnects for each request
there.

The machine may be shared: the tables say how busy the other CPUs were
(``other CPU``, in CPUs, from /proc/stat less the server and wrk).

    python bench/wsgi_bench.py [--runs 3] [--seconds 2] [--only px,granian,...]
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
OPTIONAL = ("bjoern", "meinheld")  # C servers whose builds often fail: tried once


def log(msg: str) -> None:
    print(f"wsgi_bench: {msg}", file=sys.stderr, flush=True)


def pyparallel(target: str, python: str = hb.PY_FT):
    return lambda port, _d: [python, "-m", "pyparallel", "serve", target, "--app-dir", PEERS,
                             "--host", HOST, "--port", str(port), "--workers", "1"]


def granian(target: str):
    return lambda port, _d: [hb.GRANIAN, "--interface", "wsgi", "--workers", "1", "--http", "1",
                             "--no-ws", "--log-level", "warning", "--host", HOST, "--port",
                             str(port), "--working-dir", PEERS, target]


def gunicorn(target: str, worker: str):
    threads = ["--threads", "4"] if worker == "gthread" else []
    return lambda port, _d: [GUNICORN, "-k", worker, "-w", "1", *threads, "--chdir", PEERS,
                             "-b", f"{HOST}:{port}", "--keep-alive", "600", "--log-level",
                             "warning", "--backlog", "4096", target]


BJOERN = "import sys, bjoern, wsgi_app; bjoern.run(wsgi_app.app, sys.argv[1], int(sys.argv[2]))"
MEINHELD = ("import sys, meinheld, wsgi_app; meinheld.listen((sys.argv[1], int(sys.argv[2])));"
            " meinheld.run(wsgi_app.app)")


def c_server(code: str):
    return lambda port, _d: [hb.PY_GIL, "-c", f"import sys; sys.path.insert(0, {PEERS!r}); "
                             + code, HOST, str(port)]


def servers(installed: set[str]) -> list[tuple[str, hb.Server]]:
    """(group, server) for every configuration that can run here."""
    bare = ["/json", "/plaintext"]
    out = [("bare", hb.Server("px", "pyparallel WSGI (io_uring)", "3.13t, 1 worker",
                              pyparallel("wsgi_app:app"), bare, {"PX_BACKEND": "uring"}))]
    if hb.python_has(hb.PY_GIL, "pyparallel"):  # the same server on the peers' interpreter
        out.append(("bare", hb.Server("px-gil", "pyparallel WSGI (io_uring)", "3.11, 1 worker",
                                      pyparallel("wsgi_app:app", hb.PY_GIL), bare,
                                      {"PX_BACKEND": "uring"})))
    if os.path.exists(hb.GRANIAN):
        out.append(("bare", hb.Server("granian", "granian --interface wsgi", "3.11, 1 worker",
                                      granian("wsgi_app:app"), bare)))
    if os.path.exists(GUNICORN):
        for worker in ("gthread", "sync"):
            out.append(("bare", hb.Server(f"gunicorn-{worker}", f"gunicorn {worker}",
                                          "3.11, 1 worker" + (", 4 threads"
                                                              if worker == "gthread" else ""),
                                          gunicorn("wsgi_app:app", worker), bare)))
    if "bjoern" in installed:
        out.append(("bare", hb.Server("bjoern", "bjoern", "3.11, 1 process", c_server(BJOERN),
                                      bare)))
    if "meinheld" in installed:
        out.append(("bare", hb.Server("meinheld", "meinheld", "3.11, 1 process",
                                      c_server(MEINHELD), bare)))
    flask = ["/json", "/plaintext"]
    if hb.python_has(hb.PY_FT, "flask"):
        out.append(("flask", hb.Server("px-flask", "pyparallel WSGI + Flask", "3.13t, 1 worker",
                                       pyparallel("flask_hello:app"), flask,
                                       {"PX_BACKEND": "uring"})))
    if hb.python_has(hb.PY_GIL, "flask"):
        if hb.python_has(hb.PY_GIL, "pyparallel"):
            out.append(("flask", hb.Server("px-gil-flask", "pyparallel WSGI + Flask",
                                           "3.11, 1 worker", pyparallel("flask_hello:app",
                                                                        hb.PY_GIL),
                                           flask, {"PX_BACKEND": "uring"})))
        if os.path.exists(hb.GRANIAN):
            out.append(("flask", hb.Server("granian-flask", "granian WSGI + Flask",
                                           "3.11, 1 worker", granian("flask_hello:app"), flask)))
        if os.path.exists(GUNICORN):
            out.append(("flask", hb.Server("gunicorn-flask", "gunicorn gthread + Flask",
                                           "3.11, 1 worker, 4 threads",
                                           gunicorn("flask_hello:app", "gthread"), flask)))
    return out


def check(port: int, endpoints: list[str]) -> dict:
    """Each endpoint answers 200 with the expected body (a JSON body may end
    in a newline, as Flask's does); keep-alive is not required (sync)."""
    out = {}
    for path in endpoints:
        with socket.create_connection((HOST, port), timeout=20) as s:
            status, headers, body, size = hb.http_get(s, path)
        if not status.startswith(b"HTTP/1.1 200") and not status.startswith(b"HTTP/1.0 200"):
            raise RuntimeError(f"{path}: {status!r}")
        if body.rstrip(b"\n") != hb.BODIES[path]:
            raise RuntimeError(f"{path}: body {body!r}")
        out[path] = {"response_bytes": size}
    return out


def ensure_optional() -> set[str]:
    """bjoern and meinheld in .venv-gil when pip can install them (one try)."""
    have = {m for m in OPTIONAL if hb.python_has(hb.PY_GIL, m)}
    for m in OPTIONAL:
        if m not in have:
            r = subprocess.run([hb.PY_GIL, "-m", "pip", "install", "-q", m], capture_output=True,
                               text=True, timeout=240)
            if r.returncode == 0 and hb.python_has(hb.PY_GIL, m):
                have.add(m)
            else:
                log(f"{m} does not install here: skipped "
                    f"({(r.stderr.strip().splitlines() or ['?'])[-1][:120]})")
    return have


def measure(run: hb.Running, path: str, seconds: float, conns: int, wrk_cpus: list[int]) -> dict:
    hb.run_wrk(run.port, path, 1, conns, wrk_cpus)  # warm-up (wrk counts whole seconds)
    pids = run.pids()
    b0, t0 = hb.busy_ticks(), hb.cpu_ticks(pids)
    r = hb.run_wrk(run.port, path, seconds, conns, wrk_cpus)
    t1, b1 = hb.cpu_ticks(pids), hb.busy_ticks()
    cpu = (t1 - t0) / hb.CLK_TCK
    return {"rps": r["rps"], "requests": r["requests"], "server_cpu_s": cpu,
            "us_per_req": cpu * 1e6 / max(r["requests"], 1),
            "errors": sum(r["socket_errors"].values()) + r["non_2xx"],
            "busy_cpus": (b1 - b0) / hb.CLK_TCK / r["seconds"]}


def table(group: list[tuple[str, hb.Server]], results: dict, endpoints: list[str]) -> str:
    rows = ["| server | runtime | " + " | ".join(f"{e} req/s | {e} µs CPU/req"
                                                for e in endpoints) + " |",
            "|---|---|" + "---:|---:|" * len(endpoints)]
    for _, s in group:
        cells = []
        for e in endpoints:
            rs = [r for r in results.get(s.key, {}).get(e, []) if "rps" in r]
            if not rs:
                cells += ["–", "–"]
                continue
            cells += [f"{statistics.median(r['rps'] for r in rs):,.0f}",
                      f"{statistics.median(r['us_per_req'] for r in rs):.1f}"]
        rows.append(f"| {s.name} | {s.runtime} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ratio(results: dict, a: str, b: str, path: str) -> str:
    ra = [r["rps"] for r in results.get(a, {}).get(path, []) if "rps" in r]
    rb = [r["rps"] for r in results.get(b, {}).get(path, []) if "rps" in r]
    if not ra or not rb:
        return "n/a"
    return f"{statistics.median(ra) / statistics.median(rb):.2f}x"


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
    hb.check_bodies = check  # Running's readiness check: keep-alive optional, Flask's newline
    hb.ensure_gil_packages()
    configs = servers(ensure_optional())
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
                    r = measure(run, path, args.seconds, args.conns, client_cpus)
                    results.setdefault(srv.key, {}).setdefault(path, []).append(r)
                    log(f"round {rnd + 1} {srv.name} {path}: {r['rps']:,.0f} req/s, "
                        f"{r['us_per_req']:.1f} µs CPU/req, busy {r['busy_cpus']:.2f} CPUs")
            finally:
                run.stop()
    bare = [c for c in configs if c[0] == "bare"]
    flask = [c for c in configs if c[0] == "flask"]
    busy = [r["busy_cpus"] for per in results.values() for rs in per.values() for r in rs]
    print(f"### WSGI ({args.runs} rounds × {args.seconds:g} s per endpoint, wrk -t1 "
          f"-c{args.conns}, medians; {time.monotonic() - t_start:.0f} s in all)\n")
    print(table(bare, results, ["/json", "/plaintext"]) + "\n")
    if flask:
        print(table(flask, results, ["/json", "/plaintext"]) + "\n")
    print(f"pyparallel / granian WSGI, /json: {ratio(results, 'px', 'granian', '/json')}; "
          f"Flask /json: {ratio(results, 'px-flask', 'granian-flask', '/json')}; "
          f"Flask /plaintext: {ratio(results, 'px-flask', 'granian-flask', '/plaintext')}.")
    print(f"On 3.11 (the peers' interpreter): /json {ratio(results, 'px-gil', 'granian', '/json')}; "
          f"Flask /json {ratio(results, 'px-gil-flask', 'granian-flask', '/json')}; "
          f"Flask /plaintext "
          f"{ratio(results, 'px-gil-flask', 'granian-flask', '/plaintext')}.")
    if busy:
        print(f"Both CPUs busy {statistics.median(busy):.2f} CPUs (median) during the runs "
              "(server + wrk + anything else on the machine).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
