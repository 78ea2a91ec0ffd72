"""pyparallel.asyncio standalone, like uvloop: a loop of its own whose I/O,
timers and wake-ups are those of a one-worker engine.

The coroutines, callbacks and protocols of the loop run on the engine's
worker thread (one thread, never handed off); the thread that calls
``run_forever``/``run_until_complete`` waits for the worker meanwhile,
handling signals (``add_signal_handler`` handlers are posted to the loop) and
re-raising what escapes the loop (KeyboardInterrupt, SystemExit). Outside of
``run_*`` the loop runs nothing, as asyncio's: what becomes ready meanwhile
waits for the next run.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from asyncio import events, unix_events
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .. import _core
from ._worker import WorkerLoop

_T = TypeVar("_T")


class Loop(WorkerLoop):
    """An asyncio event loop on the engine (made by new_event_loop())."""

    _px_per_worker = False

    def __init__(self) -> None:  # noqa: D107 - the waker comes with the engine
        asyncio.BaseEventLoop.__init__(self)
        self._px_waker: Any = None
        self._px_arm = self._px_arm_any
        self._px_wake = self._px_wake_any
        self._px_soon = False
        # Instance: True only while running. Set by the worker's first pump of
        # a run, never by the thread that calls run_forever: the protocol calls
        # queued while the loop was stopped run in that pump, before any input
        # the worker receives later goes to its protocol directly.
        self._px_direct = False
        self._px_eng: Any = None
        self._px_ident: int | None = None
        self._px_halted = True
        self._px_signals: dict[int, asyncio.Handle] = {}
        self._px_main_runs = False  # the main thread waits in run_forever

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} running={self.is_running()} "
                f"closed={self._closed} debug={self._debug}>")

    def _px_engine(self) -> Any:
        self._px_start()
        return self._px_eng

    def _px_connect_worker(self) -> object:
        return 0

    # ---- the engine behind the loop ----------------------------------------------

    def _px_start(self) -> None:
        if self._px_eng is not None:
            return
        self._check_closed()  # type: ignore[attr-defined]
        eng = _core.Engine(workers=1, handoff_ms=0)
        eng.start()
        self._px_eng = eng
        bound = threading.Event()

        def bind() -> None:
            _core.aio_worker_waker(self._px_adopt)
            self._px_ident = threading.get_ident()
            # The worker's thread is the loop's for good (no hand-off).
            events._set_running_loop(self)
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
                                   finalizer=self._asyncgen_finalizer_hook)  # type: ignore[attr-defined]
            bound.set()

        _core.submit(eng, bind, 0)
        while not bound.is_set():
            eng.wait(0.05)

    def _px_adopt(self, waker: Any) -> Loop:
        self._px_waker = waker
        return self

    def _px_arm_any(self, when: float) -> None:
        if threading.get_ident() == self._px_ident:
            self._px_waker.arm(when)
        elif not self._px_halted:
            self._px_waker.wake()  # running: the worker looks at what is due

    def _px_wake_any(self) -> None:
        if not self._px_halted:
            self._px_waker.wake()
        # else: not running (or no engine yet): run_forever wakes the worker

    def _px_pump(self) -> None:
        if not self._px_direct:
            if self._px_halted:
                self._px_soon = False  # not running: run_forever wakes it
                return
            self._px_direct = True  # the run starts here, on the worker
        super()._px_pump()
        if self._stopping:
            self._stopping = False
            self._px_direct = False
            self._px_halted = True
            _core.post_main(self._px_eng, _nothing)  # wake the waiting thread

    # ---- running -----------------------------------------------------------------

    def run_forever(self) -> None:
        self._check_closed()  # type: ignore[attr-defined]
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")
        self._px_start()
        eng = self._px_eng
        self._px_halted = False
        self._px_main_runs = threading.current_thread() is threading.main_thread()
        self._thread_id = self._px_ident
        self._px_soon = False
        self._px_waker.wake()  # its pump starts the run (_px_direct)
        try:
            while not self._px_halted:
                eng.wait(1.0)
        except BaseException:
            # Raised here (a signal's KeyboardInterrupt) or in the loop: stop it
            # before returning, so that nothing runs outside run_forever.
            if not self._px_halted:
                self.call_soon_threadsafe(self.stop)
                while not self._px_halted:
                    eng.wait(0.1)
            raise
        finally:
            self._thread_id = None
            self._px_main_runs = False

    run_until_complete = asyncio.BaseEventLoop.run_until_complete
    stop = asyncio.BaseEventLoop.stop

    # Pipes and subprocesses: asyncio's own Unix transports, on this loop's
    # add_reader/add_writer (the delegation the standard library allows).
    _unix: Any = unix_events._UnixSelectorEventLoop
    _make_read_pipe_transport = _unix._make_read_pipe_transport
    _make_write_pipe_transport = _unix._make_write_pipe_transport
    _make_subprocess_transport = _unix._make_subprocess_transport
    if hasattr(_unix, "_child_watcher_callback"):
        _child_watcher_callback = _unix._child_watcher_callback
    del _unix

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        for sig in list(self._px_signals):
            self.remove_signal_handler(sig)
        asyncio.BaseEventLoop.close(self)
        self._px_watch_close()
        eng, self._px_eng = self._px_eng, None
        if eng is not None:
            eng.shutdown(1.0)
            eng.join()

    def _px_worker_done(self) -> None:
        self._thread_id = None

    # ---- signals (handlers run on the loop) -----------------------------------------

    def add_signal_handler(  # type: ignore[override]
            self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_closed()  # type: ignore[attr-defined]
        _check_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            raise RuntimeError(f"sig {sig} cannot be caught")
        handle = asyncio.Handle(callback, args, self, None)
        self._px_on_main(lambda: signal.signal(sig, self._px_on_signal))
        self._px_signals[sig] = handle

    def remove_signal_handler(self, sig: int) -> bool:
        _check_signal(sig)
        if self._px_signals.pop(sig, None) is None:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        self._px_on_main(lambda: signal.signal(sig, handler))
        return True

    def _px_on_main(self, fn: Callable[[], object]) -> None:
        """Call fn on the main thread: here, or from the loop's worker while the
        main thread runs the loop (it waits in run_forever)."""
        if threading.current_thread() is threading.main_thread():
            fn()
            return
        if threading.get_ident() != self._px_ident or not self._px_main_runs:
            raise RuntimeError("signal handlers are set in the main thread, or on a "
                               "loop the main thread runs")
        done = threading.Event()
        failure: list[BaseException] = []

        def call() -> None:
            try:
                fn()
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        _core.post_main(self._px_eng, call)
        done.wait()
        if failure:
            raise failure[0]

    def _px_on_signal(self, sig: int, frame: Any) -> None:
        handle = self._px_signals.get(sig)
        if handle is not None and not handle._cancelled:
            self.call_soon_threadsafe(handle._run)


def _check_signal(sig: object) -> None:
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")


def _nothing() -> None:
    """Posted to the waiting thread: its wait returns and it looks again."""


def new_event_loop() -> Loop:
    """A new standalone loop on the engine (the loop_factory of asyncio.Runner,
    and of asyncio.run on Python 3.12+)."""
    return Loop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """For code that asks the policy for its loops: asyncio.set_event_loop_policy(...)."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return Loop()


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """asyncio.run(main) on a standalone loop of the engine."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
