"""The throwaway PostgreSQL of tools/pg-cluster and the fixtures built on it
(tests/py/pgcluster.py): TechEmpower's data, an unprivileged server, stop /
start / kill, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers import TOOLS
from pgcluster import new_cluster, pg

FORTUNE_SCRIPT = '<script>alert("This should not be displayed in a browser alert box.");</script>'
FORTUNE_JAPANESE = "フレームワークのベンチマーク"


def query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, connect_timeout=20) as conn:
        return conn.execute(sql).fetchall()


def server_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def shm_ids() -> set[str]:
    """The System V shared memory segments of the machine."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {line.split()[1] for line in lines}


def processes_in(directory: Path) -> list[str]:
    """Command lines naming DIRECTORY (the server's are `postgres -D DIR/data`)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(directory) in cmd:
            found.append(cmd)
    return found


def test_session_cluster_holds_techempower_data(pg_dsn: str) -> None:
    assert "benchmarkdbuser" in pg_dsn and "/hello_world" in pg_dsn
    [(count, lo, hi, ids)] = query(
        pg_dsn, "SELECT count(*), min(randomNumber), max(randomNumber), count(DISTINCT id) "
                "FROM World")
    assert (count, ids) == (10000, 10000)
    assert 1 <= lo and hi <= 10000
    rows = query(pg_dsn, "SELECT id, message FROM Fortune ORDER BY id")
    assert [r[0] for r in rows] == list(range(1, 13))
    messages = {r[1] for r in rows}
    assert FORTUNE_SCRIPT in messages and FORTUNE_JAPANESE in messages
    assert rows[0][1] == "fortune: No such file or directory"
    assert query(pg_dsn, "SELECT current_user, current_database(), "
                         "pg_encoding_to_char(encoding) FROM pg_database "
                         "WHERE datname = current_database()") == [
        ("benchmarkdbuser", "hello_world", "UTF8")]
    # The role owns the tables: the tests' updates need no grants.
    owners = query(pg_dsn, "SELECT tableowner FROM pg_tables WHERE tablename IN "
                           "('world', 'fortune')")
    assert owners == [("benchmarkdbuser",), ("benchmarkdbuser",)]


def test_cluster_runs_unprivileged_tuned_and_over_its_socket(pg_cluster: Any) -> None:
    pid = pg_cluster.pid()
    assert pid is not None
    if os.geteuid() == 0:
        assert server_uid(pid) != 0, "the server runs as root"
    settings = dict(query(pg_cluster.dsn, "SELECT name, setting FROM pg_settings WHERE name IN "
                                            "('fsync', 'dynamic_shared_memory_type', "
                                            "'listen_addresses', 'unix_socket_directories')"))
    assert settings == {"fsync": "off", "dynamic_shared_memory_type": "mmap",
                        "listen_addresses": "127.0.0.1",
                        "unix_socket_directories": str(pg_cluster.dir)}
    assert query(pg_cluster.socket_dsn, "SELECT count(*) FROM Fortune") == [(12,)]


def test_kill_then_start_recovers_on_the_same_port(pg_cluster: Any) -> None:
    dsn = pg_cluster.dsn
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=20)
    conn.execute("UPDATE World SET randomNumber = 4242 WHERE id = 7")
    pg_cluster.kill()
    assert not pg_cluster.running()
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=5)
    pg_cluster.start()
    assert pg_cluster.dsn == dsn
    # Crash recovery kept the committed update.
    assert query(dsn, "SELECT randomNumber FROM World WHERE id = 7") == [(4242,)]
    pg_cluster.stop()
    assert not pg_cluster.running()
    pg_cluster.start()
    assert query(dsn, "SELECT count(*) FROM World") == [(10000,)]


def test_destroy_after_a_kill_leaves_nothing_behind() -> None:
    cluster = new_cluster()
    try:
        lines = (cluster.data / "postmaster.pid").read_text().splitlines()
        shmid = lines[6].split()[1]
        assert shmid in shm_ids()
        conn = psycopg.connect(cluster.dsn, connect_timeout=20)
        conn.execute("SELECT count(*) FROM World")
        cluster.kill()
        conn.close()
    except BaseException:
        cluster.destroy()
        raise
    cluster.destroy()
    assert not cluster.dir.exists()
    assert shmid not in shm_ids(), "the killed server's shared memory segment is left"
    assert processes_in(cluster.dir) == []


def run_tool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLS / "pg-cluster"), *args], capture_output=True, text=True,
                          timeout=timeout)


def make(target: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-C", str(TOOLS.parent), target, f"DB_DIR={directory}"],
                          capture_output=True, text=True, timeout=120)


def test_command_line_and_make_db_start_once_and_stop_removes_the_directory() -> None:
    parent = tempfile.mkdtemp(prefix="px-pg-cli-")
    os.chmod(parent, 0o755)  # the server's own account must reach DIR inside it
    directory = Path(parent) / "db"
    port = pg.free_port()
    try:
        first = run_tool("start", str(directory), "--port", str(port))
        assert first.returncode == 0, first.stderr
        dsn = first.stdout.strip()
        assert dsn == f"postgresql://benchmarkdbuser:benchmarkdbpass@127.0.0.1:{port}/hello_world"
        again = run_tool("start", str(directory))
        assert (again.returncode, again.stdout.strip()) == (0, dsn), again.stderr
        assert run_tool("status", str(directory)).returncode == 0
        sock = run_tool("dsn", str(directory), "--socket")
        assert query(sock.stdout.strip(), "SELECT count(*) FROM Fortune") == [(12,)]
        assert query(dsn, "SELECT count(*) FROM World") == [(10000,)]
        # `make db` on a running cluster: its DSN and how to stop it.
        dev = make("db", directory)
        assert dev.returncode == 0, dev.stdout + dev.stderr
        assert dev.stdout.startswith(f"PostgreSQL in {directory}: {dsn}\n")
        assert "make db-stop" in dev.stdout
        stopped = make("db-stop", directory)
        assert stopped.returncode == 0, stopped.stderr
        assert not directory.exists()
        assert processes_in(directory) == []
        assert run_tool("stop", str(directory)).returncode == 0  # nothing to stop: fine
    finally:
        run_tool("stop", str(directory))
        os.rmdir(parent)


def test_start_refuses_a_directory_holding_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    res = run_tool("start", str(tmp_path))
    assert res.returncode == 1
    assert "not empty" in res.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_session_cluster_starts_only_when_a_test_asks(tmp_path: Path) -> None:
    (tmp_path / "test_lazy.py").write_text(textwrap.dedent("""
        import pgcluster

        def test_without_database():
            assert pgcluster._session is None

        def test_with_database(pg_dsn):
            assert pgcluster._session is not None and pgcluster._session.running()
            assert pg_dsn == pgcluster._session.dsn
    """))
    here = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(here))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "pgcluster",
                          "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 passed" in res.stdout, res.stdout


def test_a_stale_pid_file_naming_another_process_is_not_the_server(pg_cluster: Any) -> None:
    pg_cluster.stop()
    # As after a crash whose pid was reused since: this very test's process.
    pidfile = pg_cluster.data / "postmaster.pid"
    pidfile.write_text(f"{os.getpid()}\n{pg_cluster.data}\n0\n{pg_cluster.port}\n"
                       f"{pg_cluster.dir}\n127.0.0.1\n  0  0\nstopped\n")
    assert not pg_cluster.running()
    pg_cluster.kill()  # nothing to kill: this process survives
    pg_cluster.start()
    assert query(pg_cluster.dsn, "SELECT count(*) FROM Fortune") == [(12,)]
