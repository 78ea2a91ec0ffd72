"""Atomic blocks over transactional containers (AME: automatic mutual exclusion).

``atomic(func, *args)`` runs ``func`` as a transaction over :class:`tvar`,
:class:`tdict` and :class:`tlist` objects. Transactions appear to run one at a
time, in one global order, while they actually run in parallel on
free-threaded CPython; a transaction that met a conflicting commit runs again.

The algorithm is TL2 (transactional locking II) with snapshot extension:

* every *location* — a tvar, one key of a tdict, one index of a tlist, and the
  length of a tdict or tlist — holds an immutable ``(version, value)`` cell
  and a lock of its own;
* a transaction samples the global version clock when it starts (its read
  version ``rv``); each read checks that the location is unlocked and not
  newer than ``rv`` (when it is newer, the transaction tries to move its
  snapshot forward by revalidating what it read so far), so a running
  transaction only ever sees one consistent snapshot (opacity): a doomed
  transaction cannot loop or fail on a state that never existed;
* writes are buffered in the transaction; at commit it locks the locations it
  writes, advances the clock (its write version), revalidates its reads, then
  publishes the new cells and unlocks. Read-only transactions commit without
  locking anything or touching the clock;
* a transaction that has lost more than ``max_retries`` times runs
  *irrevocably*: only one such transaction at a time; it locks every location
  it touches as it goes (two-phase locking), transactions that start
  meanwhile wait for it, and those that run into its locks abort and wait, so
  it always finishes.

Locations are locked one by one, never all at once: transactions over
disjoint keys commit in parallel. Appends to a tlist that do not read its
length are resolved at commit, so concurrent appenders do not conflict.

The thread-local "current transaction", the version clock and the I/O guard
are in C (``_core._stm_*``): the guard is an audit hook that refuses I/O a
retry would repeat (opening files for writing, socket connect/bind/sendto,
processes, file-system changes) and ``Transport.send``/``close``/``abort``
refuse too, with :class:`IOInTransactionError`.

One module per concern: ``_tx`` (locations, the transaction, commit),
``_atomic`` (running transactions), ``_containers`` (tvar, tdict, tlist),
``_stats`` and ``_parallel`` (parallel_for).
"""

from __future__ import annotations

from ._atomic import (
                      IOInTransactionError,
                      TransactionError,
                      atomic,
                      in_transaction,
                      refuse_in_transaction,
)
from ._containers import tdict, tlist, tvar
from ._parallel import parallel_for
from ._stats import stm_stats
from ._tx import stm_config

__all__ = [
    "tvar", "tdict", "tlist", "atomic", "parallel_for", "stm_stats", "stm_config",
    "in_transaction", "refuse_in_transaction", "TransactionError", "IOInTransactionError",
]
