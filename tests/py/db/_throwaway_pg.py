"""A throwaway PostgreSQL cluster for the database suites.

initdb into a fresh temporary directory, a loopback port and a Unix socket in
that directory, run as an unprivileged user when the tests run as root (the
server refuses root), the TechEmpower schema and data loaded, and everything
removed by ``destroy()``. ``kill()`` and ``start()`` let a test take the
server away mid-load and bring it back on the same port with the same data.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

from _tfb_data import FORTUNES

WORLD_ROWS = 10_000

_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin",)


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in _BIN_CANDIDATES:
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise FileNotFoundError(f"{name} (PostgreSQL's server programs) is not on PATH")


def available() -> bool:
    try:
        _pg_bin("initdb")
        _pg_bin("pg_ctl")
    except FileNotFoundError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL server in its own temporary directory."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="px-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
        self.dsn = (f"host=127.0.0.1 port={self.port} user=postgres dbname=hello_world "
                    "connect_timeout=5")
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self._run([_pg_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\n"
                       "max_connections = 300\nfsync = off\nsynchronous_commit = off\n"
                       "full_page_writes = off\nshared_buffers = 32MB\n")
        self.start()
        self._load()

    def _run(self, argv: list[str], timeout: float = 60) -> None:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             cwd=self.root, **self._user)
        if res.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({res.returncode}):\n{res.stdout}{res.stderr}")

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-l",
                   os.path.join(self.root, "server.log"), "-w", "-t", "60", "start"])

    def postmaster_pid(self) -> int | None:
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """Take the server away at once: SIGKILL the postmaster and its children
        (a crash as seen by clients), then clean up with an immediate stop."""
        pid = self.postmaster_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown: every backend exits now
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.02)

    def stop(self) -> None:
        if self.postmaster_pid() is not None and os.path.exists(self.data):
            subprocess.run([_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=60, **self._user)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _load(self) -> None:
        import psycopg

        base = self.dsn.replace("dbname=hello_world", "dbname=postgres")
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("CREATE DATABASE hello_world")
        rng = random.Random()
        with psycopg.connect(self.dsn) as conn:
            conn.execute("CREATE TABLE World (id integer NOT NULL PRIMARY KEY, "
                         "randomNumber integer NOT NULL DEFAULT 0)")
            conn.execute("CREATE TABLE Fortune (id integer NOT NULL PRIMARY KEY, "
                         "message varchar(2048) NOT NULL)")
            with conn.cursor().copy("COPY World (id, randomNumber) FROM STDIN") as copy:
                for i in range(1, WORLD_ROWS + 1):
                    copy.write_row((i, rng.randint(1, 10_000)))
            conn.cursor().executemany("INSERT INTO Fortune (id, message) VALUES (%s, %s)",
                                      FORTUNES)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            # fsync is off: a checkpoint makes the data survive kill().
            conn.execute("CHECKPOINT")
