"""``pyparallel serve ARGS...`` as a test server: the same command, with the
engine's counters printed at exit (``STATS {...}``) for the suites' checks."""

import sys

from _common import report_runs

from pyparallel.serve import main

report_runs()
sys.exit(main(sys.argv[1:]))
