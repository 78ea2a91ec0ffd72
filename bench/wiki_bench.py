"""The Wikipedia example under load: pyparallel with 1 and 2 workers against the
same application on gunicorn with 2 worker processes.

1. A synthetic dump of PAGES pages is generated (or reused from --dir).
2. Index build: ``WikiIndex.build`` on 1 and on 2 workers, each in a fresh
   process of the free-threaded interpreter, INDEX_RUNS times interleaved;
   median wall and CPU seconds, and the speed-up of 2 workers over 1. The
   line says whether the build ran on ``px.map`` or on the thread-pool
   fallback.
3. HTTP: ``wrk -t1 -cCONNS`` with a Lua script that picks each request at
   random from a list of paths, half ``/wiki/TITLE`` (random titles), half
   ``/offsets/PREFIX`` (3 to 8 leading characters of random titles), against

   * ``python -m pyparallel.examples.wiki --workers 1`` and ``--workers 2``
     (.venv, free-threaded);
   * gunicorn with 2 worker processes (``-k gthread --threads THREADS``;
     bench/peers/wiki_wsgi.py on .venv-gil, gunicorn installed there from
     bench/requirements.txt when missing), each worker loading its own copy
     of the saved index.

   Before measuring, a sample of paths is fetched from each server and the
   bodies compared with the dump's bytes (and the JSON with the index). Then
   1 s of warm-up and SECONDS measured, RUNS times; requests per second
   (median), errors (non-2xx, socket errors) and the resident memory of all
   the server's processes together (VmRSS summed, read at the end of the
   measured run).

Servers and wrk share the machine's CPUs (no pinning: the 2-worker
configurations need two CPUs); the script first waits (up to --max-wait
seconds) for the load average to fall below 0.5.

    python bench/wiki_bench.py [--pages 100000] [--seconds 5] [--runs 3] [--conns 64]
                               [--index-runs 3] [--dir DIR] [--smoke]

Run it with the free-threaded interpreter (``.venv/bin/python``), which has
pyparallel installed. ``--smoke`` runs a small configuration in well under a minute (20,000 pages,
1 s runs, no waiting for a quiet machine) to check that everything works.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

from http_bench import descendants, free_port, rss_kib, wait_quiet  # bench/ is on sys.path

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
PEERS = os.path.join(BENCH, "peers")
PY_FT = os.path.join(TOP, ".venv", "bin", "python")
PY_GIL = os.path.join(TOP, ".venv-gil", "bin", "python")
HOST = "127.0.0.1"

_BUILD = r"""
import json, resource, sys, time
import pyparallel as px
from pyparallel.examples.wiki.index import WikiIndex
dump, workers = sys.argv[1], int(sys.argv[2])
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
index = WikiIndex.build(dump, workers=workers)
took = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": took, "titles": len(index), "px_map": hasattr(px, "map"),
                  "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)}))
"""

_LUA = """\
local paths = {}
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(tonumber(args[2]) or 1)
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def log(msg: str) -> None:
    print(f"wiki_bench: {msg}", file=sys.stderr, flush=True)


# ---- the index build ---------------------------------------------------------------------

def index_speedup(dump: str, runs: int) -> dict:
    times: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(runs):
        for workers in (1, 2):
            out = subprocess.run([PY_FT, "-c", _BUILD, dump, str(workers)], capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"index build failed:\n{out.stderr}")
            times[workers].append(json.loads(out.stdout))
    res = {w: {"seconds": statistics.median(r["seconds"] for r in rs),
               "cpu": statistics.median(r["cpu"] for r in rs)} for w, rs in times.items()}
    return {"one": res[1], "two": res[2], "speedup": res[1]["seconds"] / res[2]["seconds"],
            "titles": times[1][0]["titles"], "px_map": times[1][0]["px_map"]}


# ---- servers -------------------------------------------------------------------------------

class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=TOP)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=2)
                conn.request("GET", "/offsets/xyz")
                conn.getresponse().read()
                conn.close()
                # gunicorn answers from its first worker before the second is up
                time.sleep(0.5)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start")

    def rss_kib(self) -> int:
        return rss_kib(descendants(self.proc.pid))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_pyparallel(dump: str, workers: int) -> Server:
    port = free_port()
    env = dict(os.environ, PX_WORKERS=str(workers))
    return Server(f"pyparallel, {workers} worker{'s' if workers > 1 else ''}",
                  [PY_FT, "-m", "pyparallel.examples.wiki", "--xml", dump, "--port", str(port),
                   "--workers", str(workers)], env, port)


def ensure_gunicorn() -> str:
    gunicorn = os.path.join(TOP, ".venv-gil", "bin", "gunicorn")
    if not os.path.exists(gunicorn):
        log("installing gunicorn into .venv-gil (bench/requirements.txt)")
        subprocess.run([PY_GIL, "-m", "pip", "install", "-q", "gunicorn"], check=True)
    return gunicorn


def start_gunicorn(dump: str, worker_class: str, threads: int) -> Server:
    port = free_port()
    env = dict(os.environ, WIKI_XML=dump)
    argv = [ensure_gunicorn(), "-w", "2", "-k", worker_class, "--threads", str(threads),
            "-b", f"{HOST}:{port}", "--chdir", PEERS, "--log-level", "warning",
            "--keep-alive", "30", "wiki_wsgi:app"]
    return Server(f"gunicorn, 2 processes ({worker_class})", argv, env, port)


def check_answers(srv: Server, dump: str, paths: list[str], index_json: dict[str, list]) -> int:
    """Fetch a sample of paths; every body must be the dump's bytes or the
    expected JSON. Returns how many were checked."""
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=30)
    n = 0
    with open(dump, "rb") as f:
        for path in paths:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{srv.name}: {path} answered {resp.status}")
            if path.startswith("/offsets/"):
                if json.loads(body) != index_json[path]:
                    raise RuntimeError(f"{srv.name}: {path}: wrong JSON")
            else:
                start, end = index_json[path]
                f.seek(start)
                if body != f.read(end - start):
                    raise RuntimeError(f"{srv.name}: {path}: wrong bytes")
            n += 1
    conn.close()
    return n


# ---- wrk ---------------------------------------------------------------------------------------

def run_wrk(port: int, script: str, paths_file: str, seconds: float, conns: int, seed: int) -> dict:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "-s", script,
            f"http://{HOST}:{port}", "--", paths_file, str(seed)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {text.strip()}")
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = sum(map(int, re.findall(r"(?:connect|read|write|timeout) (\d+)", text)))
    m2 = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": float(m.group(1)) if m else 0.0, "socket_errors": errors,
            "non_2xx": int(m2.group(1)) if m2 else 0}


# ---- main -------------------------------------------------------------------------------------

def make_paths(dump: str, count: int, seed: int) -> tuple[list[str], dict[str, list]]:
    """Random /wiki/ and /offsets/ paths, with what each must answer."""
    from pyparallel.examples.wiki.app import MAX_PREFIX_RESULTS
    from pyparallel.examples.wiki.index import WikiIndex, fingerprint, index_path_for

    index = WikiIndex.load(index_path_for(dump), fingerprint(dump))
    assert index is not None
    rng = random.Random(seed)
    paths, expect = [], {}
    for k in range(count):
        i = rng.randrange(len(index))
        title = index.title(i).decode()
        if k % 2 == 0:
            path = "/wiki/" + quote(title, safe="")
            expect[path] = [index.starts[i], index.ends[i]]
        else:
            prefix = title[:rng.randint(3, 8)]  # every generated title has 3+ characters
            path = "/offsets/" + quote(prefix, safe="")
            expect[path] = [list(x) for x in index.prefix(prefix, MAX_PREFIX_RESULTS)]
        paths.append(path)
    return paths, expect


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--index-runs", type=int, default=3)
    ap.add_argument("--paths", type=int, default=10_000, help="distinct request paths")
    ap.add_argument("--dir", default=None, help="keep the dump here (reused when present)")
    ap.add_argument("--gunicorn-worker-class", default="gthread")
    ap.add_argument("--gunicorn-threads", type=int, default=4)
    ap.add_argument("--max-wait", type=float, default=600.0)
    ap.add_argument("--smoke", action="store_true",
                    help="small and short: 20,000 pages, 1 s runs, one of each")
    args = ap.parse_args(argv)
    if args.smoke:
        args.pages, args.seconds, args.runs, args.index_runs = 20_000, 1.0, 1, 1
        args.paths, args.max_wait = 2000, 0.0
    if shutil.which("wrk") is None:
        log("wrk is not installed")
        return 2

    work = args.dir or tempfile.mkdtemp(prefix="wiki-bench-")
    os.makedirs(work, exist_ok=True)
    dump = os.path.join(work, f"synthetic-{args.pages}.xml")
    try:
        if not os.path.exists(dump):
            log(f"generating {args.pages} pages into {dump}")
            subprocess.run([PY_FT, "-m", "pyparallel.examples.wiki.generate", "--pages",
                            str(args.pages), dump], check=True)
        quiet = wait_quiet(args.max_wait) if args.max_wait > 0 else None
        log("index build on 1 and 2 workers")
        build = index_speedup(dump, args.index_runs)
        # the saved index, which every server below loads
        subprocess.run([PY_FT, "-c", "import sys; from pyparallel.examples.wiki.index import "
                        "load_or_build; load_or_build(sys.argv[1])", dump], check=True)
        paths, expect = make_paths(dump, args.paths, 2015)
        paths_file = os.path.join(work, "paths.txt")
        with open(paths_file, "w") as f:
            f.write("\n".join(paths) + "\n")
        script = os.path.join(work, "random_paths.lua")
        with open(script, "w") as f:
            f.write(_LUA)

        results = []
        starters = [lambda: start_pyparallel(dump, 1), lambda: start_pyparallel(dump, 2),
                    lambda: start_gunicorn(dump, args.gunicorn_worker_class,
                                           args.gunicorn_threads)]
        for start in starters:
            srv = start()
            try:
                checked = check_answers(srv, dump, paths[:200], expect)
                runs = []
                for r in range(args.runs):
                    run_wrk(srv.port, script, paths_file, 1.0, args.conns, 1000 + r)  # warm-up
                    res = run_wrk(srv.port, script, paths_file, args.seconds, args.conns, r)
                    res["rss_mib"] = srv.rss_kib() / 1024
                    runs.append(res)
                results.append({"server": srv.name, "checked": checked, "runs": runs,
                                "processes": len(descendants(srv.proc.pid))})
            finally:
                srv.stop()
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"## Wikipedia example: {args.pages:,} pages, wrk -t1 -c{args.conns}, "
          f"{args.seconds:g} s x {args.runs}\n")
    if quiet is not None:
        print(f"load average at start: {quiet['load_at_start']:.2f}\n")
    print(f"Index build ({build['titles']:,} titles, "
          f"{'px.map' if build['px_map'] else 'thread-pool fallback (no px.map)'}): "
          f"1 worker {build['one']['seconds']:.2f} s (CPU {build['one']['cpu']:.2f} s), "
          f"2 workers {build['two']['seconds']:.2f} s (CPU {build['two']['cpu']:.2f} s): "
          f"speed-up x{build['speedup']:.2f}\n")
    print("| server | processes | req/s (median) | range | RSS, all processes (MiB) | errors |")
    print("|---|---:|---:|---|---:|---:|")
    for r in results:
        rps = [x["rps"] for x in r["runs"]]
        errors = sum(x["non_2xx"] + x["socket_errors"] for x in r["runs"])
        rss = statistics.median(x["rss_mib"] for x in r["runs"])
        print(f"| {r['server']} | {r['processes']} | {statistics.median(rps):,.0f} | "
              f"{min(rps):,.0f}–{max(rps):,.0f} | {rss:,.1f} | {errors} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
