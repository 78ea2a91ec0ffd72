"""Soak test (``make soak``, not part of the test suite): one server process under
mixed normal and hostile load on loopback for a long time.

    python bench/soak.py [--seconds N] [--server-python PY] [--fd-limit N] ...

The server (bench/soak_server.py, its descriptor limit lowered to --fd-limit)
serves normal clients — keep-alive and pipelined, every answer checked byte for
byte — next to slowloris, chunk-extension floods, pipelined floods that never
read, mid-response resets and descriptor exhaustion (bench/soak_traffic.py, all
on one asyncio loop). The server's RSS, open descriptors and CPU use are
sampled every --sample seconds into a CSV; a chart is drawn from it. The
summary judges: RSS flat after the warm-up (last within 20 % of the first
sample after it), no descriptor leak (back to the baseline once the clients
have gone), no error for a normal client, a clean exit at SIGTERM. The exit
status is 0 when all hold.

Its own CPU use stays modest (one loop, paced clients): the server should have
the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from soak_traffic import Plan, Tally, run_traffic

HERE = Path(__file__).resolve().parent
ATTACK_COUNTERS = ("slowloris_cut", "chunk_ext_closed", "pipeline_floods", "resets",
                   "exhaust_phases", "exhaust_held_max")
FIELDS = ("elapsed_s", "rss_mib", "fds", "cpu_percent", "normal_ok", "normal_errors",
          *ATTACK_COUNTERS)


# ---- the server process -------------------------------------------------------

class Server:
    """bench/soak_server.py as a subprocess, with what /proc says about it."""

    def __init__(self, python: str, workers: int, fd_limit: int, log: Path) -> None:
        self.log = open(log, "w+b")
        self.proc = subprocess.Popen(
            [os.path.abspath(python), str(HERE / "soak_server.py"), "--port", "0", "--workers", str(workers),
             "--fd-limit", str(fd_limit)],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, cwd=HERE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if ": listening on " not in line:
            self.proc.kill()
            raise SystemExit(f"soak: the server did not start: {line!r}\n{self.stderr()}")
        self.port = int(line.rsplit(":", 1)[1])
        self._cpu_at = (time.monotonic(), self.cpu_seconds())

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_percent(self) -> float:
        """Server CPU since the last call, in % of one core."""
        now, cpu = time.monotonic(), self.cpu_seconds()
        then, before = self._cpu_at
        self._cpu_at = (now, cpu)
        return 100.0 * (cpu - before) / max(now - then, 1e-6)

    def stats(self) -> dict[str, Any] | None:
        """px.stats() of the server (its /stats route), or None if it cannot answer."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(b"GET /stats HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return dict(json.loads(data.partition(b"\r\n\r\n")[2]))
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 30.0) -> int | None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None


# ---- the traffic, on a thread of its own ----------------------------------------

class Traffic(threading.Thread):
    """The asyncio loop of soak_traffic; start_attacks() and stop() from outside."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(daemon=True)
        self.plan = plan
        self.tally = Tally()
        self.loop = asyncio.new_event_loop()
        self._stop_event = asyncio.Event()
        self._attack = asyncio.Event()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(run_traffic(self.plan, self.tally, self._stop_event, self._attack))
        self.loop.close()

    def start_attacks(self) -> None:
        self.loop.call_soon_threadsafe(self._attack.set)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._attack.set)
        self.loop.call_soon_threadsafe(self._stop_event.set)
        self.join(60)


# ---- report ---------------------------------------------------------------------

def chart(rows: list[dict[str, float]], warmup: float, out: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: no matplotlib here (bench/requirements.txt): no chart", file=sys.stderr)
        return False
    t = [r["elapsed_s"] / 60 for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), dpi=110, sharex=True)
    for ax, key, label, color in ((axes[0], "rss_mib", "server RSS (MiB)", "#3b75af"),
                                  (axes[1], "fds", "open descriptors", "#ef8636"),
                                  (axes[2], "cpu_percent", "server CPU (% of a core)",
                                   "#519e3e")):
        ax.plot(t, [r[key] for r in rows], color=color, marker=".", linewidth=1.2)
        ax.axvspan(0, warmup / 60, color="#dddddd", alpha=0.6, linewidth=0)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_title(title, fontsize=10)
    axes[2].set_xlabel("minutes (grey: warm-up)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return True


def summarize(rows: list[dict[str, float]], warmup: float, baseline_fds: int, settled_fds: int,
              tally: Tally, rc: int | None, final: dict[str, Any] | None,
              server_err: str) -> bool:
    after = [r for r in rows if r["elapsed_s"] >= warmup] or rows[-1:]
    first, last = after[0]["rss_mib"], after[-1]["rss_mib"]
    peak = max(r["rss_mib"] for r in after)
    flat = last <= first * 1.2
    no_leak = settled_fds <= baseline_fds + 2
    normal_errors = tally.counts["normal_errors"]
    open_conns = final["total"]["connections"] if final else None
    c = tally.counts
    print()
    print(f"RSS after warm-up ({warmup:.0f} s): first {first:.1f} MiB, last {last:.1f} MiB, "
          f"max {peak:.1f} MiB -> {'flat' if flat else 'GREW'} (limit: last <= 1.2 x first)")
    print(f"descriptors: {baseline_fds} before the clients, max {max(r['fds'] for r in rows)}"
          f" under load, {settled_fds} after they left -> {'no leak' if no_leak else 'LEAK'}")
    if final:
        print(f"server counters at the end: connections {open_conns} (this request's own: 1), "
              f"accepts {final['total'].get('accepts')}, errors {final['total'].get('errors')}, "
              f"timeouts {final['total'].get('timeouts')}")
    print(f"normal clients: {c['normal_ok']} answers checked, {normal_errors} errors, "
          f"{c['normal_connects']} connections")
    for e in tally.errors:
        print(f"  {e}")
    cuts = c["slowloris_cut"]
    print(f"attackers: slowloris cut {cuts} times"
          + (f" (after {c['slowloris_seconds'] / cuts:.1f} s on average)" if cuts else "")
          + f"; chunk-extension floods ended {c['chunk_ext_closed']} times "
          f"({c['chunk_ext_bytes'] / 1e6:.0f} MB sent); {c['pipeline_floods']} pipelined "
          f"floods; {c['resets']} mid-response resets ({c['reset_failures']} failed); "
          f"{c['exhaust_phases']} exhaustion phases, up to {c['exhaust_held_max']} "
          f"connections held, {c['exhaust_connect_failures']} connects failed")
    tracebacks = server_err.count("Traceback")
    print(f"server: exit status {rc}, {tracebacks} tracebacks on stderr")
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"this driver used {own.ru_utime + own.ru_stime:.0f} s of CPU "
          f"({100 * (own.ru_utime + own.ru_stime) / max(rows[-1]['elapsed_s'], 1):.0f} % of a "
          f"core)")
    ok = flat and no_leak and normal_errors == 0 and rc == 0
    print(f"soak: {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("SOAK_SECONDS", 1800)))
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before RSS must stay flat (default: a sixth, 30-300 s)")
    parser.add_argument("--server-python", default=os.environ.get("SOAK_PYTHON", sys.executable))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fd-limit", type=int, default=1024)
    parser.add_argument("--exhaust-period", type=float, default=60.0,
                        help="seconds between descriptor-exhaustion phases (each lasts 15 s)")
    parser.add_argument("--out", default=str(HERE / "results" / "raw" / "soak"),
                        help="path prefix of the .csv, .png and .server.log written")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else min(300.0, max(30.0, args.seconds / 6))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The exhaustion attacker needs more descriptors than the server has.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    server = Server(args.server_python, args.workers, args.fd_limit,
                    out.with_suffix(".server.log"))
    try:
        return soak(args, server, warmup, out)
    finally:
        if server.proc.poll() is None:  # the driver failed or was interrupted
            server.proc.kill()
            server.proc.wait(10)


def soak(args: argparse.Namespace, server: Server, warmup: float, out: Path) -> int:
    """Traffic, samples, the settling, the report; the exit status."""
    time.sleep(1.0)
    baseline_fds = server.fds()
    plan = Plan(host="127.0.0.1", port=server.port, fd_limit=args.fd_limit,
                exhaust_period=max(args.exhaust_period, 20.0))
    traffic = Traffic(plan)
    title = (f"soak: {args.seconds:.0f} s, {args.workers} workers, fd limit "
             f"{args.fd_limit}, backend {os.environ.get('PX_BACKEND', 'auto')}")
    print(f"{title}; server pid {server.proc.pid} port {server.port}, "
          f"{baseline_fds} descriptors at start; CSV {out.with_suffix('.csv')}")
    traffic.start()
    rows: list[dict[str, float]] = []
    start = time.monotonic()
    server.cpu_percent()
    attacking = False
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        while (elapsed := time.monotonic() - start) < args.seconds:
            time.sleep(max(0.0, args.sample - (elapsed % args.sample)))
            if server.proc.poll() is not None:
                print(f"soak: the server exited ({server.proc.returncode})")
                break
            if not attacking:  # normal clients alone for the first sample
                traffic.start_attacks()
                attacking = True
            c = traffic.tally.counts
            row = {"elapsed_s": round(time.monotonic() - start, 1),
                   "rss_mib": round(server.rss_mib(), 1), "fds": server.fds(),
                   "cpu_percent": round(server.cpu_percent(), 1),
                   "normal_ok": c["normal_ok"], "normal_errors": c["normal_errors"],
                   **{k: c[k] for k in ATTACK_COUNTERS}}
            rows.append(row)
            writer.writerow(row)
            f.flush()
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    traffic.stop()
    # Lingering sockets and timers finish: the descriptors come back to the baseline.
    settle_end = time.monotonic() + 30
    while server.proc.poll() is None and server.fds() > baseline_fds and \
            time.monotonic() < settle_end:
        time.sleep(0.5)
    settled_fds = server.fds() if server.proc.poll() is None else -1
    final = server.stats() if server.proc.poll() is None else None
    rc = server.stop() if server.proc.poll() is None else server.proc.returncode
    if rows and chart(rows, warmup, out.with_suffix(".png"), title):
        print(f"chart: {out.with_suffix('.png')}")
    ok = bool(rows) and summarize(rows, warmup, baseline_fds, settled_fds, traffic.tally, rc,
                                  final, server.stderr())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
