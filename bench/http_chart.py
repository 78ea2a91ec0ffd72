"""Bar chart of the HTTP benchmark: requests/s per server and endpoint.

    python bench/http_chart.py RAW.json OUT.png

RAW.json is what bench/http_bench.py writes into bench/results/raw/. Bars are
medians; the whiskers span the fastest and the slowest run. Runs in .venv-gil,
where bench/requirements.txt installs matplotlib.
"""

from __future__ import annotations

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ENDPOINTS = [("/json", "#3b75af"), ("/plaintext", "#ef8636"), ("/plaintext-c", "#519e3e")]


def main(raw_path: str, out_path: str) -> int:
    with open(raw_path) as f:
        raw = json.load(f)
    servers = [s for s in raw["servers"]
               if any(raw["throughput"].get(f"{s['key']} {ep}") for ep in s["endpoints"])]
    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=110)
    width = 0.27
    # Each server's bars are centred on its tick, however many endpoints it has.
    rates = {(s["key"], ep): [r["rps"] for r in raw["throughput"].get(f"{s['key']} {ep}", [])
                              if "rps" in r]
             for s in servers for ep, _ in ENDPOINTS}
    slots = {s["key"]: [ep for ep, _ in ENDPOINTS if rates[s["key"], ep]] for s in servers}
    top = max(max(v) for v in rates.values() if v)
    for ep, color in ENDPOINTS:
        xs, meds, lo, hi = [], [], [], []
        for x, s in enumerate(servers):
            rs = rates[s["key"], ep]
            if not rs:
                continue
            here = slots[s["key"]]
            m = statistics.median(rs)
            xs.append(x + (here.index(ep) - (len(here) - 1) / 2) * width)
            meds.append(m)
            lo.append(m - min(rs))
            hi.append(max(rs) - m)
        if not xs:
            continue
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, color=color, label=ep,
               error_kw={"elinewidth": 1, "ecolor": "#333333"})
        for x, m, h in zip(xs, meds, hi):
            ax.text(x, m + h + top * 0.01, f"{m / 1000:.0f}k", ha="center",
                    va="bottom", fontsize=7.5)
    ax.set_xticks(range(len(servers)))
    ax.set_xticklabels([s["name"].replace(" (", "\n(").replace(" + ", "\n+ ") for s in servers],
                       fontsize=8.5)
    ax.set_ylabel("requests/s (median of runs; whiskers: range)")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
    ax.set_title(f"HTTP/1.1 keep-alive, wrk -t1 -c{raw['conns']} for {raw['seconds']:g}s; "
                 "server on CPU 0, wrk on CPU 1; 1 worker each", fontsize=10)
    ax.legend(title="endpoint", fontsize=8.5)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    fig.savefig(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
