"""Prometheus text exposition (format 0.0.4) of :func:`pyparallel.stats`.

Engine counters become ``pyparallel_*_total`` counters with a ``worker`` label
(sum them in PromQL); levels (open connections, pool memory) are gauges with
the same label. Latencies are summaries merged over all workers by the engine
itself (summaries cannot be aggregated afterwards), with the quantiles 0.5,
0.9, 0.99, 0.999 and 1 (the maximum), ``_sum`` and ``_count``; they cover the
whole life of the engine.
"""

from __future__ import annotations

from typing import Any

from ._stats import _LEVELS, stats

__all__ = ["metrics_text", "CONTENT_TYPE"]

#: The Content-Type of the exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Engine counter -> (metric name, help). Counters the engine gains later and that
# are missing here are still exported, as pyparallel_<field>_total.
_COUNTERS: dict[str, tuple[str, str]] = {
    "accepts": ("pyparallel_accepts_total", "Connections accepted."),
    "refused": ("pyparallel_refused_total", "Connections refused over max_connections."),
    "connects": ("pyparallel_connects_total", "Client connections established."),
    "closes": ("pyparallel_closes_total", "Connections closed."),
    "timeouts": ("pyparallel_timeouts_total", "Connections closed by an idle timeout or deadline."),
    "bytes_in": ("pyparallel_received_bytes_total", "Bytes received."),
    "bytes_out": ("pyparallel_sent_bytes_total", "Bytes sent."),
    "recvs": ("pyparallel_receives_total", "Receive completions with data."),
    "sends": ("pyparallel_sends_total", "Send completions."),
    "sendfiles": ("pyparallel_sendfile_calls_total", "sendfile() calls that sent data."),
    "callbacks": ("pyparallel_callbacks_total", "Calls into the application."),
    "requests": ("pyparallel_http_requests_total", "HTTP requests answered."),
    "handoffs": ("pyparallel_handoffs_total",
                 "Blocking calls handed off the worker (0 until the engine does hand-offs)."),
    "errors": ("pyparallel_errors_total", "Callbacks that raised and failed system calls."),
    "hogs": ("pyparallel_hogs_total", "Loop turns in which a connection used its whole budget."),
    "paused": ("pyparallel_backpressure_pauses_total", "Reads paused by backpressure."),
    "buffer_shortages": ("pyparallel_buffer_shortages_total",
                         "Times the receive buffer ring ran dry."),
    "loops": ("pyparallel_loop_turns_total", "Turns of the worker loops."),
    "messages": ("pyparallel_messages_total", "Messages run by the workers."),
    "unhandled_errors": ("pyparallel_unhandled_errors_total",
                         "Callback exceptions no exception_handler took (connection closed)."),
    "accept_pauses": ("pyparallel_accept_pauses_total",
                      "Times accepting paused for lack of file descriptors or memory."),
    "pipeline_waits": ("pyparallel_http_pipeline_waits_total",
                       "Pipelined HTTP requests left waiting for the answers before to drain."),
    "budget_refused": ("pyparallel_budget_refused_total",
                       "HTTP request bodies refused (503) over the memory budget."),
    "budget_closed": ("pyparallel_budget_closed_total",
                      "Slow readers closed to get back under the memory budget."),
    "proxy_refused": ("pyparallel_proxy_refused_total",
                      "Connections closed for a missing or malformed PROXY protocol header."),
    "ws_upgrades": ("pyparallel_websocket_upgrades_total",
                    "Connections that became WebSockets."),
    "ws_messages_in": ("pyparallel_websocket_messages_received_total",
                       "WebSocket messages received whole."),
    "ws_messages_out": ("pyparallel_websocket_messages_sent_total", "WebSocket messages sent."),
}
_GAUGES: dict[str, tuple[str, str]] = {
    "connections": ("pyparallel_connections", "Open connections."),
    "pool_bytes": ("pyparallel_pool_reserved_bytes", "Memory reserved by the worker pools."),
    "pool_in_use": ("pyparallel_pool_in_use_bytes", "Pool memory in use."),
    "budget_held": ("pyparallel_budget_held_bytes",
                    "Request bodies and unsent output held, against the memory budget."),
}
_QUANTILES = (("0.5", "p50_ns"), ("0.9", "p90_ns"), ("0.99", "p99_ns"),
              ("0.999", "p999_ns"), ("1", "max_ns"))
_LATENCIES = (
    ("request", "pyparallel_http_request_duration_seconds",
     "HTTP requests, from the complete request to its response queued."),
    ("callback", "pyparallel_callback_duration_seconds",
     "Duration of each call into the application."),
)


def _label(value: Any) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _number(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: Any, **labels: Any) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")


def metrics_text() -> str:
    """The engine's and the process's figures in Prometheus text format 0.0.4."""
    s = stats()
    out = _Writer()
    workers = s["workers"]
    proc = s["process"]
    fields = [k for k, v in (workers[0].items() if workers else ())
              if isinstance(v, int) and not isinstance(v, bool)
              and k not in ("worker", "cpu_ns", "callback_running_ns")]
    for field in fields:
        if field in _LEVELS:
            name, help_text = _GAUGES.get(field, (f"pyparallel_{field}", f"Engine level {field}."))
            out.family(name, "gauge", help_text)
        else:
            name, help_text = _COUNTERS.get(field, (f"pyparallel_{field}_total",
                                                   f"Engine counter {field}."))
            out.family(name, "counter", help_text)
        for w in workers:
            out.sample(name, w[field], worker=w["worker"])
    if workers:
        out.family("pyparallel_worker_cpu_seconds_total", "counter",
                   "CPU time used by the worker threads.")
        for w in workers:
            out.sample("pyparallel_worker_cpu_seconds_total", w["cpu_ns"] / 1e9,
                       worker=w["worker"])
        out.family("pyparallel_worker_in_callback", "gauge",
                   "1 while the worker runs an application callback.")
        for w in workers:
            out.sample("pyparallel_worker_in_callback", w["in_callback"], worker=w["worker"])
        for kind, name, help_text in _LATENCIES:
            summary = s["total"]["latency"][kind]
            out.family(name, "summary", help_text)
            for q, key in _QUANTILES:
                out.sample(name, summary[key] / 1e9, quantile=q)
            out.sample(name + "_sum", summary["sum_ns"] / 1e9)
            out.sample(name + "_count", summary["count"])
    out.family("pyparallel_info", "gauge", "The I/O backend and the interpreter (value 1).")
    interp = proc["interpreter"]
    out.sample("pyparallel_info", 1, backend=proc["backend"] or "none",
               interpreter=f'{interp["implementation"]} {interp["version"]}',
               free_threading=str(interp["free_threading_build"]).lower(),
               gil=str(proc["gil_enabled"]).lower())
    out.family("pyparallel_workers", "gauge", "Worker threads of the engine.")
    out.sample("pyparallel_workers", proc["workers"])
    out.family("pyparallel_process_uptime_seconds", "gauge", "Seconds since the process started.")
    out.sample("pyparallel_process_uptime_seconds", proc["uptime_s"])
    out.family("pyparallel_process_resident_memory_bytes", "gauge", "Resident memory.")
    out.sample("pyparallel_process_resident_memory_bytes", proc["rss_bytes"])
    out.family("pyparallel_process_cpu_seconds_total", "counter",
               "CPU time of the whole process, by mode.")
    out.sample("pyparallel_process_cpu_seconds_total", proc["cpu_user_s"], mode="user")
    out.sample("pyparallel_process_cpu_seconds_total", proc["cpu_system_s"], mode="system")
    out.family("pyparallel_process_threads", "gauge", "Threads of the process.")
    out.sample("pyparallel_process_threads", proc["threads"])
    return "\n".join(out.lines) + "\n"
