"""Production life of a server process: inherited listening sockets, readiness,
the pid file, and the zero-downtime restart on SIGHUP.

* **Inherited sockets** (the ``LISTEN_FDS`` convention of service managers):
  when ``LISTEN_PID`` is this process, descriptors 3 .. 3+LISTEN_FDS-1 are
  listening sockets handed to it. A server asked for an address one of them
  is bound to serves those sockets and binds nothing (port 0 takes the first
  unclaimed socket on that address). ``LISTEN_FDNAMES`` is read but not
  needed: sockets are matched by address.
* **Readiness**: once serving, the process says ``READY=1`` to the service
  manager (``NOTIFY_SOCKET``, a datagram to a Unix socket, as ``sd_notify``),
  or to the old process of a restart; ``STOPPING=1`` when it stops.
* **SIGHUP**: a new process starts with the same command line, environment
  and working directory, inheriting every listening socket; only once it is
  ready does this one stop accepting (``engine.drain``: open connections are
  served on for a grace period, an HTTP server answering with
  ``Connection: close``) and exit. A new process that exits, or is not ready
  within the timeout, is reaped (killed on timeout); this one serves on and
  says why on stderr.
* **Pid file** (``run(pid_file=...)`` or ``PX_PID_FILE``): written atomically
  when the process is ready, so that it names the new process as soon as the
  old one lets go; removed at exit only while it still names this process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

__all__ = ["claim", "inherited", "notify", "ready", "stopping", "set_pid_file",
           "remove_pid_file", "restart", "drain_grace", "log", "READY_FD_ENV",
           "RESTART_TIMEOUT", "DRAIN_GRACE"]

READY_FD_ENV = "PX_READY_FD"  # the old process's end: where the new one says READY=1
RESTART_TIMEOUT = 60.0  # seconds a new process has to become ready (PX_RESTART_TIMEOUT)
DRAIN_GRACE = 1.0  # seconds the old process serves its open connections on (PX_DRAIN_GRACE)

_START_CWD = os.getcwd()  # where a restart starts the new process
_lock = threading.RLock()  # the SIGHUP handler may run while its thread holds it
_inherited: list[dict[str, Any]] | None = None  # parsed once; entries gain "claimed"
_ready_fd: int | None = None
_pid_file: str | None = None
_restarting = False
_child: int | None = None  # a new process started and not yet ready (under _lock)
_handing_over = False  # the new process is ready: this one drains (under _lock)


def _log(msg: str) -> None:
    print(f"pyparallel[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


log = _log


def drain_grace(explicit: float | None) -> float | None:
    """The drain grace configured: explicit (``run(drain_grace=)``,
    ``--drain-grace``), else PX_DRAIN_GRACE, else None (each use its default:
    a restart drains DRAIN_GRACE, a stop none)."""
    if explicit is not None:
        return max(0.0, explicit)
    if os.environ.get("PX_DRAIN_GRACE") is None:
        return None
    return max(0.0, _env_float("PX_DRAIN_GRACE", 0.0))


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _parse_environment() -> list[dict[str, Any]]:
    """The sockets handed to this process; the variables are removed so that
    processes it starts do not take them for theirs."""
    global _ready_fd
    fds_text = os.environ.pop("LISTEN_FDS", None)
    pid_text = os.environ.pop("LISTEN_PID", None)
    names_text = os.environ.pop("LISTEN_FDNAMES", None)
    ready_text = os.environ.pop(READY_FD_ENV, None)
    out: list[dict[str, Any]] = []
    if fds_text is None or pid_text is None:
        return out
    try:
        count, pid = int(fds_text), int(pid_text)
    except ValueError:
        _log(f"ignoring LISTEN_FDS={fds_text!r} LISTEN_PID={pid_text!r}: not numbers")
        return out
    if pid != os.getpid() or count <= 0:
        return out
    if ready_text is not None and ready_text.isdigit():
        _ready_fd = int(ready_text)
        with contextlib.suppress(OSError):
            os.set_inheritable(_ready_fd, False)
    names = names_text.split(":") if names_text else []
    for i in range(count):
        fd = 3 + i
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=os.dup(fd))
        except OSError as e:
            _log(f"inherited descriptor {fd}: {e}")
            continue
        try:
            if (sock.type != socket.SOCK_STREAM or
                    not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                _log(f"inherited descriptor {fd} is not a listening stream socket: ignored")
                continue
            out.append({"fd": fd, "name": names[i] if i < len(names) else "",
                        "family": sock.family, "addr": sock.getsockname(), "claimed": False})
        finally:
            sock.close()
    return out


def inherited() -> list[dict[str, Any]]:
    """The listening sockets this process was handed (parsed on first use)."""
    global _inherited
    with _lock:
        if _inherited is None:
            _inherited = _parse_environment()
        return _inherited


def _wildcard(addr: str) -> bool:
    return addr in ("0.0.0.0", "::")


def _resolve(host: str, port: int) -> tuple[int, str, int]:
    info = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                              socket.AI_PASSIVE | socket.AI_NUMERICSERV)
    family, _, _, _, addr = info[0]
    return int(family), str(addr[0]), int(addr[1])


def claim(host: str, port: int) -> list[int] | None:
    """The inherited sockets that serve host:port, now claimed (and adopted by
    the engine: a listen given one of them serves them all), or None. An exact
    address wins; a wildcard address matches the other family's wildcard;
    port 0 takes the first unclaimed address that matches."""
    sockets = inherited()
    if not sockets:
        return None
    family, addr, want_port = _resolve(host, port)
    with _lock:
        candidates = [s for s in sockets if not s["claimed"]]

        def matches(s: dict[str, Any], exact: bool) -> bool:
            a, p = s["addr"][0], s["addr"][1]
            if want_port and p != want_port:
                return False
            if exact:
                return bool(s["family"] == family and a == addr)
            return _wildcard(a) and _wildcard(addr)

        first = next((s for s in candidates if matches(s, True)), None) or \
            next((s for s in candidates if matches(s, False)), None)
        if first is None:
            return None
        group = [s for s in candidates
                 if s["family"] == first["family"] and s["addr"][:2] == first["addr"][:2]]
        for s in group:
            s["claimed"] = True
    from . import _core
    fds = [int(s["fd"]) for s in group]
    _core.adopt_listeners(fds)
    return fds


# -- readiness ---------------------------------------------------------------

def notify(state: str) -> bool:
    """Send state (``"READY=1"``, ``"STOPPING=1"``, ...) to the service manager
    at ``NOTIFY_SOCKET``, as sd_notify does. False when there is none or it
    cannot be reached."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    target = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), target)
        return True
    except OSError as e:
        _log(f"cannot notify the service manager at {path}: {e}")
        return False


def set_pid_file(path: str | None) -> None:
    """Keep path naming this process from when it is ready (None: PX_PID_FILE)."""
    global _pid_file
    _pid_file = path or os.environ.get("PX_PID_FILE") or None


def _write_pid_file() -> None:
    if not _pid_file:
        return
    tmp = f"{_pid_file}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, _pid_file)  # readers see the old pid or the new, never half


def remove_pid_file() -> None:
    """At exit: the pid file goes only while it still names this process (after
    a restart it names the new one)."""
    if not _pid_file:
        return
    try:
        with open(_pid_file) as f:
            mine = f.read().strip() == str(os.getpid())
        if mine:
            os.unlink(_pid_file)
    except OSError:
        pass


def _close_unclaimed() -> None:
    """Inherited sockets no server asked for (a port the new configuration
    dropped): closed, so that their clients are refused rather than left
    waiting in a backlog nobody accepts from."""
    with _lock:
        for s in inherited():
            if not s["claimed"]:
                s["claimed"] = True
                _log(f"inherited socket {s['addr'][0]}:{s['addr'][1]} is served by no "
                     "server: closed")
                with contextlib.suppress(OSError):
                    os.close(int(s["fd"]))


def ready() -> None:
    """The process serves: unclaimed inherited sockets closed, pid file, then
    the old process of a restart, else the service manager."""
    global _ready_fd
    _close_unclaimed()
    _write_pid_file()
    fd, _ready_fd = _ready_fd, None
    if fd is not None:
        try:
            os.write(fd, f"READY=1\nMAINPID={os.getpid()}\n".encode())
        except OSError as e:
            _log(f"cannot tell the old process that this one is ready: {e}")
        finally:
            os.close(fd)
        return
    notify(f"READY=1\nMAINPID={os.getpid()}")


def stopping() -> bool:
    """This process is told to stop (SIGTERM/SIGINT). A new process still
    starting is stopped with it (it holds the listening sockets too, which the
    stop is about to shut down). True when a hand-over is under way instead:
    the drain stops this process and the caller must leave the sockets alone."""
    global _child
    notify("STOPPING=1")
    with _lock:
        pid, _child = _child, None
        if _handing_over:
            return True
    if pid is not None:
        _log(f"stopping: new process {pid} was not ready yet; stopping it too")
        _kill_and_reap(pid)
    return False


def _kill_and_reap(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


# -- SIGHUP: start the new process, hand over --------------------------------

def _spawn(fds: list[int], ready_w: int) -> int:
    """Start this program anew with fds as 3.. and ready_w after them; the
    shell's exec keeps its pid, so it can name it in LISTEN_PID."""
    n = len(fds)
    env = {k: v for k, v in os.environ.items()
           if k not in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", READY_FD_ENV)}
    env["LISTEN_FDS"] = str(n)
    env["LISTEN_FDNAMES"] = ":".join(["pyparallel"] * n)
    env[READY_FD_ENV] = str(3 + n)
    # Out of the way of the targets 3 .. 3+n first, then into place.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 4 + n) for fd in [*fds, ready_w]]
    try:
        actions = [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(high)]
        argv = ["/bin/sh", "-c", 'cd -- "$0" && LISTEN_PID=$$ && export LISTEN_PID && exec "$@"',
                _START_CWD, sys.executable, *sys.orig_argv[1:]]
        return os.posix_spawn("/bin/sh", argv, env, file_actions=actions)
    finally:
        for fd in high:
            os.close(fd)


def _await_ready(pid: int, r: int, timeout: float) -> str | None:
    """None once pid said READY=1 on r, else why not."""
    deadline = time.monotonic() + timeout
    got = b""
    poller = select.poll()
    poller.register(r, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill_and_reap(pid)
            return f"not ready within {timeout:g} s (killed)"
        # poll, not select: on a busy server the pipe's descriptor is past 1024.
        if poller.poll(min(left, 0.5) * 1000):
            data = os.read(r, 256)
            got += data
            if b"READY=1" in got:
                return None
            if not data:  # the new process closed its end without READY
                break
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by stopping(): this process stops too
        return "stopped with this process"
    if os.WIFSIGNALED(status):
        return f"exited on signal {os.WTERMSIG(status)} before it was ready"
    return f"exited with status {os.waitstatus_to_exitcode(status)} before it was ready"


def _run_restart(eng: Any, timeout: float, grace: float, shutdown_timeout: float) -> None:
    global _restarting, _child, _handing_over
    pid: int | None = None
    try:
        fds = eng.listen_fds()
        if not fds:
            _log("SIGHUP: no listening socket to hand over; not restarting")
            return
        r, w = os.pipe()
        try:
            pid = _spawn(fds, w)
        except OSError as e:
            _log(f"restart failed: cannot start a new process: {e}; still serving")
            os.close(r)
            return
        finally:
            os.close(w)
        with _lock:
            _child = pid
        _log(f"SIGHUP: started new process {pid}")
        try:
            why = _await_ready(pid, r, timeout)
        finally:
            os.close(r)
        with _lock:
            if _child != pid:  # stopping() took it: this process is stopping
                pid = None
                return
            _child = None
            if why is None:
                _handing_over = True
        if why is not None:
            _log(f"restart failed: new process {pid} {why}; still serving")
            return
        _log(f"new process {pid} is ready; stopping accepting and draining")
        notify(f"MAINPID={pid}")
        eng.drain(grace, shutdown_timeout)
    except Exception as e:  # a restart that fails must never stop the server
        with _lock:
            if _handing_over:
                pid = None  # the new process serves; it stays
            elif _child == pid:
                _child = None
            else:
                pid = None
        if pid is not None:
            _kill_and_reap(pid)
        _log(f"restart failed: {e!r}; still serving")
    finally:
        with _lock:
            _restarting = False


def restart(eng: Any, shutdown_timeout: float, grace: float | None = None) -> bool:
    """Begin a zero-downtime restart of this process serving with eng (from
    the SIGHUP handler); grace as drain_grace. False when one is already
    under way."""
    global _restarting
    with _lock:
        if _restarting:
            _log("SIGHUP: a restart is already under way")
            return False
        _restarting = True
    timeout = _env_float("PX_RESTART_TIMEOUT", RESTART_TIMEOUT)
    configured = drain_grace(grace)
    grace = DRAIN_GRACE if configured is None else configured
    threading.Thread(target=_run_restart, args=(eng, timeout, grace, shutdown_timeout),
                     name="pyparallel-restart", daemon=True).start()
    return True


# Read when the package is imported: the descriptors become close-on-exec and
# the variables leave the environment before the application may start a
# process of its own.
inherited()
