"""Python code the STM core runs at awkward moments (a finalizer releasing an
old value, a key's __eq__ during a lookup) that uses transactions itself.

Each scenario runs in a child process with a deadline: the failure these
guard against is a deadlock, which must fail the test rather than hang it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

FINALIZER_IN_SERIAL_END = textwrap.dedent(
    """
    import threading
    import pyparallel as px

    px.stm_config(max_retries=0)   # the first conflict goes irrevocable
    slot = px.tvar(None, name="slot")
    finalized = px.tvar(0, name="finalized")
    bumped = px.tvar(0, name="bumped")

    class Tracked:
        def __del__(self):
            px.atomic(lambda: finalized.set(finalized.get() + 1))

    def commit_elsewhere():
        px.atomic(lambda: bumped.set(bumped.get() + 1))

    ROUNDS = 200
    for _ in range(ROUNDS):
        runs = [0]

        def body():
            runs[0] += 1
            seen = bumped.get()
            if runs[0] == 1:       # lose to another thread's commit, once
                t = threading.Thread(target=commit_elsewhere)
                t.start()
                t.join()
            bumped.set(seen + 1)
            slot.set(Tracked())    # the old one is released after commit

        px.atomic(body)
    slot.set(None)
    stats = px.stm_stats()
    assert stats["serial_fallbacks"] == ROUNDS, stats["serial_fallbacks"]
    assert bumped.get() == 2 * ROUNDS
    print("finalized", finalized.get())
    """
)


def test_a_finalizer_running_a_transaction_after_an_irrevocable_one_does_not_deadlock() -> None:
    # Replacing slot's value in an irrevocable transaction releases the old
    # value at the end; its __del__ starts a transaction of its own, which must
    # not wait for the irrevocable mode its own thread still holds.
    done = subprocess.run(
        [sys.executable, "-c", FINALIZER_IN_SERIAL_END],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    finalized = int(done.stdout.split()[-1])
    assert finalized > 0   # the finalizers ran, and their transactions committed


EQ_USES_THE_TDICT = textwrap.dedent(
    """
    import pyparallel as px

    d = px.tdict(name="d")
    calls = [0]

    class Key:
        def __init__(self, n):
            self.n = n
        def __hash__(self):
            return 1               # every Key collides: lookups compare
        def __eq__(self, other):
            calls[0] += 1          # a lookup in the same tdict, of a key
            d.get(("probe", calls[0] % 3))   # absent the first time
            return isinstance(other, Key) and other.n == self.n

    d[Key(1)] = 1
    px.atomic(lambda: d.__setitem__(Key(2), 2))
    assert d[Key(1)] == 1 and d[Key(2)] == 2
    print("ok")
    """
)


def test_a_key_whose_eq_uses_the_same_tdict_does_not_deadlock() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EQ_USES_THE_TDICT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok"]
