"""The report of a run: wrk2-style text for people, JSON for charts and scripts."""

from __future__ import annotations

from typing import Any

from . import Result

__all__ = ["header", "text", "as_json"]


def _fmt_us(us: float) -> str:
    """A duration given in microseconds, in the unit wrk prints it."""
    if us < 1000:
        return f"{us:.2f}us"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1_000_000:.2f}s"


def _fmt_bytes(n: float) -> str:
    """A byte count with a binary unit."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f}{unit}"
        n /= 1024
    return f"{n:.2f}GB"


def header(duration: float, url: str) -> str:
    """The first line, printed as the run starts."""
    return f"Running {duration:g}s test @ {url}\n"


def text(result: Result, spectrum: bool = False, with_header: bool = True) -> str:
    """The report, wrk2's layout: setup, latency summary and distribution,
    totals, errors, rates (without the first line if it was printed already)."""
    lat = result["latency_us"]
    lines = [header(result["duration"], result["url"]).rstrip("\n")] if with_header else []
    lines += [
        f"  {result['workers']} worker{'s' if result['workers'] != 1 else ''} "
        f"({result['backend']}) and {result['connections']} connections, "
        f"{result['rate']:g} requests/s scheduled",
    ]
    if result["interrupted"]:
        lines.append("  interrupted: the figures cover the run until the stop")
    if lat["count"]:
        lines += [
            "  Latency (from each request's scheduled time to the end of its response)",
            f"    {'Avg':>10} {'Stdev':>10} {'Max':>10}",
            f"    {_fmt_us(lat['mean']):>10} {_fmt_us(lat['stdev']):>10} {_fmt_us(lat['max']):>10}",
            "  Latency Distribution (HdrHistogram-style, scheduled-time latency)",
        ]
        for level, value in lat["percentiles"]:
            lines.append(f"  {level:7.3f}% {_fmt_us(value):>10}")
    if spectrum and lat["count"]:
        lines += ["", "  Detailed Percentile spectrum:",
                  f"  {'Value(ms)':>12} {'Percentile':>12} {'TotalCount':>12} "
                  f"{'1/(1-Percentile)':>18}", ""]
        for level, value, count in lat["spectrum"]:
            inv = f"{1 / (1 - level / 100):18.2f}" if level < 100 else f"{'inf':>18}"
            lines.append(f"  {value / 1000:12.3f} {level / 100:12.6f} {count:12d} {inv}")
        lines += [f"#[Mean    = {lat['mean'] / 1000:12.3f}, StdDeviation   = "
                  f"{lat['stdev'] / 1000:12.3f}]",
                  f"#[Max     = {lat['max'] / 1000:12.3f}, Total count    = "
                  f"{lat['count']:12d}]", ""]
    elapsed = result["elapsed"]
    lines.append(f"  {result['responses']} responses to {result['scheduled']} scheduled requests "
                 f"in {elapsed:.2f}s, {_fmt_bytes(result['bytes_read'])} read")
    errors = result["errors"]
    if any(errors.values()):
        lines.append("  Socket errors: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    if result["non_2xx_3xx"]:
        lines.append(f"  Non-2xx or 3xx responses: {result['non_2xx_3xx']}")
    if result["connect_errors"] or result["protocol_errors"]:
        lines.append(f"  Connections: {result['connects']} made, {result['connect_errors']} "
                     f"failed, {result['protocol_errors']} out of step")
    if result["cancelled"]:
        lines.append(f"  Cancelled by the stop: {result['cancelled']}")
    lines.append(f"  Send lag (request written after its scheduled time): mean "
                 f"{_fmt_us(result['send_lag_mean_us'])}, max {_fmt_us(result['send_lag_max_us'])}")
    lines.append(f"Requests/sec: {result.achieved_rate:10.2f}  (asked {result['rate']:.2f})")
    per_second = result["bytes_read"] / elapsed if elapsed else 0
    lines.append(f"Transfer/sec: {_fmt_bytes(per_second):>10}")
    return "\n".join(lines) + "\n"


def as_json(result: Result, label: str | None = None) -> dict[str, Any]:
    """The run as a JSON document: settings, counts, and the latency spectrum as
    HdrHistogram-style rows (percentile, value in ms, total count)."""
    lat = result["latency_us"]
    return {
        "tool": "pyparallel-bench",
        "label": label or result["url"],
        "url": result["url"],
        "method": result["method"],
        "rate": result["rate"],
        "achieved_rate": result.achieved_rate,
        "duration": result["duration"],
        "connections": result["connections"],
        "workers": result["workers"],
        "backend": result["backend"],
        "interrupted": result["interrupted"],
        "requests": result["scheduled"],
        "sent": result["sent"],
        "responses": result["responses"],
        "non_2xx_3xx": result["non_2xx_3xx"],
        "errors": dict(result["errors"]),
        "cancelled": result["cancelled"],
        "connects": result["connects"],
        "connect_errors": result["connect_errors"],
        "protocol_errors": result["protocol_errors"],
        "bytes_read": result["bytes_read"],
        "elapsed": result["elapsed"],
        "send_lag_ms": {"mean": result["send_lag_mean_us"] / 1000,
                        "max": result["send_lag_max_us"] / 1000},
        "latency_ms": {
            "count": lat["count"],
            "min": lat["min"] / 1000,
            "mean": lat["mean"] / 1000,
            "stdev": lat["stdev"] / 1000,
            "max": lat["max"] / 1000,
            "summary": [{"percentile": p, "value": v / 1000} for p, v in lat["percentiles"]],
        },
        "percentiles": [{"percentile": p, "value_ms": v / 1000, "total_count": c}
                        for p, v, c in lat["spectrum"]],
    }
