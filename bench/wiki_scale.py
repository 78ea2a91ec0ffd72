"""The Wikipedia example at scale: a big synthetic dump, its index, a few lookups.

Generates a dump of PAGES pages (default 1,000,000: about 2.8 GB) into a
temporary directory (removed at the end unless --keep), then, each in a fresh
process so that memory is measured from a clean start:

1. builds the index on WORKERS workers: wall and CPU time, resident memory
   before and after (the index plus what the allocator keeps of the build's
   temporary objects), the peak while building (VmHWM: it includes the pages
   of the dump mapped while being scanned), and the size of each of its
   arrays; the index is saved;
2. loads the saved index: time and resident memory (the index alone);
3. serves the dump (``python -m pyparallel.examples.wiki``) and fetches a
   few pages through /offsets/ and /wiki/, comparing every body with the
   bytes of the file; reports the server's resident memory.

Free disk space is checked first (the dump needs about 2.9 kB per page).

    python bench/wiki_scale.py [--pages 1000000] [--workers N] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

BENCH = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(BENCH)
BYTES_PER_PAGE = 2900  # what the generator writes on average, with some margin
MiB = 1 << 20

# Runs in a fresh interpreter: build (or load) and report memory as JSON.
_CHILD = r"""
import gc, json, os, resource, sys, time
def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out
from pyparallel.examples.wiki.index import WikiIndex, fingerprint, index_path_for
import pyparallel as px
mode, dump, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
gc.collect()
before = status()
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
if mode == "build":
    index = WikiIndex.build(dump, workers=workers)
    took = time.perf_counter() - t0
    index.save(index_path_for(dump), fingerprint(dump))
else:
    index = WikiIndex.load(index_path_for(dump), fingerprint(dump))
    assert index is not None, "the saved index does not match the dump"
    took = time.perf_counter() - t0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
gc.collect()
after = status()
print(json.dumps({
    "seconds": took, "cpu_seconds": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
    "titles": len(index), "duplicates": index.duplicates, "nbytes": index.nbytes(),
    "before": before, "after": after, "px_map": hasattr(px, "map"),
    "interpreter": sys.version.split()[0], "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
}))
"""


def log(msg: str) -> None:
    print(f"wiki_scale: {msg}", file=sys.stderr, flush=True)


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def child(python: str, mode: str, dump: str, workers: int) -> dict:
    out = subprocess.run([python, "-c", _CHILD, mode, dump, str(workers)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def serve_and_fetch(python: str, dump: str, workers: int, lookups: int) -> dict:
    """Start the example on dump, fetch pages found by prefix; check their bytes."""
    proc = subprocess.Popen([python, "-m", "pyparallel.examples.wiki", "--xml", dump,
                             "--port", "0", "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the server did not start: {line}{proc.communicate()[1]}")
        port = int(line.rsplit(":", 1)[1])
        rng = random.Random(1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        checked = 0
        prefixes = ["List of ", "History of ", "Category:", "Talk:", "1987 in", "Zürich"]
        prefixes += ["".join(rng.choice("ABCDEFGKLMNPRST")) + rng.choice("aeiou") + "r"
                     for _ in range(lookups)]
        latency = []
        with open(dump, "rb") as f:
            for prefix in prefixes:
                t0 = time.perf_counter()
                conn.request("GET", "/offsets/" + quote(prefix, safe=""))
                resp = conn.getresponse()
                hits = json.loads(resp.read())
                latency.append(time.perf_counter() - t0)
                for title, start, end in hits[:3]:
                    t0 = time.perf_counter()
                    conn.request("GET", "/wiki/" + quote(title, safe=""))
                    resp = conn.getresponse()
                    body = resp.read()
                    latency.append(time.perf_counter() - t0)
                    f.seek(start)
                    if resp.status != 200 or body != f.read(end - start):
                        raise RuntimeError(f"/wiki/{title}: wrong answer ({resp.status})")
                    checked += 1
        conn.close()
        return {"pages_checked": checked, "requests": len(latency),
                "max_latency_ms": round(max(latency) * 1000, 2), "server_rss": rss(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dir", default=None, help="where the dump goes (default: a temporary "
                                                 "directory under $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the dump and its index")
    ap.add_argument("--lookups", type=int, default=10)
    ap.add_argument("--python", default=os.path.join(TOP, ".venv", "bin", "python"),
                    help="the interpreter that builds and serves (default: .venv)")
    args = ap.parse_args(argv)

    base = args.dir or tempfile.gettempdir()
    need = args.pages * BYTES_PER_PAGE * 1.15
    free = shutil.disk_usage(base).free
    log(f"{free / MiB:,.0f} MiB free in {base}; the dump needs about {need / MiB:,.0f} MiB")
    if free < need:
        log("not enough free disk space")
        return 2
    work = tempfile.mkdtemp(prefix="wiki-scale-", dir=base)
    dump = os.path.join(work, f"synthetic-{args.pages}.xml")
    report: dict = {"pages": args.pages, "workers": args.workers}
    try:
        t0 = time.perf_counter()
        cpu0 = os.times()
        subprocess.run([args.python, "-m", "pyparallel.examples.wiki.generate",
                        "--pages", str(args.pages), dump], check=True)
        cpu1 = os.times()
        report["generate_s"] = round(time.perf_counter() - t0, 2)
        report["generate_cpu_s"] = round((cpu1.children_user - cpu0.children_user)
                                         + (cpu1.children_system - cpu0.children_system), 2)
        report["dump_bytes"] = os.path.getsize(dump)
        log(f"generated {report['dump_bytes'] / MiB:,.0f} MiB in {report['generate_s']} s")

        built = child(args.python, "build", dump, args.workers)
        loaded = child(args.python, "load", dump, args.workers)
        report["index_file_bytes"] = os.path.getsize(dump + ".pxidx")
        for name, r in (("build", built), ("load", loaded)):
            report[name] = {
                "seconds": round(r["seconds"], 2), "cpu_seconds": round(r["cpu_seconds"], 2),
                "rss_delta_mib": round((r["after"]["VmRSS"] - r["before"]["VmRSS"]) / MiB, 1),
                "anon_delta_mib": round((r["after"]["RssAnon"] - r["before"]["RssAnon"]) / MiB, 1),
                "peak_delta_mib": round((r["after"]["VmHWM"] - r["before"]["VmRSS"]) / MiB, 1),
            }
        report["titles"] = built["titles"]
        report["duplicates"] = built["duplicates"]
        report["arrays_mib"] = {k: round(v / MiB, 2) for k, v in built["nbytes"].items()}
        report["arrays_total_mib"] = round(sum(built["nbytes"].values()) / MiB, 2)
        report["px_map"] = built["px_map"]
        report["interpreter"] = f"{built['interpreter']} (GIL {'on' if built['gil'] else 'off'})"
        report["serve"] = serve_and_fetch(args.python, dump, args.workers, args.lookups)
        report["serve"]["server_rss_mib"] = round(report["serve"].pop("server_rss") / MiB, 1)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
