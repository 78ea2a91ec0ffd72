"""Atomic blocks over transactional containers (AME: automatic mutual exclusion).

``atomic(func, *args)`` runs ``func`` as a transaction over :class:`tvar`,
:class:`tdict` and :class:`tlist` objects. Transactions appear to run one at a
time, in one global order, while they actually run in parallel on
free-threaded CPython; a transaction that met a conflicting commit runs again.

Everything but :func:`parallel_for` is in C: the transaction core
(``src/core/stm.c``, no Python in it) and its binding (``src/py/stm*.c``).

* The algorithm is TL2 (transactional locking II). Every *location* — a tvar,
  one key of a tdict, one index of a tlist, and the length of a tdict or
  tlist — has a value and a versioned lock word of its own. A transaction
  reads a consistent snapshot: a location newer than its snapshot moves the
  snapshot forward if nothing read so far has changed, and otherwise the
  transaction stops at once (opacity: a doomed transaction never sees a state
  that never existed). Writes are buffered; commit locks the locations
  written, validates the reads and publishes. Read-only transactions lock
  nothing and write no shared memory.
* The version clock is TL2's GV5 variant: a commit takes the clock plus one
  without writing the clock, which moves only when a reader meets a newer
  version; commits over disjoint locations share no written cache line.
* A value replaced by a commit may still be in a reader's hands an instant
  later, so it is released through epochs: each thread announces the epoch it
  reads in, and a replaced value is released once every thread has moved on.
* Contention: randomised exponential backoff; after ``max_retries`` lost
  conflicts (:func:`stm_config`) a transaction runs *irrevocably*: it waits
  until the running transactions end, new ones wait for it, and it cannot
  lose, so every transaction finishes (counted in ``serial_fallbacks``).
* Nesting is flat: an inner ``atomic`` joins the outer transaction, and an
  exception leaving the inner block undoes its writes only.
* I/O a retry would repeat is refused inside a transaction with
  :class:`IOInTransactionError` (an audit hook, and ``Transport`` methods).
* :func:`stm_stats` sums per-thread counters kept in C: commits, aborts by
  cause, retries, serial fallbacks and the most conflicted locations.
"""

from __future__ import annotations

from .. import _core
from ._parallel import parallel_for

IOInTransactionError = _core.IOInTransactionError
TransactionError = _core.TransactionError
atomic = _core.atomic
in_transaction = _core.in_transaction
refuse_in_transaction = _core.refuse_in_transaction
stm_config = _core.stm_config
stm_stats = _core.stm_stats
tdict = _core.tdict
tlist = _core.tlist
tvar = _core.tvar

__all__ = [
    "tvar", "tdict", "tlist", "atomic", "parallel_for", "stm_stats", "stm_config",
    "in_transaction", "refuse_in_transaction", "TransactionError", "IOInTransactionError",
]
