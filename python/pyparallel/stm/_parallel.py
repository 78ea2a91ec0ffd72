"""Parallel loops of transactions: :func:`parallel_for`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .. import _core
from ..runtime._map import map as _parallel_map

__all__ = ["parallel_for"]

_T = TypeVar("_T")


def _iteration(func: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    """One iteration as a transaction: (True, result) or (False, exception), so
    that one failing iteration does not stop the others."""
    try:
        return True, _core.atomic(func, item)
    except Exception as exc:
        return False, exc


def parallel_for(iterable: Iterable[_T], func: Callable[[_T], Any],
                 chunksize: int | None = None) -> list[Any]:
    """Run ``atomic(func, item)`` for every item, in parallel; the results in
    input order.

    The iterations appear to run one at a time in some order (each is one
    transaction). An exception from an iteration is raised after all of them
    have ended; the other iterations' effects stay committed."""
    if _core.in_transaction():
        raise _core.TransactionError("parallel_for() inside a transaction")
    items = list(iterable)
    outcomes = _parallel_map(functools.partial(_iteration, func), items, chunksize=chunksize)
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]
