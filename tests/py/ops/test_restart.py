"""Zero-downtime restart on SIGHUP: a new process with the same command line
inherits the listening sockets, says it is ready, and only then does the old
one stop accepting, answer what it is still asked (Connection: close) and
exit; the pid file names the new process. Under a steady load (the project's
load generator at a fixed rate), five restarts in a row lose no request and
make no connection fail. A new process that cannot start (import error, or
not ready in time) leaves the old one serving, saying why."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import HOST, SERVERS, ServerProcess, child_env
from ops_helpers import SERVE, get, read_pid, reaping, restart, stop_pid, wait_for


def start(backend: str, tmp: Path, target: str = "ops_app:App",
          env: dict[str, str] | None = None, *extra: str) -> tuple[ServerProcess, Path]:
    pid_file = tmp / "server.pid"
    argv = [*SERVE, target, "--app-dir", str(SERVERS), "--host", HOST, "--port", "0",
            "--workers", "2", "--pid-file", str(pid_file), *extra]
    proc = ServerProcess(argv, child_env(backend, env), ready=False)
    proc.wait_ready(30)
    wait_for(lambda: read_pid(pid_file) == proc.pid, 10, "the pid file names the server")
    return proc, pid_file


@pytest.mark.timeout(240)
@pytest.mark.parametrize("target", ["ops_app:App", "ops_app:wsgi_app", "ops_app:asgi_app"],
                         ids=["http", "wsgi", "asgi"])
def test_five_restarts_under_load_lose_nothing(backend: str, target: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        proc, pid_file = start(backend, tmp, target)
        with reaping(pid_file):
            result_file = tmp / "load.json"
            load = subprocess.Popen(
                [sys.executable, "-m", "pyparallel.loadgen", f"http://{HOST}:{proc.port}/pid",
                 "--rate", "400", "--duration", "180", "--connections", "8",
                 "--timeout", "10", "--json", str(result_file)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env(backend))
            try:
                time.sleep(1.0)
                pids = [proc.pid]
                took = []
                for _ in range(5):
                    start_at = time.monotonic()
                    pids.append(restart(pid_file))
                    took.append(time.monotonic() - start_at)
                    time.sleep(0.5)  # load on the new process before the next restart
            finally:
                load.send_signal(signal.SIGINT)
                _, err = load.communicate(timeout=60)
            assert result_file.exists(), err.decode()
            result = json.loads(result_file.read_text())
            assert len(set(pids)) == 6, pids
            assert proc.proc.wait(10) == 0, proc.stderr_text()
            assert result["responses"] > 0
            assert result["errors"] == {k: 0 for k in result["errors"]}, result
            assert result["connect_errors"] == 0, result
            assert result["protocol_errors"] == 0, result
            assert result["non_2xx_3xx"] == 0, result
            print(f"\n{backend} {target}: 5 restarts of {min(took):.1f}-{max(took):.1f} s "
                  f"(SIGHUP to the old process gone); {result['responses']} responses, "
                  f"{result['connects']} connections, 0 failed")
            last = read_pid(pid_file)
            assert last is not None
            status, body, _ = get(proc.port)
            assert status == 200 and body.split()[0] == str(last)
            stop_pid(last)
            assert not pid_file.exists()  # the last one removes it at exit
        proc.close()


@pytest.mark.parametrize("how", ["raise", "hang"])
def test_failed_restart_keeps_the_old_process_serving(backend: str, how: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        fail = tmp / "fail"
        proc, pid_file = start(backend, tmp, "ops_app:App",
                               {"OPS_APP_FAIL": str(fail), "PX_RESTART_TIMEOUT": "3"})
        with reaping(pid_file):
            fail.write_text(how)
            os.kill(proc.pid, signal.SIGHUP)
            wait_for(lambda: "restart failed" in proc.stderr_text(), 30, "restart failed")
            assert proc.proc.poll() is None
            assert read_pid(pid_file) == proc.pid
            status, body, _ = get(proc.port)
            assert status == 200 and body == str(proc.pid)
            text = proc.stderr_text()
            assert ("not ready within 3 s" if how == "hang" else "status 2") in text, text
            # Fixed: the next SIGHUP restarts.
            fail.unlink()
            new = restart(pid_file)
            assert get(proc.port)[1] == str(new)
            assert proc.proc.wait(10) == 0
            stop_pid(new)
        proc.close()


def test_in_flight_request_finishes_with_connection_close(backend: str) -> None:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        proc, pid_file = start(backend, tmp)
        with reaping(pid_file):
            conn = http.client.HTTPConnection(HOST, proc.port, timeout=30)
            conn.request("GET", "/pid")
            conn.getresponse().read()  # a kept-alive connection to the old process
            out: dict[str, object] = {}

            def slow() -> None:
                conn.request("GET", "/slow?ms=5000")  # outlasts the restart
                r = conn.getresponse()
                out.update(status=r.status, body=r.read().decode(),
                           connection=r.getheader("Connection"))

            th = threading.Thread(target=slow)
            th.start()
            time.sleep(0.3)  # the request is in the old process's handler
            new = restart(pid_file)
            th.join(30)
            assert out == {"status": 200, "body": str(proc.pid), "connection": "close"}
            assert get(proc.port)[1] == str(new)
            stop_pid(new)
        proc.close()
