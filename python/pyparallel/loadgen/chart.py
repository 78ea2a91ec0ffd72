"""Percentile-latency chart of several runs, as HdrHistogram plots them.

The x axis is the percentile on a log scale of 1 / (1 - p): 0 %, 90 %, 99 %,
99.9 % ... are equally spaced, so the tail gets the room it deserves; the y axis
is the latency in milliseconds. Each input is a ``--json`` file of
pyparallel-bench. Needs matplotlib (imported only here).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from . import LoadgenError

__all__ = ["NoMatplotlib", "draw"]


class NoMatplotlib(RuntimeError):
    """matplotlib is not installed in this interpreter."""


def _load(path: str) -> dict[str, Any]:
    """A pyparallel-bench JSON file; LoadgenError when it is not one."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise LoadgenError(f"{path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("tool") != "pyparallel-bench" or \
            not isinstance(doc.get("percentiles"), list):
        raise LoadgenError(f"{path}: not a pyparallel-bench --json file")
    return doc


def _series(doc: dict[str, Any]) -> tuple[list[float], list[float]]:
    """x = 1 / (1 - percentile) and y = latency in ms for every row below 100 %;
    the 100 % row (the max) is placed one decade beyond the last row."""
    xs: list[float] = []
    ys: list[float] = []
    top = None
    for row in doc["percentiles"]:
        p = float(row["percentile"])
        if p >= 100.0:
            top = float(row["value_ms"])
            continue
        xs.append(1.0 / (1.0 - p / 100.0))
        ys.append(float(row["value_ms"]))
    if top is not None:
        xs.append((xs[-1] if xs else 1.0) * 10)
        ys.append(top)
    return xs, ys


def draw(paths: list[str], output: str, title: str | None = None) -> str:
    """Draw the runs in paths into output (PNG, SVG or PDF by its extension)."""
    docs = [_load(p) for p in paths]
    if not docs:
        raise LoadgenError("chart needs at least one --json file")
    try:
        import matplotlib
    except ImportError:
        raise NoMatplotlib("the chart needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    widest = 10.0
    for path, doc in zip(paths, docs, strict=True):
        xs, ys = _series(doc)
        if not xs:
            continue
        label = doc.get("label") or Path(path).stem
        achieved = doc.get("achieved_rate")
        if isinstance(achieved, (int, float)):
            label += f" ({achieved:,.0f} req/s of {doc.get('rate', 0):,.0f})"
        ax.plot(xs, ys, linewidth=1.6, label=label)
        widest = max(widest, xs[-1])
    ax.set_xscale("log")
    decades = max(1, math.ceil(math.log10(widest)))
    ticks = [10.0 ** i for i in range(decades + 1)]
    names = ["0%"] + [f"{100 - 100 / t:.{max(0, i - 2)}f}%" for i, t in enumerate(ticks) if i]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels(names)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(1, ticks[-1])
    ax.set_xlabel("percentile (the last point of each run is its maximum)")
    ax.set_ylabel("latency (ms) from the scheduled send time")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="major", alpha=0.35)
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(title or "Latency by percentile")
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)
    return output
