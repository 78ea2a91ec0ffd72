"""px.stats() and the introspection functions: fields present and plausible
after known traffic (N requests: requests counter N, histogram count N),
callback latencies that match what the callbacks did, the process figures,
memory and context stats, TCP_INFO, thread ids, the TSC and debug lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from helpers import HOST, child_env, connect, recv_until_line
from http_helpers import Conn, request

N_REQUESTS = 60
SUMMARY_KEYS = {"count", "sum_ns", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"}
COUNTERS = ("connections", "accepts", "requests", "bytes_in", "bytes_out", "callbacks", "errors",
            "hogs", "handoffs", "pool_in_use", "paused")


@pytest.fixture
def app(spawn, backend: str):
    return spawn("stats_app.py", backend=backend)


def both(conn: Conn) -> dict[str, Any]:
    conn.send(request("GET", "/both"))
    reply = conn.read_reply()
    assert reply.status == 200, reply
    return json.loads(reply.body)


def check_summary(s: dict[str, Any], count: int) -> None:
    assert set(s) == SUMMARY_KEYS, s
    assert s["count"] == count, s
    if count == 0:
        assert s["max_ns"] == s["sum_ns"] == s["p50_ns"] == 0, s
        return
    assert 0 < s["p50_ns"] <= s["p90_ns"] <= s["p99_ns"] <= s["p999_ns"] <= s["max_ns"], s
    assert s["sum_ns"] >= s["max_ns"] and s["mean_ns"] == s["sum_ns"] // count, s
    assert s["max_ns"] < 10 * 10**9, s  # nothing here takes seconds


def test_http_requests_counted_and_timed(app, backend: str) -> None:
    sent = received = 0
    with Conn(app.ports["http"]) as conn:
        for i in range(N_REQUESTS):
            req = request("GET", "/json" if i % 2 else "/plaintext-c")
            conn.send(req)
            reply = conn.read_reply()
            assert reply.status == 200
            sent += len(req)
            received += len(reply.body)
        snap = both(conn)
    stats = snap["stats"]
    total, workers = stats["total"], stats["workers"]
    assert stats["backend"] == {"uring": "io_uring", "epoll": "epoll"}[backend]
    assert len(workers) == 2 and [w["worker"] for w in workers] == [0, 1]
    for w in workers:
        for key in COUNTERS + ("cpu_ns", "in_callback", "callback_running_ns", "latency"):
            assert key in w, key
    # Python routes and C static routes alike; the /both request is counted when
    # it has been answered, after this snapshot.
    assert total["requests"] == N_REQUESTS
    assert sum(w["requests"] for w in workers) == N_REQUESTS
    check_summary(total["latency"]["request"], N_REQUESTS)
    for w in workers:
        check_summary(w["latency"]["request"], w["requests"])
    assert total["latency"]["request"]["max_ns"] == max(
        w["latency"]["request"]["max_ns"] for w in workers)
    assert total["bytes_in"] >= sent + len(request("GET", "/both"))
    assert total["bytes_out"] > received >= N_REQUESTS * len(b"Hello, World!")
    assert total["accepts"] == 1 and total["connections"] == 1
    assert total["errors"] == 0 and total["handoffs"] == 0
    # Every callback is timed once; the one taking this snapshot has not ended.
    assert total["latency"]["callback"]["count"] == total["callbacks"] - 1
    busy = [w for w in workers if w["in_callback"]]
    assert len(busy) == 1 and busy[0]["callback_running_ns"] > 0
    assert busy[0]["requests"] >= 1
    assert total["cpu_ns"] == sum(w["cpu_ns"] for w in workers) > 0
    ctx = snap["context"]
    assert ctx["active_callbacks"] == 1
    assert ctx["thread_seq_id"] == busy[0]["worker"] + 1


def test_request_counter_under_concurrent_clients(app) -> None:
    per_client, clients = 40, 4
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with Conn(app.ports["http"]) as conn:
                for _ in range(per_client):
                    conn.send(request("GET", "/json"))
                    assert conn.read_reply().status == 200
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    with Conn(app.ports["http"]) as conn:
        stats = both(conn)["stats"]
    assert stats["total"]["requests"] == per_client * clients
    assert stats["total"]["latency"]["request"]["count"] == per_client * clients
    assert stats["total"]["accepts"] == clients + 1


def test_tcp_callback_latency(app) -> None:
    rounds = 20
    with connect(app.ports["slow"]) as sock:
        for i in range(rounds):
            msg = b"ping %d\n" % i
            sock.sendall(msg)
            assert recv_until_line(sock) == msg
        with connect(app.ports["stats"]) as s:
            stats = json.loads(s.makefile().readline())
    total = stats["total"]
    lat = total["latency"]["callback"]
    # 20 sleeping data callbacks, the echo connection's open, and the stats
    # connection's open still running: most values are >= 5 ms.
    assert lat["count"] == total["callbacks"] - 1 == rounds + 1
    assert lat["p50_ns"] >= 5_000_000 * 31 // 32, lat
    assert lat["max_ns"] >= 5_000_000 and lat["max_ns"] < 5 * 10**9, lat
    assert total["requests"] == 0
    assert total["latency"]["request"]["count"] == 0


def test_process_figures(app, backend: str) -> None:
    with Conn(app.ports["http"]) as conn:
        snap = both(conn)
    proc = snap["stats"]["process"]
    assert proc["pid"] == app.pid
    assert 0 < proc["uptime_s"] < 600
    assert proc["rss_bytes"] > 1 << 20 and proc["max_rss_bytes"] >= proc["rss_bytes"] // 2
    assert proc["cpu_user_s"] + proc["cpu_system_s"] > 0
    assert proc["threads"] >= 3  # main and two workers
    assert proc["workers"] == 2
    assert proc["backend"] == {"uring": "io_uring", "epoll": "epoll"}[backend]
    interp = proc["interpreter"]
    assert interp["version"] == ".".join(map(str, sys.version_info[:3]))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    assert proc["gil_enabled"] == gil == snap["stats"]["gil_enabled"]
    assert interp["free_threading_build"] == (not gil)


def test_memory_stats_follow_connections(app) -> None:
    held = [connect(app.ports["slow"]) for _ in range(20)]
    try:
        for s in held:  # each connection is open on the server once it echoes
            s.sendall(b"x\n")
            assert recv_until_line(s) == b"x\n"
        deadline = time.monotonic() + 5
        while True:  # pool figures are refreshed by each worker within ~1 s
            with Conn(app.ports["http"]) as conn:
                mem = both(conn)["memory"]
            if mem["total"]["connections"] == 21 and mem["total"]["pool_in_use"] > 0:
                break
            assert time.monotonic() < deadline, mem
            time.sleep(0.1)
        assert len(mem["workers"]) == 2
        for w in mem["workers"]:
            assert w["pool_bytes"] >= w["pool_in_use"] >= 0
        assert mem["rss_bytes"] > 0 and mem["shared_bytes"] > 0
        assert mem["python_allocated_blocks"] > 0
    finally:
        for s in held:
            s.close()


def test_context_socket_and_thread_ids_in_a_callback(app) -> None:
    with connect(app.ports["probe"]) as sock:
        payload = b"x" * 1000 + b"\n"
        sock.sendall(payload)
        report = json.loads(recv_until_line(sock))
    w = report["worker"]
    assert report["thread_seq_id"] == w + 1
    ctx = report["context"]
    assert ctx["main_thread_seq_id"] == 0 and ctx["thread_seq_id"] == w + 1
    mine = ctx["workers"][w]
    assert mine["in_callback"] and mine["thread_seq_id"] == w + 1
    assert mine["connections"] >= 1 and mine["callbacks"] >= 2
    assert ctx["active_callbacks"] >= 1
    tcp = report["socket"]
    assert tcp["state"] == "ESTABLISHED"
    assert tcp["bytes_received"] >= len(payload)
    assert tcp["cwnd"] > 0 and tcp["snd_mss"] > 0 and tcp["rto_us"] > 0
    for key in ("rtt_us", "rttvar_us", "retransmits", "total_retrans", "unacked", "bytes_acked",
                "send_queue", "recv_queue", "engine_unsent"):
        assert key in tcp, key
    assert tcp["engine_unsent"] == 0  # nothing queued yet: the report is the return value
    assert report["elsewhere"] == "ESTABLISHED"  # another thread may read it too
    assert report["other_thread_seq_id"] > 2  # above the two workers


# ---- in this process: no engine needed ---------------------------------------

def test_stats_without_engine_keeps_its_shape() -> None:
    import pyparallel as px
    if px._lifecycle._reported_engine() is not None:
        pytest.skip("an engine already exists in this test process")
    s = px.stats()
    assert s["workers"] == [] and s["total"] == {} and s["backend"] is None
    assert s["process"]["pid"] == os.getpid()
    assert px.memory_stats()["workers"] == []
    assert px.context_stats()["active_callbacks"] == 0


def test_socket_stats_of_a_plain_socket() -> None:
    import pyparallel as px
    with socket.create_server((HOST, 0)) as listener:
        with socket.create_connection(listener.getsockname()) as client:
            server, _ = listener.accept()
            with server:
                client.sendall(b"y" * 5000)
                got = b""
                while len(got) < 5000:
                    got += server.recv(65536)
                tcp = px.socket_stats(client)
                assert tcp["state"] == "ESTABLISHED"
                assert tcp["bytes_acked"] >= 5000 or tcp["bytes_sent"] >= 5000
                assert px.socket_stats(server.fileno())["bytes_received"] == 5000
    with pytest.raises(OSError):
        px.socket_stats(os.open(os.devnull, os.O_RDONLY))


def test_thread_seq_ids_in_this_process() -> None:
    import pyparallel as px
    assert px.thread_seq_id() == 0  # pytest runs tests on the main thread
    ids: list[int] = []

    def record() -> None:
        first = px.thread_seq_id()
        ids.extend([first, px.thread_seq_id()])

    threads = [threading.Thread(target=record) for _ in range(3)]
    for t in threads:
        t.start()
        t.join()
    assert ids[0::2] == ids[1::2]  # stable within a thread
    assert len(set(ids[0::2])) == 3 and min(ids) >= len(os.sched_getaffinity(0)) + 1


def test_rdtsc_and_clock_advance() -> None:
    import pyparallel as px
    a = px.rdtsc()
    time.sleep(0.001)
    b = px.rdtsc()
    assert isinstance(a, int) and b > a


DEBUG_SCRIPT = r"""
import pyparallel as px
px.debug("from main")
class Hello:
    def connection_made(self, transport):
        px.debug("from worker %d" % transport.worker)
        transport.close()
srv = px.register(transport=px.server("127.0.0.1", 0), protocol=Hello)
import socket, threading
def poke():
    socket.create_connection(("127.0.0.1", srv.port)).recv(1)
    px.shutdown(1)
threading.Thread(target=poke).start()
px.run(workers=1)
was = px.set_debug(not px.debug_enabled())
px.debug("after toggle")
print("was", was, "now", px.debug_enabled())
"""


@pytest.mark.parametrize("env_value", ["1", ""])
def test_debug_lines(env_value: str) -> None:
    env = child_env(None, {"PX_DEBUG": env_value})
    res = subprocess.run([sys.executable, "-c", DEBUG_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("px t")]
    if env_value:
        assert res.stdout.strip() == "was True now False"
        assert len(lines) == 2, res.stderr
        assert lines[0].startswith("px t0 +") and lines[0].endswith(" from main")
        assert lines[1].startswith("px t1 +") and lines[1].endswith(" from worker 0")
    else:
        assert res.stdout.strip() == "was False now True"
        assert len(lines) == 1 and lines[0].endswith(" after toggle"), res.stderr
