"""python/pyparallel/_core.pyi describes the extension as built: mypy's
stubtest compares every name, signature and base in the stubs with the
module the running interpreter imports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import child_env


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed in this interpreter (pip install mypy)")
def test_core_stubs_match_the_extension(tmp_path: Path) -> None:
    # From a directory of its own, so that the installed package is the one checked.
    res = subprocess.run([sys.executable, "-m", "mypy.stubtest", "pyparallel._core"],
                         check=False, cwd=tmp_path, env=child_env(None), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
