"""Prometheus exposition: px.metrics_text() and the mounted /metrics and /stats
routes, parsed by prometheus_client, with values equal to px.stats() taken in
the same callback, and the text format's rules (HELP and TYPE before samples,
counters ending in _total, one family per name)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from http_helpers import Conn, request

parser = pytest.importorskip("prometheus_client.parser",
                             reason="prometheus_client is not installed (tools/requirements-test.txt)")

N_REQUESTS = 25
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


@pytest.fixture
def app(spawn, backend: str):
    return spawn("stats_app.py", backend=backend)


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def sample(fams: dict[str, Any], family: str, **labels: str) -> float:
    hits = [s.value for s in fams[family].samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (family, labels, fams[family].samples)
    return hits[0]


def check_format(text: str) -> None:
    """The rules of format 0.0.4 that a lenient parser would let pass."""
    assert text.endswith("\n")
    declared: dict[str, str] = {}
    helped: set[str] = set()
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, f"second HELP for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in helped, f"TYPE before HELP for {name}"
            assert name not in declared, f"family {name} declared twice"
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped")
            if kind == "counter":
                assert name.endswith("_total"), name
            declared[name] = kind
            current = name
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            assert current is not None
            name = m.group(1)
            allowed = {current}
            if declared[current] == "summary":
                allowed |= {current + "_sum", current + "_count"}
            assert name in allowed, f"{name} outside its family {current}"
            float(m.group(3))
    assert declared, "no families"


def test_metrics_match_stats_after_known_traffic(app, backend: str) -> None:
    with Conn(app.ports["http"]) as conn:
        for i in range(N_REQUESTS):
            conn.send(request("GET", "/json" if i % 3 else "/plaintext-c"))
            assert conn.read_reply().status == 200
        conn.send(request("GET", "/both"))
        snap = json.loads(conn.read_reply().body)
    text, stats = snap["metrics"], snap["stats"]
    check_format(text)
    fams = families(text)
    pairs = {"accepts": "pyparallel_accepts", "requests": "pyparallel_http_requests",
             "bytes_in": "pyparallel_received_bytes", "bytes_out": "pyparallel_sent_bytes",
             "callbacks": "pyparallel_callbacks", "errors": "pyparallel_errors",
             "handoffs": "pyparallel_handoffs", "closes": "pyparallel_closes",
             "connections": "pyparallel_connections"}
    for w in stats["workers"]:
        for key, family in pairs.items():
            assert sample(fams, family, worker=str(w["worker"])) == w[key], (key, w)
    assert fams["pyparallel_accepts"].type == "counter"
    assert fams["pyparallel_connections"].type == "gauge"
    assert sum(s.value for s in fams["pyparallel_http_requests"].samples) == N_REQUESTS
    req = stats["total"]["latency"]["request"]
    fam = fams["pyparallel_http_request_duration_seconds"]
    assert fam.type == "summary"
    assert sample(fams, "pyparallel_http_request_duration_seconds", quantile="0.5") == \
        pytest.approx(req["p50_ns"] / 1e9)
    assert sample(fams, "pyparallel_http_request_duration_seconds", quantile="0.999") == \
        pytest.approx(req["p999_ns"] / 1e9)
    assert sample(fams, "pyparallel_http_request_duration_seconds", quantile="1") == \
        pytest.approx(req["max_ns"] / 1e9)
    counts = {s.name: s.value for s in fam.samples if not s.labels}
    assert counts["pyparallel_http_request_duration_seconds_count"] == N_REQUESTS == req["count"]
    assert counts["pyparallel_http_request_duration_seconds_sum"] == pytest.approx(req["sum_ns"] / 1e9)
    info = fams["pyparallel_info"].samples[0].labels
    assert info["backend"] == stats["backend"] == {"uring": "io_uring", "epoll": "epoll"}[backend]
    assert info["gil"] == str(stats["gil_enabled"]).lower()
    assert sample(fams, "pyparallel_workers") == 2
    assert sample(fams, "pyparallel_process_cpu_seconds", mode="user") > 0


def test_mounted_routes(app) -> None:
    with Conn(app.ports["http"]) as conn:
        for _ in range(5):
            conn.send(request("GET", "/json"))
            assert conn.read_reply().status == 200
        conn.send(request("GET", "/metrics"))
        reply = conn.read_reply()
        assert reply.status == 200
        assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert reply.headers["cache-control"] == "no-store"
        check_format(reply.body.decode())
        assert sum(s.value for s in families(reply.body.decode())["pyparallel_http_requests"].samples) == 5
        conn.send(request("HEAD", "/metrics"))
        head = conn.read_reply(head=True)
        assert head.status == 200 and head.body == b""
        conn.send(request("GET", "/stats?buckets=1"))
        reply = conn.read_reply()
        assert reply.status == 200 and reply.headers["content-type"] == "application/json"
        stats = json.loads(reply.body)
        # /metrics was answered too (the HEAD as well): 5 + 2 requests before this one.
        assert stats["total"]["requests"] == 7
        lat = stats["total"]["latency"]["request"]
        assert sum(n for _, _, n in lat["buckets"]) == lat["count"] == 7
        for lo, hi, n in lat["buckets"]:
            assert 0 <= lo <= hi and n > 0
        assert all("buckets" not in w["latency"]["request"] for w in stats["workers"])
        conn.send(request("GET", "/stats"))
        assert "buckets" not in json.loads(conn.read_reply().body)["total"]["latency"]["request"]


def test_metrics_text_without_engine_and_escaping() -> None:
    import pyparallel as px
    from pyparallel import _metrics
    text = px.metrics_text()
    check_format(text)
    fams = families(text)
    assert "pyparallel_process_resident_memory_bytes" in fams
    assert sample(fams, "pyparallel_process_resident_memory_bytes") > 0
    odd = 'a "quoted" back\\slash\nnewline'
    line = "x" + _metrics._labels({"v": odd}) + " 1\n"
    parsed = list(parser.text_string_to_metric_families("# TYPE x gauge\n" + line))
    assert parsed[0].samples[0].labels["v"] == odd
