"""Run one of the package's example services exactly as ``python -m
pyparallel.examples.NAME ARGS`` would, and print the engine's counters when it
exits (``STATS {...}``), for the leak checks.

    python example.py NAME [--port N] [--workers K]
"""

from __future__ import annotations

import runpy
import sys

from _common import report_runs

if __name__ == "__main__":
    name = sys.argv[1]
    sys.argv = [f"pyparallel.examples.{name}"] + sys.argv[2:]
    report_runs()
    runpy.run_module(f"pyparallel.examples.{name}", run_name="__main__", alter_sys=True)
