"""A data-parallel map over the workers: :func:`map`."""

from __future__ import annotations

import builtins
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .. import _core, _lifecycle, _mainqueue
from ._main import _on_main_thread, _wait_on_main

# map is public (px.map) but served by the package's __getattr__: a star
# import must not shadow the builtin.
__all__ = ["map"]

_T = TypeVar("_T")
_R = TypeVar("_R")

_builtin_map = builtins.map
_builtin_list = builtins.list


class _MapJob:
    """The chunks of one map(): handed out in order to whoever asks (helpers on
    the workers, and a worker that called map() itself), so nobody ever waits
    for a chunk that has not started."""

    def __init__(self, func: Callable[[Any], Any], items: Any, chunksize: int,
                 wake: Callable[[], None] | None) -> None:
        self.func = func
        self.items = items
        self.chunksize = chunksize
        self.nchunks = -(-len(items) // chunksize)
        self.results: _builtin_list[Any] = [None] * self.nchunks
        self.lock = threading.Lock()
        self.next = 0
        self.running = 0
        self.error: BaseException | None = None
        self.error_chunk = self.nchunks
        self.finished = threading.Event()
        self.wake = wake  # tells a waiting main thread that the job finished

    def _take(self) -> int:
        with self.lock:
            if self.error is not None or self.next >= self.nchunks:
                return -1
            i = self.next
            self.next += 1
            self.running += 1
            return i

    def _done(self, i: int, error: BaseException | None) -> None:
        with self.lock:
            self.running -= 1
            if error is not None and i < self.error_chunk:
                # Chunks go out in order, so every chunk before i has started
                # and will finish: the lowest failing chunk holds the first
                # failing item, as the builtin map would report it.
                self.error, self.error_chunk = error, i
            over = self.running == 0 and (self.error is not None or self.next >= self.nchunks)
        if over and not self.finished.is_set():
            self.finished.set()
            if self.wake is not None:
                self.wake()

    def abandon(self, error: BaseException) -> None:
        """The caller gives up: no more chunks are handed out."""
        with self.lock:
            if self.error is None:
                self.error, self.error_chunk = error, -1

    def help(self) -> None:
        """Compute chunks until none is left."""
        func, items, size = self.func, self.items, self.chunksize
        while (i := self._take()) >= 0:
            try:
                self.results[i] = _builtin_list(_builtin_map(func, items[i * size:(i + 1) * size]))
            except BaseException as exc:
                self._done(i, exc)
            else:
                self._done(i, None)

    def outcome(self) -> _builtin_list[Any]:
        if self.error is not None:
            raise self.error
        return _builtin_list(itertools.chain.from_iterable(self.results))


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _noop() -> None:
    pass


_rotor = itertools.count()  # spreads the helpers of successive maps over the workers


def map(func: Callable[[_T], _R], iterable: Iterable[_T], chunksize: int | None = None,
        workers: int | None = None) -> _builtin_list[_R]:
    """``list(map(func, iterable))`` computed in parallel on the worker threads.

    Results come in order; if calls raise, the exception of the first failing
    item (in order) is re-raised here and chunks not yet started are skipped.
    ``chunksize`` items go to a worker at a time (default: about four chunks
    per worker, for balance). ``workers`` caps the worker threads used.

    * From the main thread (or another thread) while the package's engine runs:
      its workers compute; a waiting main thread meanwhile runs main-thread
      calls and re-raises worker exceptions, as ``run_once()`` would.
    * When no engine runs: a temporary engine with no endpoints and
      ``workers`` threads (default: one per usable CPU) computes, and is shut
      down and joined before map() returns: no thread is left behind. Called
      from a thread other than the main one, its functions get RuntimeError if
      they hand a call to the main thread (nobody would run it).
    * From inside a callback on a worker: that worker computes chunks itself,
      the other workers help; it only ever waits for chunks already being
      computed, so map() cannot deadlock on the calling worker.

    An iterable without ``len()`` and slicing is turned into a list first.
    """
    _core._stm_refuse("map()")  # its calls would not belong to the transaction
    items: Any = iterable if isinstance(iterable, (_builtin_list, tuple, range)) \
        else _builtin_list(iterable)
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    if chunksize is not None and chunksize < 1:
        raise ValueError("chunksize must be at least 1")
    if len(items) == 0:
        return []
    here = _core.worker_index()
    eng = _lifecycle._running_engine()
    temporary = eng is None
    on_main = here is None and _on_main_thread()
    if temporary:
        eng = _core.Engine(workers=workers or _usable_cpus(),
                           backend=os.environ.get("PX_BACKEND", "auto"),
                           recv_buffers=1, recv_buffer_size=4096)
        if not on_main:
            _mainqueue._mark_unpumped(eng)  # posting to it fails instead of waiting forever
        eng.start()
    assert eng is not None
    try:
        others = [i for i in range(eng.workers) if i != here]
        helpers = min(len(others), (workers or eng.workers) - (1 if here is not None else 0))
        computing = helpers + (1 if here is not None else 0)
        if chunksize is None:
            chunksize = max(1, -(-len(items) // (max(1, computing) * 4)))
        wake = functools.partial(_core.post_main, eng, _noop) if on_main else None
        job = _MapJob(func, items, chunksize, wake)
        posted = 0
        if helpers > 0:
            start = next(_rotor) % len(others)
            for k in range(min(helpers, job.nchunks)):
                try:
                    _core.submit(eng, job.help, worker=others[(start + k) % len(others)])
                    posted += 1
                except RuntimeError:
                    break  # the engine is shutting down: the others, or we, compute
        if here is not None or posted == 0:
            job.help()  # the calling worker computes too (or alone)
        try:
            if on_main:
                _wait_on_main(eng, job.finished.is_set, None)
            else:
                job.finished.wait()
        except BaseException as exc:  # Ctrl-C, or what a worker raised: stop handing out chunks
            job.abandon(exc)
            raise
        return job.outcome()
    finally:
        if temporary:
            eng.shutdown(0)
            eng.join()
            _mainqueue._engine_finished(eng)

