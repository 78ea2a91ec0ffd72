"""CPython's own asyncio tests against pyparallel.asyncio.

Runs the event loop, futures, tasks, streams, sockets and server test classes
of ``test.test_asyncio`` (the package that ships with the interpreter) with
pyparallel.asyncio's policy set, and the loop-parametrised mixins (event loop
tests, low-level socket tests) with a subclass whose ``create_event_loop``
makes a pyparallel.asyncio loop. Prints one line per test that did not pass
(with the reason) and the totals:

    python tests/py/asyncio/conformance.py [--list-skips] [module ...]

Exit status 0 when nothing failed or errored.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import re
import sys
import unittest
from typing import Any

import pyparallel.asyncio as pa

_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b")

MODULES = ["test_events", "test_futures", "test_tasks", "test_streams", "test_sock_lowlevel",
           "test_server", "test_protocols", "test_transports", "test_sslproto", "test_ssl"]


def _px_loop_class(mixin: type, base: type) -> type:
    def create_event_loop(self: Any) -> asyncio.AbstractEventLoop:
        return pa.new_event_loop()
    return type(f"Px{mixin.__name__}", (mixin, base), {"create_event_loop": create_event_loop})


def suite_for(name: str) -> unittest.TestSuite:
    mod = importlib.import_module(f"test.test_asyncio.{name}")
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    from test.test_asyncio import utils as test_utils
    if name == "test_events":
        cls = _px_loop_class(mod.EventLoopTestsMixin, test_utils.TestCase)
        suite.addTests(loader.loadTestsFromTestCase(cls))
        for n in ("HandleTests", "TimerTests", "AbstractEventLoopTests", "PolicyTests",
                  "GetEventLoopTestsMixin"):
            c = getattr(mod, n, None)
            if isinstance(c, type) and issubclass(c, unittest.TestCase):
                suite.addTests(loader.loadTestsFromTestCase(c))
        return suite
    if name == "test_sock_lowlevel":
        cls = _px_loop_class(mod.BaseSockTestsMixin, test_utils.TestCase)
        suite.addTests(loader.loadTestsFromTestCase(cls))
        return suite
    if name == "test_server":
        for n in ("BaseStartServer",):
            base = getattr(mod, n, None)
            if base is not None:
                cls = type(f"Px{n}", (base, unittest.TestCase),
                           {"new_loop": lambda self: pa.new_event_loop()})
                suite.addTests(loader.loadTestsFromTestCase(cls))
        # asyncio test cases whose loops our policy makes (3.12+)
        for n in ("TestServer2", "UnixServerCleanupTests"):
            case = getattr(mod, n, None)
            if isinstance(case, type) and issubclass(case, unittest.TestCase):
                suite.addTests(loader.loadTestsFromTestCase(case))
        return suite
    if name in ("test_sslproto", "test_ssl"):
        # TLS over real sockets, with our loop; test_sslproto's other classes
        # drive the SSL protocol with mocks on a test loop (not ours).
        n = "BaseStartTLS" if name == "test_sslproto" else "TestSSL"
        cls = type(f"Px{n}", (getattr(mod, n), unittest.TestCase),
                   {"new_loop": lambda self: pa.new_event_loop()})
        suite.addTests(loader.loadTestsFromTestCase(cls))
        return suite
    # Everything else: its own classes, with our policy making the loops.
    return loader.loadTestsFromModule(mod)


def _without(suite: unittest.TestSuite, names: set[str]) -> unittest.TestSuite:
    """suite less the test methods named in names."""
    out = unittest.TestSuite()
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            out.addTest(_without(test, names))
        elif test.id().rsplit(".", 1)[-1] not in names:
            out.addTest(test)
    return out


class _Result(unittest.TextTestResult):
    pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("modules", nargs="*", default=MODULES)
    ap.add_argument("--list-skips", action="store_true")
    ap.add_argument("--timeout", type=float, default=60.0, help="per test module, seconds")
    ap.add_argument("--skip", action="append", default=[], metavar="TEST",
                    help="a test method not to run (its name), e.g. one that "
                         "patches a selector loop's private parts")
    args = ap.parse_args(argv)
    totals = {"run": 0, "failures": 0, "errors": 0, "skipped": 0}
    for name in args.modules:
        # Per module: test_events' policy tests put the default policy back.
        asyncio.set_event_loop_policy(pa.EventLoopPolicy())
        suite = _without(suite_for(name), set(args.skip))
        faulthandler.dump_traceback_later(args.timeout * 10, exit=True)
        runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=0, resultclass=_Result)
        result = runner.run(suite)
        faulthandler.cancel_dump_traceback_later()
        for test, tb in result.failures + result.errors:
            lines = tb.strip().splitlines()
            why = [ln for ln in lines if _EXC_LINE.match(ln)] or lines
            print(f"FAIL {test.id()}: {why[-1]}")
        if args.list_skips:
            for test, reason in result.skipped:
                print(f"SKIP {test.id()}: {reason}")
        print(f"{name}: run={result.testsRun} failures={len(result.failures)} "
              f"errors={len(result.errors)} skipped={len(result.skipped)}", flush=True)
        totals["run"] += result.testsRun
        totals["failures"] += len(result.failures)
        totals["errors"] += len(result.errors)
        totals["skipped"] += len(result.skipped)
    print("TOTAL " + " ".join(f"{k}={v}" for k, v in totals.items()))
    return 0 if totals["failures"] == totals["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
