"""The package's engine and its life: endpoints, registration, serving, shutdown.

One engine per process, created on first use (:func:`engine`) and started by
:func:`run`, :func:`run_once` or the first work submitted; :func:`server` and
:func:`client` make endpoints that :func:`register` attaches, at once when the
engine serves, else when it starts. SIGINT and SIGTERM shut it down gracefully.
Once it has finished (its last main-thread calls run, the callers still
waiting for one failed), the next use makes a new engine.

A protocol class may attach its servers itself: when it has a classmethod
``__px_listen__(engine, host, port, fd)``, registering it with a server calls
that instead of ``engine.listen(host, port, protocol, fd)`` (the HTTP layer
does so). The engine owns ``fd`` once that returns; if it raises, the
lifecycle closes fd.
"""

from __future__ import annotations

import atexit
import errno
import gc
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from . import _core, _mainqueue, _restart
from . import sharing as _sharing

__all__ = [
    "Server", "Client", "server", "client", "register", "engine", "run", "run_once",
    "shutdown", "transport", "gil_enabled",
]

_lock = threading.RLock()
_engine: _core.Engine | None = None
_pending: list[tuple[Any, Any]] = []  # registrations waiting for the engine
_gil_warned = False
_last_engine: _core.Engine | None = None
_stop_requested = False   # SIGTERM/SIGINT before the engine ran
_shutdown_timeout = 5.0
_drain_grace: float | None = None  # run(drain_grace=); None: PX_DRAIN_GRACE or none
_stop_at: float | None = None  # SIGTERM/SIGINT in its drain grace: shut down then
_serving = False  # a server is registered: run() lasts until shutdown
_saved_handlers: dict[int, Any] = {}
# Called with an engine once it has finished (see _on_engine_finished).
_finish_hooks: list[Callable[[_core.Engine], None]] = []


def gil_enabled() -> bool:
    """True when this interpreter runs Python code under the GIL."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


class Server:
    """A listening endpoint, returned by :func:`server`.

    The socket listens at once (so ``port=0`` reports the port it got, a port in
    use fails here, and clients that connect before serving starts wait in its
    backlog); when serving starts it becomes the first worker's listener and the
    other workers join the port with listeners of their own.
    """

    def __init__(self, host: str, port: int, reuse_port: bool = False) -> None:
        self.host = host
        self.protocol: Any = None
        self._reservation: socket.socket | None
        self.port: int
        inherited = _restart.claim(host, port)
        if inherited is not None:  # handed to this process: serve it, bind nothing
            sock = socket.socket(fileno=os.dup(inherited[0]))
            sock.setblocking(False)
            self._reservation = sock
            self.port = sock.getsockname()[1]
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._reservation = socket.socket(family, socket.SOCK_STREAM)
        sock = self._reservation
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                sock.bind((host, port))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                raise OSError(e.errno, f"{host}:{port} is already in use" + (
                    "" if reuse_port else
                    " (server(..., reuse_port=True) shares it with the other listener)")) from e
            sock.listen(4096)
            # Only now, so that nobody else joined the port before: the
            # engine's other workers join it with SO_REUSEPORT sockets.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]

    def _take_fd(self) -> int:
        """A duplicate of the listening socket for the engine, which owns it."""
        if self._reservation is None:
            raise RuntimeError(f"{self!r} is already being served")
        return os.dup(self._reservation.fileno())

    def _release(self) -> None:
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None

    def __repr__(self) -> str:
        return f"<Server {self.host}:{self.port}>"


class Client:
    """An outgoing connection, returned by :func:`client`; it connects when
    registered (at once when the engine serves, else when it starts)."""

    def __init__(self, host: str, port: int, timeout: float | None = None,
                 attempt_delay: float | None = None, worker: str | int = "any") -> None:
        if worker not in ("any", "caller") and not isinstance(worker, int):
            raise ValueError("worker must be 'any', 'caller' or a worker index")
        if worker == "caller" and _core.current_engine() is None:
            raise ValueError("worker='caller' needs a caller on a worker (a protocol, work "
                             "or timer callback)")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.attempt_delay = attempt_delay
        self.worker = worker
        self.protocol: Any = None

    def __repr__(self) -> str:
        return f"<Client {self.host}:{self.port}>"


def server(host: str, port: int, reuse_port: bool = False) -> Server:
    """A listening endpoint on host:port; attach a protocol with :func:`register`.

    A port that another socket holds (another process's server) is an
    ``OSError`` (``EADDRINUSE``) naming the address; with ``reuse_port=True``
    the port is shared instead (``SO_REUSEPORT``: the kernel splits new
    connections between this process and the others that share it, as for
    a zero-downtime restart).

    From here on SIGTERM means a graceful shutdown (clients may already be
    connecting); SIGINT does too once :func:`run` serves."""
    s = Server(host, port, reuse_port)
    _install_signal_handlers((signal.SIGTERM,))
    return s


def client(host: str, port: int, protocol: Any = None, *, timeout: float | None = 30.0,
           attempt_delay: float | None = 0.25, worker: str | int = "any",
           share: bool = True) -> Client:
    """An outgoing connection to host:port. With ``protocol`` (a class, or a
    callable returning a protocol instance) it is registered at once
    (:func:`register`); without, register it later.

    Nothing here blocks, so callbacks may call it: a name is looked up on the
    engine's resolver threads, never on a worker. Every address of the name
    is tried (RFC 8305 "Happy Eyeballs": IPv6 and IPv4 interleaved, the first
    family as the lookup gave it, the next attempt ``attempt_delay`` seconds
    after the last while that one is pending, at once when it fails); the
    first to connect wins and ``connection_made`` runs on it, the others are
    cancelled. ``timeout``: seconds for the whole connect, all addresses
    (None: the engine's default, 30 s, as Go's and h2o's dialers).

    ``worker``: where the connection's callbacks run: ``"any"`` (the
    engine's choice, round robin), ``"caller"`` (the calling callback's own
    worker, so that both ends of a proxy share it; only from a callback), or
    a worker index.

    A connection that never comes to be is reported, never raised here: as
    ``socket.gaierror`` (the name), ``ConnectionRefusedError``,
    ``TimeoutError``, or an ``OSError`` listing each address's error when
    they differ, passed to the protocol's ``connection_failed(exc)`` (on an
    instance made for it), else its ``exception_handler(None, "connect",
    exc_info)``, else raised by :func:`run` in the main thread.
    """
    c = Client(host, port, timeout, attempt_delay, worker)
    if protocol is not None:
        register(c, protocol, share=share)
    return c


def _attach(eng: _core.Engine, endpoint: Server | Client, protocol: Any) -> None:
    if not isinstance(endpoint, Server):
        eng.connect(endpoint.host, endpoint.port, protocol, timeout=endpoint.timeout,
                    attempt_delay=endpoint.attempt_delay, worker=endpoint.worker)
        return
    listen = getattr(protocol, "__px_listen__", None) if isinstance(protocol, type) else None
    fd = endpoint._take_fd()
    try:
        if listen is not None:
            listen(eng, endpoint.host, endpoint.port, fd)
        else:
            eng.listen(endpoint.host, endpoint.port, protocol, fd)
    except BaseException:
        os.close(fd)
        raise
    endpoint._release()


def _server_started(endpoint: Server | Client, protocol: Any) -> None:
    """PyParallel's server_started(server): once a server's workers serve it,
    in the thread that started serving or registered it; what it raises
    propagates there. A class's is called on an instance made for the call; a
    factory's own ``server_started`` is called (the factory is not: it makes
    one instance per connection, no more). Called outside the package's
    lock: it may call anything of the package."""
    if not isinstance(endpoint, Server):
        return
    if isinstance(protocol, type):
        if getattr(protocol, "server_started", None) is not None:
            protocol().server_started(endpoint)
    elif getattr(protocol, "server_started", None) is not None:
        protocol.server_started(endpoint)


def register(transport: Server | Client, protocol: Any, share: bool = True) -> Server | Client:
    """Attach a protocol to a server or client: a class (one instance per
    connection), or a callable returning a protocol instance (a factory,
    called once per connection; a class is anything that is a type).

    With ``share`` (the default) the class, its methods and what their code
    reads are shared (:func:`pyparallel.share`) when the engine is not serving
    yet; registered while it serves, nothing is shared (workers may be reading
    those objects)."""
    if not isinstance(transport, (Server, Client)):
        raise TypeError("register() needs a transport from server() or client()")
    if not callable(protocol):
        raise TypeError("protocol must be a class (or a callable returning a protocol instance)")
    _core._stm_refuse("register()")  # a retried transaction would register it again
    transport.protocol = protocol
    current = _core.current_engine()
    if isinstance(transport, Client) and current is not None:
        _attach(current, transport, protocol)  # from a callback: its engine serves
        return transport
    global _serving
    with _lock:
        if share and not (_engine is not None and _engine.started):
            _sharing._share_protocol(protocol)
        if isinstance(transport, Server):
            _serving = True
        serving_now = _engine is not None and _engine.started and not _engine.finished
        if serving_now:
            assert _engine is not None
            _attach(_engine, transport, protocol)
        else:
            _pending.append((transport, protocol))
    if serving_now:
        _server_started(transport, protocol)
    return transport


def _default_workers(workers: int | None) -> int:
    if workers is not None:
        return int(workers)
    env = os.environ.get("PX_WORKERS")
    return int(env) if env else 0


def engine(workers: int | None = None, **options: Any) -> _core.Engine:
    """The process's engine, created (not started) on first use.

    ``workers`` (or ``PX_WORKERS``) sets the worker count, one per usable CPU by
    default; ``PX_BACKEND=uring|epoll`` picks the I/O backend. ``handoff_ms``
    (default 2, 0: never) is how long a callback may block its worker while
    other work waits before a spare thread takes the worker over;
    ``handoff_threads`` (default 1024) caps those spare threads.
    ``pool_idle_ms`` (default 10000, 0: never) is how long memory the engine
    reserved for a load (pool slabs, io_uring receive buffers) may stay unused
    before it goes back to the system.
    """
    global _engine
    with _lock:
        if _engine is None:
            options.setdefault("backend", os.environ.get("PX_BACKEND", "auto"))
            _engine = _core.Engine(workers=_default_workers(workers), **options)
        return _engine


def _start(workers: int | None, options: dict[str, Any]) -> _core.Engine:
    global _gil_warned
    eng = engine(workers, **options)
    started: list[tuple[Any, Any]] = []
    with _lock:
        if not eng.started:
            if gil_enabled() and not _gil_warned:
                _gil_warned = True
                warnings.warn(
                    "pyparallel: this interpreter has a GIL; protocol callbacks run "
                    "one at a time (use a free-threaded build to run them in parallel)",
                    RuntimeWarning, stacklevel=3)
            pending, _pending[:] = list(_pending), []
            for endpoint, protocol in pending:
                _attach(eng, endpoint, protocol)
            eng.start()
            started = pending
    for endpoint, protocol in started:
        _server_started(endpoint, protocol)
    return eng


def run(workers: int | None = None, shutdown_timeout: float = 5.0, share_main: bool = False,
        raise_errors: bool = False, pid_file: str | None = None,
        drain_grace: float | None = None, **options: Any) -> None:
    """Serve until :func:`shutdown`, SIGINT or SIGTERM (graceful: in-flight
    callbacks and sends finish within ``shutdown_timeout``), or, with no server
    registered, until the clients have all closed and no work, timer or
    main-thread call is left.

    An exception raised in a connection's callback (``connection_made``,
    ``data_received``, ``lines_received``, ``send_complete``,
    ``connection_lost``, ``initial_bytes_to_send``/``next_bytes_to_send``) goes
    to the protocol's ``exception_handler`` when it has one. What no handler
    takes, and what a handler raises, is logged with its traceback on stderr
    and counted (``unhandled_errors``), and that connection is closed: one
    peer's input cannot stop the server. With ``raise_errors=True`` it is
    re-raised here instead, in the main thread; the servers keep running, and
    calling ``run()`` again carries on.

    The program's own work is not a peer's input: an exception of submitted
    work without an errback, of a timer, of a fire-and-forget main-thread call
    or a failed outbound connect is always re-raised here.

    ``share_main``: before serving starts, share what ``__main__``'s globals
    hold (:func:`pyparallel.sharing.share_main`).

    In production (see docs/deploy.md): listening sockets handed to the
    process (``LISTEN_FDS``) are served instead of binding; once serving, the
    process tells the service manager (``NOTIFY_SOCKET``) it is ready and
    writes ``pid_file`` (default: ``PX_PID_FILE``) atomically; SIGHUP restarts
    it with no connection lost (a new process with the same command line takes
    the sockets over; this one drains and returns from ``run()`` once the new
    one is ready, or serves on when it fails to start).

    ``drain_grace`` (seconds; default ``PX_DRAIN_GRACE``, else 0 for a stop
    and 1 for a restart): on SIGTERM or SIGINT the process first serves on,
    still accepting, for that long while an HTTP health endpoint answers 503
    "draining" and every answer says ``Connection: close``, so a load
    balancer takes it out before connections are refused; then it stops as
    above. A second signal stops it at once. A restart's old process serves
    its open connections that long.
    """
    global _shutdown_timeout, _drain_grace
    _shutdown_timeout = shutdown_timeout
    _drain_grace = drain_grace
    if share_main and not (_engine is not None and _engine.started):
        _sharing.share_main()
    # The handlers stay while the engine runs, also when an exception from a
    # callback leaves run(): a signal before run() is called again still shuts
    # down gracefully.
    _install_signal_handlers((signal.SIGINT, signal.SIGTERM))
    _install_signal_handlers((signal.SIGHUP,), _on_sighup)
    _restart.set_pid_file(pid_file)
    # Set before the engine starts: a client already in the listen backlog may
    # reach a callback the moment it does.
    engine(workers, **options).raise_errors = raise_errors
    eng = _start(workers, options)
    if _stop_requested:  # a signal came before the engine ran
        eng.shutdown(shutdown_timeout)
    elif _serving:
        _restart.ready()
    gc.freeze()  # collections during serving walk only what requests create
    while True:
        # Without servers, run() ends when the work does: look more often.
        if eng.wait(0.25 if _serving else 0.05):
            break
        if _stop_at is not None and time.monotonic() >= _stop_at:
            eng.shutdown(shutdown_timeout)  # the drain grace is over
        # Work pending off the workers (submit_wait, submit_io) holds a task
        # until it was handed to a worker: one counter, never 0 in between.
        if not _serving and eng.tasks == 0 and eng.clients == 0:
            eng.shutdown(shutdown_timeout)
    eng.join()
    _finish(eng)


def run_once(timeout: float = 0.0, raise_errors: bool = False) -> bool:
    """One pass of the main loop (for an interactive console): start serving if
    needed, run main-thread work, re-raise worker exceptions (``raise_errors``
    as for :func:`run`). True once finished."""
    eng = _start(None, {})
    eng.raise_errors = raise_errors
    done = eng.wait(timeout)
    if done:
        eng.join()
        _finish(eng)
    return bool(done)


def _finish(eng: _core.Engine) -> None:
    global _engine, _serving, _last_engine, _stop_requested, _stop_at
    with _lock:
        if _engine is eng:
            _engine = None
            _serving = False
            _stop_requested = False
            _stop_at = None
        _last_engine = eng  # px.stats() still reports its final counters
    _restore_signal_handlers()
    _restart.remove_pid_file()
    gc.unfreeze()
    for hook in list(_finish_hooks):
        hook(eng)
    _mainqueue._engine_finished(eng)  # last main-thread calls; fail callers still waiting


def shutdown(timeout: float = 5.0) -> None:
    """Stop accepting, let in-flight callbacks and sends finish, close the
    connections, and make :func:`run` return. Callable from any thread."""
    eng = _engine
    if eng is not None:
        eng.shutdown(timeout)


def transport() -> _core.Transport | None:
    """The transport of the protocol callback running on this thread."""
    return _core.current_transport()


def _on_signal(signum: int, frame: Any) -> None:
    global _stop_requested, _stop_at
    eng = _engine
    if _restart.stopping():
        return  # a new process took over: the drain under way stops this one
    if eng is not None and eng.started:
        grace = _restart.drain_grace(_drain_grace) or 0.0
        if grace > 0 and _stop_at is None and not eng.finished:
            # Serve on while the health check says draining: the balancer
            # takes this process out before its connections are refused.
            _restart.log(f"{signal.Signals(signum).name}: draining for {grace:g} s, "
                         "then stopping")
            eng.announce_stop()
            _stop_at = time.monotonic() + grace
            return
        eng.shutdown(_shutdown_timeout)  # no grace, or a second signal: now
    else:
        _stop_requested = True  # run() stops at once when it gets there


def _on_sighup(signum: int, frame: Any) -> None:
    eng = _engine
    if eng is not None and eng.started and not eng.finished and _stop_at is None:
        _restart.restart(eng, _shutdown_timeout, _drain_grace)


def _install_signal_handlers(signals: tuple[int, ...],
                             handler: Callable[[int, Any], None] = _on_signal) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in signals:
        if sig not in _saved_handlers:
            _saved_handlers[sig] = signal.signal(sig, handler)


def _restore_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    while _saved_handlers:
        sig, handler = _saved_handlers.popitem()
        signal.signal(sig, handler)


@atexit.register
def _stop_at_exit() -> None:
    # Workers must not outlive the interpreter: they hold thread states. The
    # ones waiting for a main-thread call fail first: the main thread has left.
    _mainqueue._close_all()
    eng = _engine
    if eng is not None and eng.started:
        eng.shutdown(0)
        eng.join()


def _caller_engine() -> _core.Engine | None:
    """The engine of the calling worker, else the package's engine (running
    or not), else None."""
    return _core.current_engine() or _engine


def _running_engine() -> _core.Engine | None:
    """The engine of the calling worker, else the package's engine if its
    workers are running."""
    eng = _core.current_engine()
    if eng is not None:
        return eng
    eng = _engine
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
    return _start(None, {})


def _on_engine_finished(hook: Callable[[_core.Engine], None]) -> None:
    """Call hook(engine) once an engine has finished (its workers joined):
    what waits off the workers for it fails then."""
    _finish_hooks.append(hook)


def _reported_engine() -> _core.Engine | None:
    """What the stats describe: the package's engine, else the last one that
    ran (its final figures), else None."""
    return _engine or _last_engine
