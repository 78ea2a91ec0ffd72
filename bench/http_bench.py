"""HTTP requests per second: pyparallel against nginx, Node.js and Python servers.

Throughput. Each server answers TechEmpower's ``/json`` and ``/plaintext``
(pyparallel also ``/plaintext-c``, answered from its static route table in C).
The server is pinned to the first CPU and ``wrk`` to the second, both with
``taskset``. For every endpoint ``wrk -t1 -c64`` runs 1 s to warm up, then
SECONDS to measure. An endpoint written ``PATH@N`` is the same path with N
requests pipelined per write (TechEmpower runs plaintext with 16): the load
generator then spends far less CPU per request, so the server's own cost decides. Every configuration runs RUNS times, the runs interleaved
(a fresh server each time, both endpoints on it); tables give the median and the
range. The server's CPU time (utime + stime of all its processes and threads,
from /proc/PID/stat) is read around each measured run and divided by the
requests served.

Idle memory. Against pyparallel (both backends), nginx and Node.js,
``http_idle.py`` opens IDLE_CONNS keep-alive connections, sends one request on
each, reads the whole response and keeps them open; the server's resident
memory (VmRSS summed over its processes) before and after gives bytes per idle
connection.

Servers (all single-process or one worker, keep-alive on):
  * pyparallel: ``python -m pyparallel.examples.tfb --workers 1`` on the
    free-threaded interpreter (.venv), PX_BACKEND=uring and =epoll;
  * nginx: one worker process, ``return 200`` with the same bodies, config
    generated into a temporary directory;
  * Node.js: the http module (peers/node_http.js);
  * uvicorn with uvloop and httptools (peers/asgi_app.py), granian with RSGI
    and WSGI through its own CLI (peers/rsgi_app.py, peers/wsgi_app.py) and
    tornado (peers/tornado_app.py), all on the GIL interpreter (.venv-gil),
    installed there from bench/requirements.txt when missing.

Before each series the script waits (up to MAX_WAIT seconds) for the 1-minute
load average to fall below 0.5: the machine is shared.

    python bench/http_bench.py [--runs 3] [--seconds 5] [--conns 64]
                               [--idle-conns 15000] [--chart FILE] [--max-wait 1200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
PEERS = os.path.join(BENCH, "peers")
PY_FT = os.path.join(TOP, ".venv", "bin", "python")
PY_GIL = os.path.join(TOP, ".venv-gil", "bin", "python")
GRANIAN = os.path.join(TOP, ".venv-gil", "bin", "granian")
RAW_DIR = os.path.join(BENCH, "results", "raw")
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

HELLO = b"Hello, World!"
BODIES = {"/json": b'{"message":"Hello, World!"}', "/plaintext": HELLO, "/plaintext-c": HELLO}
GIL_MODULES = ["uvloop", "uvicorn", "httptools", "granian", "tornado", "matplotlib"]


def log(msg: str) -> None:
    print(f"http_bench: {msg}", file=sys.stderr, flush=True)


# --- the machine ----------------------------------------------------------------

def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_quiet(max_wait: float, threshold: float = 0.5, poll: float = 10.0) -> dict:
    """Wait until the 1-minute load average is below THRESHOLD (MAX_WAIT at most)."""
    t0 = time.monotonic()
    first = load = loadavg()
    while load >= threshold and time.monotonic() - t0 < max_wait:
        log(f"1-minute load average {load:.2f} >= {threshold}: waiting "
            f"({time.monotonic() - t0:.0f}s of at most {max_wait:.0f}s)")
        time.sleep(poll)
        load = loadavg()
    waited = time.monotonic() - t0
    quiet = load < threshold
    if not quiet:
        log(f"warning: load average still {load:.2f} after {waited:.0f}s: measuring anyway")
    return {"load_first": first, "load_at_start": load, "waited_s": round(waited, 1),
            "quiet": quiet}


def busy_ticks() -> int:
    """Non-idle clock ticks of all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]  # less idle and iowait (guest time is in user)


def descendants(pid: int) -> list[int]:
    """PID and all its descendants (nginx's workers, granian's worker processes)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of each process (all its threads) in clock ticks, summed."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_kib(pids: list[int]) -> int:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def pinned(cpus: list[int], argv: list[str]) -> list[str]:
    if not cpus or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", ",".join(map(str, cpus))] + argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the servers ----------------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{
    worker_connections 20000;
}}
http {{
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {host}:{port} backlog=4096;
        location = /json {{
            default_type application/json;
            return 200 '{{"message":"Hello, World!"}}';
        }}
        location = /plaintext {{
            default_type text/plain;
            return 200 'Hello, World!';
        }}
    }}
}}
"""


@dataclass
class Server:
    key: str
    name: str
    runtime: str
    argv: Callable[[int, str], list[str]]  # (port, temp dir) -> command line
    endpoints: list[str]
    env: dict[str, str] = field(default_factory=dict)
    nginx: bool = False
    check: dict = field(default_factory=dict)


def servers() -> list[Server]:
    def tfb(port: int, _d: str) -> list[str]:
        return [PY_FT, "-m", "pyparallel.examples.tfb", "--host", HOST,
                "--port", str(port), "--workers", "1"]

    gil = os.path.exists(PY_GIL)
    out = [
        Server("px", "pyparallel (io_uring)", "free-threaded CPython, 1 worker", tfb,
               ["/json", "/plaintext", "/plaintext-c", "/plaintext-c@16"], {"PX_BACKEND": "uring"}),
        Server("px-epoll", "pyparallel (epoll)", "free-threaded CPython, 1 worker", tfb,
               ["/json", "/plaintext-c", "/plaintext-c@16"], {"PX_BACKEND": "epoll"}),
    ]
    if shutil.which("nginx"):
        out.append(Server(
            "nginx", "nginx", "C, 1 worker process",
            lambda port, d: ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf"),
                             "-e", os.path.join(d, "error.log")],
            ["/json", "/plaintext", "/plaintext@16"], nginx=True))
    else:
        log("no nginx: skipping it")
    if shutil.which("node"):
        out.append(Server("node", "Node.js http", "Node.js, 1 process",
                          lambda port, _d: ["node", os.path.join(PEERS, "node_http.js"),
                                            HOST, str(port)],
                          ["/json", "/plaintext"]))
    else:
        log("no node: skipping Node.js")
    if gil:
        out.append(Server(
            "uvicorn", "uvicorn + uvloop + httptools", "CPython (GIL), ASGI",
            lambda port, _d: [PY_GIL, "-m", "uvicorn", "--host", HOST, "--port", str(port),
                              "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
                              "--no-access-log", "--log-level", "warning",
                              "--timeout-keep-alive", "600", "--backlog", "4096",
                              "--app-dir", PEERS, "asgi_app:app"],
            ["/json", "/plaintext"]))
        for iface in ("rsgi", "wsgi"):
            out.append(Server(
                f"granian-{iface}", f"granian ({iface.upper()})", f"CPython (GIL), {iface.upper()}",
                lambda port, _d, iface=iface: [
                    GRANIAN, "--interface", iface, "--workers", "1", "--http", "1",
                    "--no-ws", "--log-level", "warning",
                    "--host", HOST, "--port", str(port), "--working-dir", PEERS,
                    f"{iface}_app:app"],
                ["/json", "/plaintext"]))
        out.append(Server("tornado", "tornado", "CPython (GIL), asyncio loop",
                          lambda port, _d: [PY_GIL, os.path.join(PEERS, "tornado_app.py"),
                                            "--host", HOST, "--port", str(port)],
                          ["/json", "/plaintext"]))
    else:
        log("no .venv-gil: skipping the Python peers")
    return out


class Running:
    """A started server: its process, port and log."""

    def __init__(self, srv: Server, cpus: list[int]):
        self.srv = srv
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="http-bench-")
        self.log: IO[bytes] = tempfile.TemporaryFile()
        if srv.nginx:
            with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
                f.write(NGINX_CONF.format(dir=self.dir, host=HOST, port=self.port))
        env = {k: v for k, v in os.environ.items()
               if k not in ("PX_WORKERS", "PX_BACKEND", "PYTHONPATH")}
        env.update(srv.env)
        self.proc = subprocess.Popen(
            pinned(cpus, srv.argv(self.port, self.dir)), stdout=self.log,
            stderr=subprocess.STDOUT, env=env, cwd=self.dir, start_new_session=True,
            preexec_fn=raise_nofile)
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            # Listening; the check below also waits for a worker to answer.
            self.srv.check = check_bodies(self.port, self.srv.endpoints)
            return
        raise RuntimeError(f"{self.srv.name}: server did not start:\n{self.output()}")

    def pids(self) -> list[int]:
        return descendants(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:  # leftovers of this server's own session (workers), if any
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def http_get(sock: socket.socket, path: str) -> tuple[bytes, dict[bytes, bytes], bytes, int]:
    """One GET on an open connection: (status line, headers, body, response bytes)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{path}: connection closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" not in headers:
        raise ConnectionError(f"{path}: no Content-Length ({lines[0]!r})")
    n = int(headers[b"content-length"])
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{path}: connection closed inside the body")
        body += chunk
    return lines[0], headers, body, len(head) + 4 + len(body)


def check_bodies(port: int, endpoints: list[str]) -> dict:
    """Each endpoint twice on one connection: status 200, exact body, keep-alive."""
    out = {}
    with socket.create_connection((HOST, port), timeout=20) as s:
        for path in sorted({e.partition("@")[0] for e in endpoints}):
            for _ in range(2):  # the second request proves the connection was kept
                status, headers, body, size = http_get(s, path)
            if not status.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path}: {status!r}")
            if body != BODIES[path]:
                raise RuntimeError(f"{path}: body {body!r} differs from {BODIES[path]!r}")
            if headers.get(b"connection", b"").lower() == b"close":
                raise RuntimeError(f"{path}: the server closes the connection")
            out[path] = {"response_bytes": size,
                         "content_type": headers.get(b"content-type", b"").decode()}
    return out


# --- wrk ------------------------------------------------------------------------

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


PIPELINE_LUA = """
init = function(args)
  local reqs = {}
  for i = 1, tonumber(args[1]) do reqs[i] = wrk.format(nil, wrk.path) end
  batch = table.concat(reqs)
end
request = function() return batch end
"""


def run_wrk(port: int, endpoint: str, seconds: float, conns: int, cpus: list[int]) -> dict:
    path, _, depth = endpoint.partition("@")
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", f"http://{HOST}:{port}{path}"]
    script = None
    if depth:
        fd, script = tempfile.mkstemp(suffix=".lua")
        with os.fdopen(fd, "w") as f:
            f.write(PIPELINE_LUA)
        argv[1:1] = ["-s", script]
        argv += ["--", depth]
    argv = pinned(cpus, argv)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        if script:
            os.unlink(script)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {text.strip()}")
    r: dict = {"output": text}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    r["requests"] = int(m.group(1)) if m else 0
    r["seconds"] = float(m.group(2)) * UNITS[m.group(3)] if m else seconds
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Latency\s+([\d.]+)(us|ms|s)", text)
    r["latency_avg_ms"] = float(m.group(1)) * UNITS[m.group(2)] * 1e3 if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                  map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non_2xx"] = int(m.group(1)) if m else 0
    return r


def wait_calm(limit: float) -> float:
    """Wait (LIMIT seconds at most) for a second in which the machine is almost idle."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        b0 = busy_ticks()
        time.sleep(1.0)
        if (busy_ticks() - b0) / CLK_TCK < 0.15:  # CPUs busy, all of them together
            break
    return time.monotonic() - t0


class RetryBudget:
    """Seconds that may still go into repeating disturbed runs."""

    def __init__(self, seconds: float):
        self.left = seconds
        self.used = 0

    def spend(self, seconds: float) -> None:
        self.left -= seconds
        self.used += 1


def measure(run: Running, path: str, args, wrk_cpus: list[int], budget: RetryBudget) -> dict:
    """Warm up, then one measured wrk run. A run during which other work took more
    than DISTURBED CPUs is repeated (after a wait for a calm second) while the
    retry budget lasts; the least disturbed attempt is kept."""
    run_wrk(run.port, path, 1.0, args.conns, wrk_cpus)  # warm-up
    attempts = [measure_once(run, path, args, wrk_cpus)]
    while (attempts[-1]["other_cpu"] > args.disturbed and len(attempts) <= args.retries
           and budget.left > args.seconds + 5 and run.alive()):
        t0 = time.monotonic()
        wait_calm(min(15.0, budget.left - args.seconds - 2))
        attempts.append(measure_once(run, path, args, wrk_cpus))
        budget.spend(time.monotonic() - t0)
    best = min(attempts, key=lambda a: a["other_cpu"])
    best["attempts"] = len(attempts)
    best["discarded"] = [{k: a[k] for k in ("rps", "server_us_per_req", "other_cpu")}
                         for a in attempts if a is not best]
    return best


def measure_once(run: Running, path: str, args, wrk_cpus: list[int]) -> dict:
    pids = run.pids()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, t0 = busy_ticks(), cpu_ticks(pids)
    r = run_wrk(run.port, path, args.seconds, args.conns, wrk_cpus)
    t1, b1 = cpu_ticks(pids), busy_ticks()
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["server_cpu_s"] = (t1 - t0) / CLK_TCK
    r["server_us_per_req"] = r["server_cpu_s"] * 1e6 / max(r["requests"], 1)
    wrk_s = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    r["wrk_cpu"] = wrk_s / r["seconds"]
    # CPU time used by everything else on the machine meanwhile (other work, this
    # script, interrupts), in CPUs: how disturbed this run was.
    r["other_cpu"] = max((b1 - b0) / CLK_TCK - r["server_cpu_s"] - wrk_s, 0.0) / r["seconds"]
    r["loadavg"] = loadavg()
    r["server_processes"] = len(pids)
    r["server_alive"] = run.alive()
    return r


# --- idle connections -----------------------------------------------------------

def idle_once(srv: Server, conns: int, server_cpus: list[int], client_cpus: list[int]) -> dict:
    run = Running(srv, server_cpus)
    try:
        time.sleep(0.5)
        pids = run.pids()
        before = rss_kib(pids)
        client = subprocess.Popen(
            pinned(client_cpus, [sys.executable, os.path.join(BENCH, "http_idle.py"),
                                 "--host", HOST, "--port", str(run.port), "--conns", str(conns),
                                 "--path", "/plaintext", "--hold", "120"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready = client.stdout.readline().strip()  # the client is bounded by itself
            if not ready.startswith("ready"):
                raise RuntimeError(f"{srv.name}: idle client failed: {ready} "
                                   f"{client.stderr.read().strip()}")
            info = dict(kv.split("=", 1) for kv in ready.split()[1:])
            time.sleep(1.0)
            pids = run.pids()
            after = rss_kib(pids)
            alive = run.alive()
            client.stdin.write("\n")
            client.stdin.flush()
            done = client.stdout.readline().strip()
            client.wait(30)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        opened = int(info["opened"])
        closed = int(done.split("=", 1)[1]) if done.startswith("done") else None
        return {"rss_before_kib": before, "rss_after_kib": after, "opened": opened,
                "failed": int(info["failed"]), "non200": int(info["non200"]),
                "connect_seconds": float(info["seconds"]), "closed_by_server": closed,
                "server_alive": alive, "processes": len(pids),
                "bytes_per_conn": (after - before) * 1024 / max(opened, 1)}
    finally:
        run.stop()


# --- reporting ------------------------------------------------------------------

def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def rng(xs: list[float], fmt: str = ",.0f") -> str:
    return f"{min(xs):{fmt}}–{max(xs):{fmt}}" if xs else "n/a"


def throughput_table(srvs: list[Server], results: dict) -> str:
    lines = ["| server | runtime | endpoint | response bytes | requests/s (median) | range "
             "| server µs/request (median) | range | wrk CPU load | other CPU load | errors |",
             "|---|---|---|---:|---:|---|---:|---|---:|---:|---|"]
    for s in srvs:
        for ep in s.endpoints:
            rs = results.get((s.key, ep), [])
            ok = [r for r in rs if "rps" in r]
            if not ok:
                lines.append(f"| {s.name} | {s.runtime} | `{ep}` | | n/a | | | | | | "
                             f"{'; '.join(r.get('error', '?') for r in rs)[:80]} |")
                continue
            rps = [r["rps"] for r in ok]
            us = [r["server_us_per_req"] for r in ok]
            errs = sum(sum(r["socket_errors"].values()) + r["non_2xx"] for r in ok)
            errs += len(rs) - len(ok)
            size = s.check.get(ep.partition("@")[0], {}).get("response_bytes", "")
            lines.append(f"| {s.name} | {s.runtime} | `{ep}` | {size} | {med(rps):,.0f} | {rng(rps)} | "
                         f"{med(us):.1f} | {rng(us, '.1f')} | "
                         f"{med([r['wrk_cpu'] for r in ok]):.2f} | "
                         f"{med([r.get('other_cpu', 0.0) for r in ok]):.2f} | {errs or 'none'} |")
    return "\n".join(lines)


def ratio_rows(results: dict) -> list[dict]:
    def rates(key: str, ep: str) -> list[float]:
        return [r["rps"] for r in results.get((key, ep), []) if "rps" in r]

    def best_granian() -> tuple[str, list[float]]:
        cands = [(k, rates(k, "/json")) for k in ("granian-rsgi", "granian-wsgi")]
        cands = [c for c in cands if c[1]]
        return max(cands, key=lambda c: med(c[1])) if cands else ("granian", [])

    gk, g = best_granian()
    specs = [
        ("pyparallel (io_uring) `/json` vs uvicorn `/json`", rates("px", "/json"),
         rates("uvicorn", "/json"), 2.0),
        (f"pyparallel (io_uring) `/json` vs {gk.replace('-', ' ')} `/json` (best granian)",
         rates("px", "/json"), g, 1.25),
        ("pyparallel (io_uring) `/plaintext-c` vs nginx `/plaintext`",
         rates("px", "/plaintext-c"), rates("nginx", "/plaintext"), 1.0),
        ("pyparallel (io_uring) `/plaintext-c` vs nginx `/plaintext`, 16 pipelined",
         rates("px", "/plaintext-c@16"), rates("nginx", "/plaintext@16"), 1.0),
        ("pyparallel (epoll) `/json` vs uvicorn `/json`", rates("px-epoll", "/json"),
         rates("uvicorn", "/json"), 2.0),
        (f"pyparallel (epoll) `/json` vs {gk.replace('-', ' ')} `/json` (best granian)",
         rates("px-epoll", "/json"), g, 1.25),
        ("pyparallel (epoll) `/plaintext-c` vs nginx `/plaintext`",
         rates("px-epoll", "/plaintext-c"), rates("nginx", "/plaintext"), 1.0),
        ("pyparallel (epoll) `/plaintext-c` vs nginx `/plaintext`, 16 pipelined",
         rates("px-epoll", "/plaintext-c@16"), rates("nginx", "/plaintext@16"), 1.0),
    ]
    rows = []
    for name, a, b, target in specs:
        if not a or not b:
            rows.append({"name": name, "target": target, "ratio": None})
            continue
        per_run = [x / y for x, y in zip(a, b)]  # runs are interleaved: pair them
        ratio = med(a) / med(b)
        rows.append({"name": name, "target": target, "ratio": ratio,
                     "per_run": per_run, "met": ratio >= target})
    return rows


def ratio_table(rows: list[dict]) -> str:
    lines = ["| comparison | ratio of medians | per-run ratios | target | met? |",
             "|---|---:|---|---:|---|"]
    for r in rows:
        if r["ratio"] is None:
            lines.append(f"| {r['name']} | n/a | | >= {r['target']:.2f}x | n/a |")
            continue
        lines.append(f"| {r['name']} | {r['ratio']:.2f}x | {rng(r['per_run'], '.2f')} | "
                     f">= {r['target']:.2f}x | {'yes' if r['met'] else '**no**'} |")
    return "\n".join(lines)


def idle_table(srvs: list[Server], idle: dict) -> str:
    lines = ["| server | connections held | RSS before (KiB) | RSS after (KiB) "
             "| bytes per idle connection | closed by the server while idle |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in srvs:
        for r in idle.get(s.key, []):
            if "error" in r:
                lines.append(f"| {s.name} | n/a | | | | {r['error'][:80]} |")
                continue
            lines.append(f"| {s.name} | {r['opened']:,} | {r['rss_before_kib']:,} | "
                         f"{r['rss_after_kib']:,} | {r['bytes_per_conn']:,.0f} | "
                         f"{r['closed_by_server']} |")
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------

def python_has(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def ensure_gil_packages() -> None:
    if not os.path.exists(PY_GIL):
        return
    missing = [m for m in GIL_MODULES if not python_has(PY_GIL, m)]
    if missing:
        log(f"installing {', '.join(missing)} into .venv-gil (bench/requirements.txt)")
        subprocess.run([PY_GIL, "-m", "pip", "install", "-q", "-r",
                        os.path.join(BENCH, "requirements.txt")], check=False)


def versions() -> dict:
    v: dict[str, str] = {}
    def cmd(name: str, argv: list[str]) -> None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            v[name] = (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            pass
    cmd("nginx", ["nginx", "-v"])
    cmd("node", ["node", "--version"])
    cmd("wrk", ["wrk", "--version"])
    cmd("python-ft", [PY_FT, "--version"])
    if os.path.exists(PY_GIL):
        cmd("python-gil", [PY_GIL, "--version"])
        cmd("gil-packages", [PY_GIL, "-c", "import importlib.metadata as m; print(' '.join("
             f"p + '=' + m.version(p) for p in {GIL_MODULES!r}))"])
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per wrk run")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections")
    ap.add_argument("--idle-conns", type=int, default=15000)
    ap.add_argument("--max-wait", type=float, default=1200.0,
                    help="longest wait for a quiet machine before each series (seconds)")
    ap.add_argument("--disturbed", type=float, default=0.15,
                    help="other work's CPU load (in CPUs) above which a run is repeated")
    ap.add_argument("--retries", type=int, default=2, help="repeats of one disturbed run")
    ap.add_argument("--retry-budget", type=float, default=150.0,
                    help="seconds that repeating disturbed runs may take, all together")
    ap.add_argument("--only", help="comma-separated server keys (px, px-epoll, nginx, node, "
                    "uvicorn, granian-rsgi, granian-wsgi, tornado)")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--chart", help="PNG chart of requests/s (default: beside the raw results)")
    args, _ = ap.parse_known_args(argv)  # run.py passes echo's options on too

    if not python_has(PY_FT, "pyparallel"):
        log("pyparallel is not installed in .venv: run `make build` first")
        return 1
    if shutil.which("wrk") is None:
        log("wrk is not installed (Debian package `wrk`)")
        return 1
    ensure_gil_packages()
    srvs = servers()
    if args.only:
        keep = set(args.only.split(","))
        srvs = [s for s in srvs if s.key in keep]
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        log("fewer than two CPUs or no taskset: running unpinned")
        server_cpus, client_cpus = [], []
    else:
        server_cpus, client_cpus = cpus[:1], cpus[1:2]

    raw: dict = {"cpus": cpus, "server_cpus": server_cpus, "client_cpus": client_cpus,
                 "seconds": args.seconds, "conns": args.conns, "runs": args.runs,
                 "versions": versions(), "series": {}}
    t_start = time.monotonic()

    # Idle memory first: it is short and light, and leaves the machine quiet.
    idle: dict = {}
    idle_srvs = [s for s in srvs if s.key in ("px", "px-epoll", "nginx", "node")]
    if idle_srvs and not args.skip_idle:
        raw["series"]["idle"] = wait_quiet(args.max_wait)
        log(f"idle connections: {args.idle_conns:,} against {len(idle_srvs)} servers")
        for s in idle_srvs:
            try:
                r = idle_once(s, args.idle_conns, server_cpus, client_cpus)
            except Exception as e:  # report, go on with the others
                r = {"error": str(e)}
            idle.setdefault(s.key, []).append(r)
            log(f"idle {s.name}: " + (r["error"] if "error" in r else
                f"{r['opened']} open, {r['bytes_per_conn']:.0f} bytes each, "
                f"{r['closed_by_server']} closed by the server"))

    results: dict = {}
    outputs: dict = {}
    if not args.skip_throughput:
        raw["series"]["throughput"] = wait_quiet(args.max_wait)
        budget = RetryBudget(args.retry_budget)
        n = sum(len(s.endpoints) for s in srvs)
        log(f"{n} configurations x {args.runs} runs x ({args.seconds:g}s + 1s warm-up), "
            f"wrk -t1 -c{args.conns}")
        for run in range(args.runs):
            for s in srvs:
                try:
                    srv_run = Running(s, server_cpus)
                except Exception as e:
                    for ep in s.endpoints:
                        results.setdefault((s.key, ep), []).append({"error": str(e)[:300]})
                    log(f"run {run + 1} {s.name}: {e}")
                    continue
                try:
                    for ep in s.endpoints:
                        try:
                            r = measure(srv_run, ep, args, client_cpus, budget)
                        except Exception as e:
                            r = {"error": str(e)[:300]}
                        if not srv_run.alive():
                            r["error"] = (f"server exited with {srv_run.proc.returncode}: "
                                          + srv_run.output()[-300:])
                        results.setdefault((s.key, ep), []).append(r)
                        if "error" in r:
                            log(f"run {run + 1}/{args.runs} {s.name} {ep}: {r['error']}")
                            break
                        errs = sum(r["socket_errors"].values()) + r["non_2xx"]
                        log(f"run {run + 1}/{args.runs} {s.name} {ep}: {r['rps']:,.0f} req/s, "
                            f"server {r['server_us_per_req']:.1f} µs/req, wrk CPU "
                            f"{r['wrk_cpu']:.2f}, other {r['other_cpu']:.2f}"
                            + (f" (best of {r['attempts']})" if r["attempts"] > 1 else "")
                            + (f", ERRORS {r['socket_errors']} "
                                                     f"non-2xx {r['non_2xx']}" if errs else ""))
                finally:
                    srv_run.stop()
                    out = srv_run.output().strip()
                    if out:
                        outputs.setdefault(s.key, []).append(out[-2000:])

    raw["elapsed_s"] = round(time.monotonic() - t_start, 1)
    raw["servers"] = [{"key": s.key, "name": s.name, "runtime": s.runtime,
                       "endpoints": s.endpoints, "env": s.env, "check": s.check,
                       "argv": s.argv(0, "TMPDIR")} for s in srvs]
    raw["throughput"] = {f"{k} {ep}": v for (k, ep), v in results.items()}
    raw["ratios"] = ratio_rows(results)
    raw["idle"] = idle
    raw["server_output"] = outputs

    if results:
        print("### Requests per second\n")
        print(throughput_table(srvs, results))
        done = [r for rs in results.values() for r in rs if "rps" in r]
        rep = sum(1 for r in done if r.get("attempts", 1) > 1)
        still = sum(1 for r in done if r.get("other_cpu", 0.0) > args.disturbed)
        print(f"\n{rep} of {len(done)} measured runs were repeated because other work took "
              f"more than {args.disturbed:g} CPUs during them; {still} kept runs still had "
              "that much other work.")
        print("\n### Ratios against the targets\n")
        print(ratio_table(raw["ratios"]))
    if idle:
        print(f"\n### Memory of {args.idle_conns:,} idle keep-alive connections\n")
        print(idle_table(srvs, idle))
    print()
    for key, outs in outputs.items():
        log(f"{key} printed (last run): {outs[-1][:500]!r}")

    os.makedirs(RAW_DIR, exist_ok=True)
    raw_path = os.path.join(RAW_DIR, time.strftime("http-%Y%m%d-%H%M%S.json"))
    with open(raw_path, "w") as f:
        json.dump(raw, f, indent=1)
    log(f"raw results: {os.path.relpath(raw_path, TOP)} ({raw['elapsed_s']:.0f}s)")
    if results and os.path.exists(PY_GIL) and python_has(PY_GIL, "matplotlib"):
        chart = args.chart or raw_path[:-len(".json")] + ".png"
        subprocess.run([PY_GIL, os.path.join(BENCH, "http_chart.py"), raw_path, chart],
                       check=False)
        log(f"chart: {os.path.relpath(chart, TOP)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
