"""Work on the workers, timers, calls to the main thread, and shared state.

Everything here runs on the engine's worker threads (in parallel on
free-threaded CPython, one at a time under a GIL):

* :func:`submit_work` runs a function on a worker and returns a :class:`Work`
  handle (a :class:`concurrent.futures.Future`);
* :func:`timer` calls a function on a worker after a delay, optionally every
  ``period`` seconds;
* :func:`map` is a data-parallel :func:`map` over the workers;
* :func:`call_from_main_thread` and :func:`call_from_main_thread_and_wait`
  hand a call to the main thread, which runs them while it waits in
  :func:`pyparallel.run` or :func:`pyparallel.run_once`;
* :func:`protect`, :func:`read_lock`, :func:`write_lock`, :func:`dict` and
  :func:`list` give shared objects a readers-writer lock.

Exceptions that nobody handles go where a protocol callback's go: they are
re-raised by ``run()`` (or ``run_once()``) in the main thread. Inside an
``atomic()`` transaction, submit_work, timer, map and the main-thread calls
are refused (IOInTransactionError): a retried transaction would repeat them.
"""

from __future__ import annotations

import atexit
import builtins
import concurrent.futures
import functools
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from . import _core

# map, dict and list are public too (px.map, px.dict, px.list) but not listed:
# a star import must not shadow the builtins.
__all__ = [
    "Work", "Timer", "RWLock", "ProtectedDict", "ProtectedList",
    "submit_work", "timer",
    "call_from_main_thread", "call_from_main_thread_and_wait",
    "protect", "unprotect", "protected", "read_lock", "write_lock",
]

T = TypeVar("T")
R = TypeVar("R")

Timer = _core.Timer
RWLock = _core.RWLock

_MAIN_IDENT = threading.main_thread().ident
_builtin_map = builtins.map
_builtin_dict = builtins.dict
_builtin_list = builtins.list


def _px() -> Any:
    """The package module (imported lazily: it imports this module)."""
    return sys.modules[__package__]


def _on_main_thread() -> bool:
    return threading.get_ident() == _MAIN_IDENT


def _running_engine() -> _core.Engine | None:
    """The engine of the calling worker, else the package's engine if its
    workers are running."""
    eng = _core.current_engine()
    if eng is not None:
        return eng
    eng = _px()._engine
    if eng is not None and eng.started and not eng.finished:
        return eng
    return None


def _engine_for_work() -> _core.Engine:
    """Where new work goes: the calling worker's engine, else the package's
    engine, started now if it is not running yet (its servers, if any were
    registered, start serving too)."""
    eng = _core.current_engine()
    if eng is not None:
        return eng
    return _px()._start(None, {})


# ---- the main thread ---------------------------------------------------------

class _MainQueue:
    """Bookkeeping of one engine's main-thread calls that someone waits for, so
    that they fail instead of hanging once nobody will run them."""

    __slots__ = ("lock", "closed", "waiting")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False
        self.waiting: set[_MainCall] = set()


_main_queues: _builtin_dict[int, tuple[_core.Engine, _MainQueue]] = {}
_main_queues_lock = threading.Lock()


def _main_queue(eng: _core.Engine) -> _MainQueue:
    with _main_queues_lock:
        entry = _main_queues.get(id(eng))
        if entry is None or entry[0] is not eng:
            entry = (eng, _MainQueue())
            _main_queues[id(eng)] = entry
        return entry[1]


class _MainCall:
    """One call for the main thread; Engine.wait() calls it there."""

    __slots__ = ("func", "args", "kwargs", "queue", "done", "result", "error")

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: _builtin_dict[str, Any], queue: _MainQueue, wait: bool) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.queue = queue
        self.done: threading.Lock | None = None
        if wait:
            self.done = threading.Lock()
            self.done.acquire()  # released once the call has run (or failed)
        self.result: Any = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        if self.done is None:  # fire and forget: what it raises, run() re-raises
            self.func(*self.args, **self.kwargs)
            return
        with self.queue.lock:
            if self not in self.queue.waiting:
                return  # failed already: the engine was closing
            self.queue.waiting.discard(self)
        try:
            self.result = self.func(*self.args, **self.kwargs)
        except BaseException as exc:  # the caller gets it, whatever it is
            self.error = exc
        finally:
            self.done.release()

    def fail(self, error: BaseException) -> None:
        self.error = error
        assert self.done is not None
        self.done.release()


def _post_main(func: Callable[..., Any], args: tuple[Any, ...],
               kwargs: _builtin_dict[str, Any], wait: bool) -> _MainCall:
    eng = _core.current_engine() or _px()._engine
    if eng is None:
        raise RuntimeError(
            "no engine is running, so the main thread would never run this call: "
            "call it from a callback, or while the main thread is in pyparallel.run()")
    if id(eng) in _unpumped:
        raise RuntimeError(
            "map() was called off the main thread, so the main thread runs no calls for "
            "its workers: its function cannot hand calls to the main thread")
    queue = _main_queue(eng)
    call = _MainCall(func, args, kwargs, queue, wait)
    with queue.lock:
        if queue.closed:
            raise RuntimeError("the engine has shut down: the main thread runs no more calls")
        if wait:
            queue.waiting.add(call)
        try:
            _core.post_main(eng, call)
        except BaseException:
            queue.waiting.discard(call)
            raise
    return call


def _close_main_queue(eng: _core.Engine, forget: bool) -> None:
    """Refuse further calls for eng's main thread and fail those still waiting
    (their callers get RuntimeError). forget: the engine is joined, drop the
    entry (posting to it fails in the binding from now on)."""
    with _main_queues_lock:
        entry = _main_queues.get(id(eng))
        if entry is None or entry[0] is not eng:
            return
        if forget:
            del _main_queues[id(eng)]
    queue = entry[1]
    with queue.lock:
        queue.closed = True
        waiting, queue.waiting = queue.waiting, set()
    for call in waiting:
        call.fail(RuntimeError("the engine shut down before the main thread ran this call"))


def _engine_finished(eng: _core.Engine) -> None:
    """After an engine's workers were joined: run the main-thread calls they
    posted in their last moments, fail the callers still waiting (threads
    that are not workers), re-raise the first exception of those calls."""
    error: BaseException | None = None
    for _ in range(1000):  # each wait() stops at an exception; a bound, never a hang
        try:
            eng.wait(0)
            break
        except BaseException as exc:
            error = error or exc
    _close_main_queue(eng, forget=True)
    if error is not None:
        raise error


def _call_main(func: Callable[..., R], args: tuple[Any, ...],
               kwargs: _builtin_dict[str, Any], wait: bool) -> R | None:
    _core._stm_refuse("call_from_main_thread_and_wait()" if wait else "call_from_main_thread()")
    if _on_main_thread():
        return func(*args, **kwargs)
    call = _post_main(func, args, kwargs, wait)
    if not wait:
        return None
    assert call.done is not None
    call.done.acquire()
    if call.error is not None:
        raise call.error
    return call.result


def _main_thread_decorator(func: Callable[..., R], wait: bool) -> Callable[..., R | None]:
    @functools.wraps(func)
    def on_main_thread(*args: Any, **kwargs: Any) -> R | None:
        return _call_main(func, args, kwargs, wait)
    return on_main_thread


@overload
def call_from_main_thread(func: Callable[..., R], /) -> Callable[..., None]: ...
@overload
def call_from_main_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None: ...


def call_from_main_thread(func: Callable[..., Any], /, *args: Any,
                          **kwargs: Any) -> Callable[..., None] | None:
    """Have the main thread call ``func(*args, **kwargs)``; return at once (None).

    The main thread runs such calls one at a time, in the order they were
    posted, while it waits in :func:`pyparallel.run` or
    :func:`pyparallel.run_once` (map() and Work.result() waiting on the main
    thread run them too). An exception from ``func`` is re-raised there, as
    one from a callback would be. Called on the main thread itself, ``func``
    runs at once, inline, and its exception reaches the caller. From another
    thread when no engine exists, RuntimeError (nothing would ever run it).

    With ``func`` alone it is a decorator: ``@call_from_main_thread`` makes a
    function whose calls are handed to the main thread that way. (So a
    function of no arguments is called as ``call_from_main_thread(f)()``.)
    """
    if not args and not kwargs:
        return _main_thread_decorator(func, wait=False)
    _call_main(func, args, kwargs, wait=False)
    return None


@overload
def call_from_main_thread_and_wait(func: Callable[..., R], /) -> Callable[..., R]: ...
@overload
def call_from_main_thread_and_wait(func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R: ...


def call_from_main_thread_and_wait(func: Callable[..., Any], /, *args: Any,
                                   **kwargs: Any) -> Any:
    """Have the main thread call ``func(*args, **kwargs)`` and wait for it: its
    result is returned, its exception re-raised here.

    The calling thread (typically a worker inside a callback) blocks until the
    main thread, waiting in :func:`pyparallel.run` or
    :func:`pyparallel.run_once`, has run the call; calls run one at a time,
    in the order posted. If the engine shuts down before the call ran, the
    caller gets RuntimeError instead of waiting forever. On the main thread
    itself ``func`` runs inline. From another thread when no engine exists,
    RuntimeError.

    With ``func`` alone it is a decorator: ``@call_from_main_thread_and_wait``
    makes a function whose calls run on the main thread (call a function of
    no arguments as ``call_from_main_thread_and_wait(f)()``).
    """
    if not args and not kwargs:
        return _main_thread_decorator(func, wait=True)
    return _call_main(func, args, kwargs, wait=True)


def _wait_on_main(eng: _core.Engine, done: Callable[[], bool], deadline: float | None) -> None:
    """On the main thread: until done() or the deadline, run the main-thread
    calls of eng (whose workers may be waiting for them) and re-raise what its
    workers raised, as run_once() would."""
    while not done():
        step = 0.05
        if deadline is not None:
            step = min(step, deadline - time.monotonic())
            if step <= 0:
                return
        eng.wait(step)


@atexit.register
def _close_at_exit() -> None:
    # Registered after the package's own exit hook, so it runs before it: the
    # workers it joins must not be waiting for a main thread that has left.
    with _main_queues_lock:
        engines = [eng for eng, _ in _main_queues.values()]
    for eng in engines:
        _close_main_queue(eng, forget=False)


# ---- work --------------------------------------------------------------------

class Work(concurrent.futures.Future):  # type: ignore[type-arg]
    """The handle of :func:`submit_work`: a :class:`concurrent.futures.Future`
    that is done once the function *and* its callback or errback have run.

    ``result()`` / ``exception()`` called on a worker before the work has
    started run it right there (the worker would otherwise wait for itself);
    on the main thread they run main-thread calls while they wait. ``cancel()``
    succeeds until the work starts.
    """

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...],
                 kwds: _builtin_dict[str, Any], callback: Callable[[Any], Any] | None,
                 errback: Callable[[BaseException], Any] | None) -> None:
        super().__init__()
        self._func = func
        self._args = args
        self._kwds = kwds
        self._callback = callback
        self._errback = errback
        self._claim_lock = threading.Lock()
        self._claimed = False
        self._engine: _core.Engine | None = None
        self.worker: int | None = None  #: the worker it was given to

    def _claim(self) -> bool:
        with self._claim_lock:
            if self._claimed:
                return False
            self._claimed = True
        return self.set_running_or_notify_cancel()

    def cancel(self) -> bool:
        with self._claim_lock:
            if self._claimed:
                return self.cancelled()
            self._claimed = True
        return super().cancel()

    def _execute(self, report: bool) -> None:
        """Run func, then its callback or errback; report: an exception nobody
        handled propagates (to the worker, which hands it to run())."""
        func, args, kwds = self._func, self._args, self._kwds
        self._func = self._args = self._kwds = None  # type: ignore[assignment]
        try:
            result = func(*args, **kwds)
        except BaseException as exc:
            try:
                if self._errback is not None:
                    self._errback(exc)
                elif report:
                    raise
            finally:
                self.set_exception(exc)
        else:
            try:
                if self._callback is not None:
                    self._callback(result)
            finally:
                self.set_result(result)

    def _run(self) -> None:
        """On the worker, from the posted message."""
        if self._claim():
            self._execute(report=True)

    def _wait_here(self, timeout: float | None) -> None:
        if self.done():
            return
        if _core.worker_index() is not None:
            if self._claim():
                self._execute(report=False)  # the caller sees the outcome
            return
        if _on_main_thread() and self._engine is not None and not self._engine.finished:
            deadline = None if timeout is None else time.monotonic() + timeout
            _wait_on_main(self._engine, self.done, deadline)

    def result(self, timeout: float | None = None) -> Any:
        """func's result (re-raising its exception), waiting for it if needed."""
        self._wait_here(timeout)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """func's exception, or None, waiting for it if needed."""
        self._wait_here(timeout)
        return super().exception(timeout)


def submit_work(func: Callable[..., Any], args: tuple[Any, ...] = (),
                kwds: _builtin_dict[str, Any] | None = None,
                callback: Callable[[Any], Any] | None = None,
                errback: Callable[[BaseException], Any] | None = None) -> Work:
    """Run ``func(*args, **kwds)`` on a worker thread (the least loaded one).

    Then, on the same worker, ``callback(result)``, or ``errback(exception)``
    if func raised. An exception with no errback to take it, and any exception
    raised by the callback or errback, is re-raised by :func:`pyparallel.run`
    in the main thread. Returns a :class:`Work` (a Future) holding func's
    outcome.

    Called from a worker, the work goes to that worker's engine. Otherwise it
    goes to the package's engine, which starts now if it is not running;
    ``run()`` then serves until no work (and no timer) is left, or longer if
    servers are registered.
    """
    _core._stm_refuse("submit_work()")  # a retried transaction would submit it again
    work = Work(func, tuple(args), _builtin_dict(kwds or {}), callback, errback)
    eng = _engine_for_work()
    work._engine = eng
    work.worker = _core.submit(eng, work._run)
    return work


def timer(delay: float, func: Callable[[], Any], period: float | None = None) -> _core.Timer:
    """Call ``func()`` on a worker after ``delay`` seconds, then every
    ``period`` seconds if a period is given, until ``cancel()``.

    Returns a :class:`Timer` (``cancel()``, ``active``, ``fired``, ``worker``).
    Made on a worker, the timer runs on that worker; otherwise on the least
    loaded worker of the package's engine, which starts now if needed. Calls
    never come early (millisecond resolution); a periodic timer keeps a fixed
    rate and, after a stall, makes one catch-up call. An exception from func
    is re-raised by ``run()`` in the main thread; a periodic timer keeps
    running after one. Timers still armed when the engine shuts down are
    dropped.
    """
    _core._stm_refuse("timer()")
    eng = _engine_for_work()
    return _core.Timer(eng, float(delay), func, period)


# ---- map -----------------------------------------------------------------------

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


def map(func: Callable[[T], R], iterable: Iterable[T], chunksize: int | None = None,
        workers: int | None = None) -> _builtin_list[R]:
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
    eng = _running_engine()
    temporary = eng is None
    on_main = here is None and _on_main_thread()
    if temporary:
        eng = _core.Engine(workers=workers or _usable_cpus(),
                           backend=os.environ.get("PX_BACKEND", "auto"),
                           recv_buffers=1, recv_buffer_size=4096)
        if not on_main:
            _unpumped.add(id(eng))
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
            _unpumped.discard(id(eng))
            _engine_finished(eng)


_rotor = itertools.count()
# Temporary engines of map() calls made off the main thread: nobody runs their
# main-thread calls, so posting one fails at once instead of waiting forever.
_unpumped: set[int] = set()


# ---- shared state ----------------------------------------------------------------

class _Entry:
    """The lock of a protect()ed object, and how the side table refers to it:
    weakly when the object allows it (the entry goes when the object does),
    else strongly (the object lives until unprotect())."""

    __slots__ = ("lock", "ref", "strong")

    def __init__(self, lock: RWLock, ref: weakref.ref[Any] | None, strong: Any) -> None:
        self.lock = lock
        self.ref = ref
        self.strong = strong

    def target(self) -> Any:
        return self.ref() if self.ref is not None else self.strong


_protected: _builtin_dict[int, _Entry] = {}
_protected_lock = threading.Lock()


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _protected_lock:
        entry = _protected.get(key)
        if entry is not None and entry.ref is ref:
            del _protected[key]


def _lock_of(obj: Any) -> RWLock | None:
    cls = type(obj)
    if cls is ProtectedDict or cls is ProtectedList:
        return obj._px_lock
    entry = _protected.get(id(obj))
    if entry is not None:
        ref = entry.ref
        if (ref() if ref is not None else entry.strong) is obj:
            return entry.lock
    if isinstance(obj, (ProtectedDict, ProtectedList)):  # subclasses of them
        return obj._px_lock
    return None


def protect(obj: T) -> T:
    """Give obj a readers-writer lock for :func:`read_lock` / :func:`write_lock`;
    returns obj. Idempotent.

    The lock lives in a side table keyed by the object's identity: objects
    that support weak references leave it when they die; others (a builtin
    dict, list, ...) are kept alive by it until :func:`unprotect`. Plain
    objects are not locked automatically: code that shares them takes
    ``read_lock``/``write_lock`` around its accesses. (:func:`dict` and
    :func:`list` make containers that lock every operation themselves.)
    """
    if isinstance(obj, (ProtectedDict, ProtectedList)):
        return obj
    key = id(obj)
    with _protected_lock:
        entry = _protected.get(key)
        if entry is not None and entry.target() is obj:
            return obj
        try:
            ref: weakref.ref[Any] | None = weakref.ref(obj, functools.partial(_forget, key))
            strong = None
        except TypeError:
            ref, strong = None, obj
        _protected[key] = _Entry(RWLock(), ref, strong)
    return obj


def unprotect(obj: T) -> T:
    """Remove what :func:`protect` added; returns obj. Holders of its lock keep
    it until they release it. :func:`dict` and :func:`list` objects are
    protected for life (ValueError)."""
    if isinstance(obj, (ProtectedDict, ProtectedList)):
        raise ValueError(f"a pyparallel.{type(obj).__name__} is always protected; "
                         "copy it into a plain container instead")
    with _protected_lock:
        entry = _protected.get(id(obj))
        if entry is not None and entry.target() is obj:
            del _protected[id(obj)]
    return obj


def protected(obj: Any) -> bool:
    """True when obj has a lock from :func:`protect`, :func:`dict` or :func:`list`."""
    return _lock_of(obj) is not None


def _lock_or_raise(obj: Any) -> RWLock:
    if isinstance(obj, RWLock):
        return obj
    lock = _lock_of(obj)
    if lock is None:
        raise ValueError(f"this {type(obj).__name__} object is not protected: "
                         "call pyparallel.protect() on it first")
    return lock


def read_lock(obj: Any) -> Any:
    """Context manager holding obj's lock for reading: readers run in parallel,
    writers wait (and a waiting writer holds back new readers).

    Re-entrant: a thread that holds obj's read or write lock may take the read
    lock again. ValueError if obj is not protected."""
    cls = type(obj)
    if cls is ProtectedDict or cls is ProtectedList:
        return obj._px_r
    return _lock_or_raise(obj).reader


def write_lock(obj: Any) -> Any:
    """Context manager holding obj's lock for writing: alone, no reader inside.

    Re-entrant for the writer; a thread holding only the read lock gets
    RuntimeError (the upgrade would wait for itself: release the read lock,
    then take the write lock). ValueError if obj is not protected."""
    cls = type(obj)
    if cls is ProtectedDict or cls is ProtectedList:
        return obj._px_w
    return _lock_or_raise(obj).writer


def _dict_copy(d: Any) -> _builtin_dict[Any, Any]:
    """A plain dict of d's items, read with dict's own iteration (dict.copy of
    a subclass would go through the overridden methods)."""
    return _builtin_dict(_builtin_dict.items(d))


def _snapshot(obj: Any) -> Any:
    """A plain copy of a protected container taken under its read lock (so that
    code already holding one lock never waits for another); obj otherwise."""
    if isinstance(obj, ProtectedDict):
        with obj._px_r:
            return _dict_copy(obj)
    if isinstance(obj, ProtectedList):
        with obj._px_r:
            return _builtin_list.copy(obj)
    return obj


def _locked(base: type, name: str, write: bool) -> Callable[..., Any]:
    method = getattr(base, name)
    if write:
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._px_w:
                return method(self, *args, **kwargs)
    else:
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            with self._px_r:
                return method(self, *args, **kwargs)
    locked.__name__ = name
    locked.__qualname__ = f"Protected{base.__name__.capitalize()}.{name}"
    locked.__doc__ = method.__doc__
    return locked


def _with_other(base: type, name: str, write: bool) -> Callable[..., Any]:
    """A binary operation: the other operand is snapshotted first."""
    method = getattr(base, name)

    def locked(self: Any, other: Any) -> Any:
        other = _snapshot(other)
        with (self._px_w if write else self._px_r):
            result = method(self, other)
        return self if result is self else result
    locked.__name__ = name
    locked.__doc__ = method.__doc__
    return locked


class ProtectedDict(_core.LockedDict):  # type: ignore[misc]
    """A dict whose every operation takes its own readers-writer lock (reads
    shared, writes exclusive), made by :func:`pyparallel.dict`.

    Item access and assignment, ``in``, ``len``, ``get`` and iteration are
    locked in C (the base class); the other methods here. Iteration and the
    views (keys/values/items) work on a snapshot taken under the read lock, so
    another thread's writes never break a loop. ``with read_lock(d)`` / ``with
    write_lock(d)`` make several operations one. C code that uses the dict API
    directly (a JSON encoder, say) bypasses the lock.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            self.update(*args, **kwargs)

    def __reversed__(self) -> Any:
        with self._px_r:
            return iter(_builtin_list(_builtin_dict.keys(self))[::-1])

    def keys(self) -> Any:  # type: ignore[override]
        with self._px_r:
            return _dict_copy(self).keys()

    def values(self) -> Any:  # type: ignore[override]
        with self._px_r:
            return _dict_copy(self).values()

    def items(self) -> Any:  # type: ignore[override]
        with self._px_r:
            return _dict_copy(self).items()

    def copy(self) -> ProtectedDict:
        """A new protected dict with the same items."""
        return ProtectedDict(self.copy_plain())

    def copy_plain(self) -> _builtin_dict[Any, Any]:
        """A plain dict with the same items, taken under the read lock."""
        with self._px_r:
            return _dict_copy(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        src = tuple(_snapshot(a) for a in args)
        with self._px_w:
            _builtin_dict.update(self, *src, **kwargs)

    def __reduce__(self) -> Any:
        return (ProtectedDict, (self.copy_plain(),))

    def __repr__(self) -> str:
        with self._px_r:
            return f"pyparallel.dict({_builtin_dict.__repr__(self)})"

    __hash__ = None  # type: ignore[assignment]
    setdefault = _locked(_builtin_dict, "setdefault", True)
    pop = _locked(_builtin_dict, "pop", True)
    popitem = _locked(_builtin_dict, "popitem", True)
    clear = _locked(_builtin_dict, "clear", True)
    __eq__ = _with_other(_builtin_dict, "__eq__", False)  # type: ignore[assignment]
    __ne__ = _with_other(_builtin_dict, "__ne__", False)  # type: ignore[assignment]
    __or__ = _with_other(_builtin_dict, "__or__", False)
    __ror__ = _with_other(_builtin_dict, "__ror__", False)
    __ior__ = _with_other(_builtin_dict, "__ior__", True)  # type: ignore[assignment]


class ProtectedList(_core.LockedList):  # type: ignore[misc]
    """A list whose every operation takes its own readers-writer lock (reads
    shared, writes exclusive), made by :func:`pyparallel.list`.

    Item access and assignment, ``in``, ``len``, ``append`` and iteration are
    locked in C (the base class); the other methods here. Iteration works on a
    snapshot taken under the read lock. ``with read_lock(l)`` / ``with
    write_lock(l)`` make several operations one.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, iterable: Iterable[Any] = ()) -> None:
        self.extend(iterable)

    def __setitem__(self, index: Any, value: Any) -> None:
        value = _snapshot(value)  # a protected list assigned to a slice
        with self._px_w:
            _builtin_list.__setitem__(self, index, value)

    def __reversed__(self) -> Any:
        with self._px_r:
            return iter(_builtin_list.copy(self)[::-1])

    def extend(self, iterable: Iterable[Any]) -> None:
        src = _snapshot(iterable)
        if not isinstance(src, (_builtin_list, tuple)):
            src = _builtin_list(src)  # consume a generator outside the lock
        with self._px_w:
            _builtin_list.extend(self, src)

    def __iadd__(self, iterable: Iterable[Any]) -> ProtectedList:  # type: ignore[override,misc]
        self.extend(iterable)
        return self

    def copy(self) -> ProtectedList:
        """A new protected list with the same items."""
        return ProtectedList(self.copy_plain())

    def copy_plain(self) -> _builtin_list[Any]:
        """A plain list with the same items, taken under the read lock."""
        with self._px_r:
            return _builtin_list.copy(self)

    def sort(self, *, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> None:
        """Sort in place under the write lock (a key function must not use this list)."""
        with self._px_w:
            _builtin_list.sort(self, key=key, reverse=reverse)

    def __reduce__(self) -> Any:
        return (ProtectedList, (self.copy_plain(),))

    def __repr__(self) -> str:
        with self._px_r:
            return f"pyparallel.list({_builtin_list.__repr__(self)})"

    __hash__ = None  # type: ignore[assignment]
    insert = _locked(_builtin_list, "insert", True)
    pop = _locked(_builtin_list, "pop", True)
    remove = _locked(_builtin_list, "remove", True)
    clear = _locked(_builtin_list, "clear", True)
    reverse = _locked(_builtin_list, "reverse", True)
    index = _locked(_builtin_list, "index", False)
    count = _locked(_builtin_list, "count", False)
    __imul__ = _locked(_builtin_list, "__imul__", True)
    __mul__ = _locked(_builtin_list, "__mul__", False)
    __rmul__ = _locked(_builtin_list, "__rmul__", False)
    __add__ = _with_other(_builtin_list, "__add__", False)
    __eq__ = _with_other(_builtin_list, "__eq__", False)  # type: ignore[assignment]
    __ne__ = _with_other(_builtin_list, "__ne__", False)  # type: ignore[assignment]
    __lt__ = _with_other(_builtin_list, "__lt__", False)
    __le__ = _with_other(_builtin_list, "__le__", False)
    __gt__ = _with_other(_builtin_list, "__gt__", False)
    __ge__ = _with_other(_builtin_list, "__ge__", False)


def dict(*args: Any, **kwargs: Any) -> ProtectedDict:
    """A protected dict (:class:`ProtectedDict`): arguments as for ``dict()``."""
    return ProtectedDict(*args, **kwargs)


def list(iterable: Iterable[Any] = ()) -> ProtectedList:
    """A protected list (:class:`ProtectedList`): arguments as for ``list()``."""
    return ProtectedList(iterable)
