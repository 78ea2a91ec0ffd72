"""A throwaway PostgreSQL cluster for development, tests and benchmarks.

Everything lives in one directory DIR: the data directory (DIR/data), the Unix
socket, the server log (DIR/postgres.log) and the cluster's state
(DIR/cluster.json). The server listens on that socket and on one loopback port.
Run as root (CI does), the cluster belongs to an unprivileged user: PX_PG_USER,
else Debian's ``postgres`` account, else ``nobody``; DIR must then be reachable
by that user (a directory under /tmp always is).

Tuned for a test or benchmark box, not for data anyone wants back: fsync and
full_page_writes are off, so a crash of the machine can lose or corrupt the
data; a crash of PostgreSQL alone (kill()) loses nothing committed. Dynamic shared memory is mmap'd
files inside the data directory, so nothing is left in /dev/shm; stopping
removes the System V segment of a server that was killed.

The database is TechEmpower's: role ``benchmarkdbuser`` (password
``benchmarkdbpass``), database ``hello_world``, tables World and Fortune
(tools/tfb-schema.sql).

    tools/pg-cluster start DIR [--port N]   create or restart; prints the DSN
    tools/pg-cluster stop DIR [--keep]      stop; removes DIR unless --keep
    tools/pg-cluster dsn DIR [--socket]     the DSN (TCP, or the Unix socket)
    tools/pg-cluster status DIR             exit 0 when the server runs
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "tfb-schema.sql"
ROLE, PASSWORD, DATABASE = "benchmarkdbuser", "benchmarkdbpass", "hello_world"
SUPERUSER = "postgres"  # the bootstrap superuser initdb creates (-U), whatever the OS user
STATE = "cluster.json"
SOCKET_MAX = 107  # sun_path, less its terminating NUL

# Appended to the generated postgresql.conf; the port and socket directory follow.
SETTINGS = """
# --- tools/pg-cluster: a throwaway cluster for tests and benchmarks ---
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 64MB
work_mem = 4MB
# Durability off: this data is regenerated, never recovered after a machine crash.
# A crash of PostgreSQL alone loses nothing committed (synchronous_commit stays on:
# without fsync a commit costs one write), which tests that kill it rely on.
fsync = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = 30min
max_wal_size = 1GB
# Files inside the data directory, never /dev/shm: a killed server leaves nothing there.
dynamic_shared_memory_type = mmap
huge_pages = off
jit = off
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_connections = off
"""


class ClusterError(RuntimeError):
    pass


def find_bindir() -> Path:
    """PostgreSQL's server programs: PX_PG_BINDIR, else `pg_config --bindir`,
    else the newest of Debian's /usr/lib/postgresql/*/bin, else PATH."""
    candidates: list[str] = []
    if os.environ.get("PX_PG_BINDIR"):
        candidates.append(os.environ["PX_PG_BINDIR"])
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())

    def version(path: str) -> tuple[int, ...]:
        m = re.search(r"/(\d+(?:\.\d+)*)/bin$", path)
        return tuple(int(x) for x in m.group(1).split(".")) if m else ()

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for c in candidates:
        if all((Path(c) / p).is_file() for p in ("initdb", "pg_ctl", "postgres", "psql")):
            return Path(c)
    raise ClusterError("no PostgreSQL server found (initdb, pg_ctl, postgres, psql): install "
                       "Debian's `postgresql` package or set PX_PG_BINDIR")


def run_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    names = [os.environ["PX_PG_USER"]] if os.environ.get("PX_PG_USER") else ["postgres", "nobody"]
    for name in names:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if pw.pw_uid != 0:
            return pw
    raise ClusterError(f"running as root and no unprivileged account among {names} "
                       "to run PostgreSQL as (set PX_PG_USER)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process, from /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(d)] = (int(fields[1]), fields[0])
    return out


def process_tree(pid: int) -> list[int]:
    """pid and every process below it."""
    table = _proc_table()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in table:
            found.append(p)
            todo += [c for c, (pp, _) in table.items() if pp == p]
    return found


def _alive(pid: int) -> bool:
    """A zombie counts as gone: its parent (often init) reaps it, not us."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Cluster:
    """One throwaway cluster in DIR. start() creates it on first use; stop()
    shuts it down (data kept, start() again restarts it); kill() SIGKILLs the
    server and all its processes, as a crash would; destroy() stops it and
    removes DIR."""

    def __init__(self, directory: str | os.PathLike[str], port: int | None = None):
        self.dir = Path(directory).absolute()
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.bindir = find_bindir()
        self.user = run_user()
        state = self._state()
        self.port: int = int(state.get("port") or port or 0)
        if port and self.port != port:
            raise ClusterError(f"{self.dir} already holds a cluster on port {self.port}")
        self._fixed_port = bool(port or state.get("port"))

    # --- what clients need -------------------------------------------------------

    @property
    def dsn(self) -> str:
        """Over TCP on loopback, as the role benchmarkdbuser."""
        return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def socket_dsn(self) -> str:
        """Over the Unix socket in DIR."""
        return f"postgresql://{ROLE}:{PASSWORD}@/{DATABASE}?host={self.dir}&port={self.port}"

    def pid(self) -> int | None:
        """The postmaster's pid when it runs."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        # After a crash the pid may have been reused: only a postmaster of this
        # data directory counts (kill() must never reach another process).
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if str(self.data).encode() not in cmdline:
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    # --- life cycle -----------------------------------------------------------------

    def start(self, template: Cluster | None = None) -> str:
        """Create on first use (initdb, schema and data; or a copy of the stopped
        cluster TEMPLATE, which is quicker), start when stopped; the DSN."""
        if not (self.data / "PG_VERSION").exists():
            self._create(template)
        if not self.running():
            self._cleanup_after_crash()
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log))
        if not self._state().get("loaded"):
            self._load()
            self._save(loaded=True)
        return self.dsn

    def stop(self) -> None:
        """Fast shutdown (clients disconnected, no recovery needed at the next start)."""
        if self.running():
            res = self._pg_ctl("stop", "-w", "-t", "30", "-m", "fast", check=False)
            if res.returncode != 0 and self.running():
                self._pg_ctl("stop", "-w", "-t", "30", "-m", "immediate", check=False)
        if self.running():
            self.kill()
        self._cleanup_after_crash()

    def kill(self) -> None:
        """SIGKILL the postmaster and every server process, as a crash would; the
        next start() runs crash recovery on the same port."""
        pid = self.pid()
        if pid is None:
            return
        procs = process_tree(pid)
        for p in procs:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in procs):
            if time.monotonic() > deadline:
                raise ClusterError(f"server processes {procs} outlived SIGKILL")
            time.sleep(0.02)
        # The zombies' parent (init) reaps them soon; until then the new server
        # would take their pids in its lock files for a live postmaster.
        deadline = time.monotonic() + 5
        while any(os.path.exists(f"/proc/{p}") for p in procs) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._cleanup_after_crash()

    def destroy(self) -> None:
        """Stop and remove DIR: nothing of the cluster is left."""
        if self.dir.exists():
            self.stop()
            if not (self.dir / STATE).exists() and any(self.dir.iterdir()):
                raise ClusterError(f"{self.dir} is not a cluster made by pg-cluster: kept")
            shutil.rmtree(self.dir)

    # --- internals ------------------------------------------------------------------

    def _state(self) -> dict[str, object]:
        try:
            return dict(json.loads((self.dir / STATE).read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self, **changes: object) -> None:
        state = self._state()
        state.update(changes)
        tmp = self.dir / (STATE + ".tmp")
        tmp.write_text(json.dumps(state) + "\n")
        tmp.replace(self.dir / STATE)

    def _as_user(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                "--init-groups", "--", *argv]

    def _env(self) -> dict[str, str]:
        # Nor a sanitizer runtime preloaded for the tests (tools/sanitize):
        # PostgreSQL is not the code under test, and initdb under it crawls.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PG") and k != "LD_PRELOAD" and not k.endswith("SAN_OPTIONS")}
        env["LC_ALL"] = "C"
        if self.user is not None:
            env.update(HOME=str(self.dir), USER=self.user.pw_name, LOGNAME=self.user.pw_name)
        return env

    def _run(self, argv: list[str], check: bool = True, stdin: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(self._as_user(argv), input=stdin, capture_output=True, text=True,
                             env=self._env(), cwd=self.dir, timeout=timeout,
                             stdin=None if stdin is not None else subprocess.DEVNULL)
        if check and res.returncode != 0:
            tail = ""
            if self.log.exists():
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise ClusterError(f"{' '.join(argv[:2])} failed ({res.returncode}):\n"
                               f"{res.stdout}{res.stderr}{tail}")
        return res

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args], check)

    def _create(self, template: Cluster | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if any(p.name not in (STATE, "data", "postgres.log") for p in self.dir.iterdir()):
            raise ClusterError(f"{self.dir} is not empty: refusing to create a cluster there")
        os.chmod(self.dir, 0o700)
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
            probe = self._run(["test", "-w", str(self.dir), "-a", "-x", str(self.dir)], False)
            if probe.returncode != 0:
                raise ClusterError(f"user {self.user.pw_name} cannot reach {self.dir} (a parent "
                                   "directory is closed to it): choose a directory under /tmp")
        sock = self.dir / ".s.PGSQL.65535"
        if len(str(sock)) > SOCKET_MAX:
            raise ClusterError(f"{self.dir} is too long a path for a Unix socket in it")
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made cluster from an interrupted start
        if template is not None:
            if template.running() or not template._state().get("loaded"):
                raise ClusterError(f"template {template.dir} must be loaded and stopped")
            # cp -a keeps the files' owner (the server's account) and modes.
            self._run(["cp", "-a", str(template.data), str(self.data)])
        else:
            self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                       "-E", "UTF8", "--locale=C", "--no-sync", "--auth-local=trust",
                       "--auth-host=scram-sha-256"])
        for attempt in range(5):
            if not self._fixed_port:
                self.port = free_port()
            self._configure()
            res = self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log), check=False)
            if res.returncode == 0:
                self._save(port=self.port, loaded=template is not None)
                self._fixed_port = True
                return
            in_use = "Address already in use" in self.log.read_text(errors="replace")
            if self._fixed_port or not in_use or attempt == 4:
                raise ClusterError(f"PostgreSQL did not start:\n{res.stdout}{res.stderr}"
                                   + self.log.read_text(errors="replace")[-2000:])

    def _configure(self) -> None:
        conf = self.data / "postgresql.conf"
        text = conf.read_text()
        mark = "\n# --- tools/pg-cluster"
        if mark in text:
            text = text[:text.index(mark)]
        text += SETTINGS + f"port = {self.port}\nunix_socket_directories = '{self.dir}'\n"
        conf.write_text(text)

    def _psql(self, database: str, user: str, sql: str) -> None:
        self._run([str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                   "-h", str(self.dir), "-p", str(self.port), "-U", user, "-d", database],
                  stdin=sql)

    def _load(self) -> None:
        # TechEmpower's role is a superuser; tests read pg_stat_activity and end
        # backends with it.
        self._psql("postgres", SUPERUSER,
                   f"DROP DATABASE IF EXISTS {DATABASE};\n"
                   f"DROP ROLE IF EXISTS {ROLE};\n"
                   f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}';\n"
                   f"CREATE DATABASE {DATABASE} OWNER {ROLE} TEMPLATE template0 "
                   "ENCODING 'UTF8';\n")
        self._psql(DATABASE, ROLE, SCHEMA.read_text())

    def _cleanup_after_crash(self) -> None:
        """After a SIGKILL the postmaster.pid stays, naming the System V segment
        no process holds any more: remove both."""
        pidfile = self.data / "postmaster.pid"
        if self.running():
            return
        for lock in self.dir.glob(".s.PGSQL.*.lock"):
            lock.unlink()
            Path(str(lock)[:-len(".lock")]).unlink(missing_ok=True)
        if not pidfile.exists():
            return
        lines = pidfile.read_text().splitlines()
        if len(lines) >= 7 and len(lines[6].split()) == 2:
            key, shmid = lines[6].split()
            if self._orphaned_segment(int(key), shmid):
                subprocess.run(["ipcrm", "-m", shmid], capture_output=True)
        pidfile.unlink()

    def _orphaned_segment(self, key: int, shmid: str) -> bool:
        """Whether segment SHMID is this server's (its key, its owner) and no
        process holds it any more: never remove anyone else's."""
        uid = self.user.pw_uid if self.user is not None else os.geteuid()
        try:
            rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
        except OSError:
            return False
        for row in rows:
            f = row.split()
            if f[1] == shmid:
                return key != 0 and int(f[0]) == key and f[6] == "0" and int(f[7]) == uid
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pg-cluster", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start", help="create or restart; print the DSN")
    p.add_argument("dir")
    p.add_argument("--port", type=int)
    p = sub.add_parser("stop", help="stop and remove DIR")
    p.add_argument("dir")
    p.add_argument("--keep", action="store_true", help="keep the data for a later start")
    p = sub.add_parser("dsn", help="print the DSN")
    p.add_argument("dir")
    p.add_argument("--socket", action="store_true", help="the Unix socket's DSN")
    p = sub.add_parser("status", help="exit 0 when the server runs")
    p.add_argument("dir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "start":
            print(Cluster(args.dir, args.port).start())
        elif args.cmd == "stop":
            if not Path(args.dir).exists():
                return 0
            c = Cluster(args.dir)
            if args.keep:
                c.stop()
            else:
                c.destroy()
        elif args.cmd == "dsn":
            c = Cluster(args.dir)
            if not c.port:
                raise ClusterError(f"no cluster in {args.dir}")
            print(c.socket_dsn if args.socket else c.dsn)
        else:
            c = Cluster(args.dir)
            print("running" if c.running() else "stopped")
            return 0 if c.running() else 3
    except ClusterError as e:
        print(f"pg-cluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
