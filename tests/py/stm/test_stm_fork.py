"""A child of fork runs transactions although, at the fork, another thread of
the parent was inside an irrevocable transaction (holding the irrevocable
mode, pinned): only the forking thread lives on in the child.

The scenario runs in a child interpreter with a deadline: the failure is a
deadlock in the grandchild.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

FORK_DURING_IRREVOCABLE = textwrap.dedent(
    """
    import os, threading, time, warnings
    import pyparallel as px

    warnings.simplefilter("ignore", DeprecationWarning)   # fork with threads
    px.stm_config(max_retries=0)
    v = px.tvar(0, name="v")
    hold, go = threading.Event(), threading.Event()
    inside, finish = threading.Event(), threading.Event()
    runs = [0]

    def body():
        runs[0] += 1
        value = v.get()
        if runs[0] == 1:            # lose a conflict: the retry is irrevocable
            hold.set()
            assert go.wait(10)
        else:                       # irrevocable: stay inside across the fork
            inside.set()
            assert finish.wait(30)
        v.set(value + 10)

    t = threading.Thread(target=px.atomic, args=(body,))
    t.start()
    assert hold.wait(10)
    v.set(1)
    go.set()
    assert inside.wait(10)
    pid = os.fork()
    if pid == 0:
        px.atomic(lambda: v.set(v.get() + 100))
        os._exit(0 if v.get() == 101 else 3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        status = -1
    finish.set()
    t.join(10)
    print("child", status)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no fork")
def test_a_forked_child_runs_transactions_while_the_parent_held_the_irrevocable_mode() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_DURING_IRREVOCABLE], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["child", "0"], done.stdout
