"""The interpreter contract: on free-threaded CPython importing pyparallel (all
of it) keeps the GIL off; on a GIL build, run() says once that callbacks will
be serialised."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import child_env

GIL_BUILD = getattr(sys, "_is_gil_enabled", lambda: True)()

IMPORT_ALL = """
import importlib, json, pkgutil, sys
import pyparallel
# The mail's Wikipedia script (examples.wiki.original) reads its command line
# and makes its data files at import, as the mail's code did: give it a small
# generated dump in a directory of the test's.
sys.argv = ["original", "--pages", "20", "--cache-dir", sys.argv[1],
            "--data-dir", sys.argv[1] + "/data"]
names = sorted(m.name for m in pkgutil.walk_packages(pyparallel.__path__, "pyparallel."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"gil": sys._is_gil_enabled(), "modules": names}))
"""

RUN_TWICE = """
import json, warnings
import pyparallel as px
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    px.run(workers=1)   # nothing registered: starts, then returns
    px.run(workers=1)
print(json.dumps([[w.category.__name__, str(w.message), w.filename] for w in caught]))
"""


def python(code: str, *args: str) -> str:
    env = child_env(None)
    env.pop("PYTHON_GIL", None)  # the interpreter decides, not the environment
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.skipif(GIL_BUILD, reason="a GIL build has no GIL to keep disabled")
def test_importing_everything_keeps_the_gil_disabled(tmp_path: Path) -> None:
    out = json.loads(python(IMPORT_ALL, str(tmp_path)))
    assert {"pyparallel._core", "pyparallel.demo", "pyparallel.examples.echo",
            "pyparallel.examples.chargen", "pyparallel.examples.wiki.original"} <= set(out["modules"])
    assert out["gil"] is False


@pytest.mark.skipif(not GIL_BUILD, reason="only a GIL build warns that callbacks are serialised")
def test_gil_build_warns_once_when_run_starts() -> None:
    caught = json.loads(python(RUN_TWICE))
    assert len(caught) == 1, caught
    category, message, filename = caught[0]
    assert category == "RuntimeWarning"
    assert "\n" not in message and "GIL" in message
    assert filename == "<string>", "the warning should point at the caller of run()"


@pytest.mark.skipif(GIL_BUILD, reason="a GIL build is expected to warn")
def test_free_threaded_build_does_not_warn() -> None:
    assert json.loads(python(RUN_TWICE)) == []
