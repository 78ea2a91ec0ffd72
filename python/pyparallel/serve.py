"""``pyparallel serve module:app``: run an existing application on all cores.

::

    pyparallel serve myproject.wsgi:application --port 8000 --static /static=./static
    pyparallel serve app:App --interface http          # an HttpServer subclass
    python -m pyparallel serve app:create_app --factory --reload

``--interface wsgi`` (a PEP 3333 callable; the default for anything that is
not a class), ``asgi`` (an ASGI 3 app: the default for an ``async def``
callable of three parameters) or ``http`` (an
:class:`~pyparallel.http.HttpServer` subclass or a protocol class; the
default for classes). Once the sockets accept
connections it prints ``pyparallel: listening on HOST:PORT``; SIGINT or
SIGTERM stop it gracefully; SIGHUP restarts it with no connection lost
(``--pid-file`` names the serving process; see docs/deploy.md).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["LoadError", "load_app", "main"]


class LoadError(Exception):
    """The application could not be found: the message says why."""


def load_app(target: str, factory: bool = False) -> Any:
    """The object ``module:attribute`` names (``module`` alone: its ``app``
    or ``application``); with factory, what calling it returns."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise LoadError(f"{target!r}: expected module:attribute, as in myapp.wsgi:application")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # the module asked for, or a package on its way: not one it imports
        if e.name is not None and (module_name == e.name or
                                   module_name.startswith(e.name + ".")):
            raise LoadError(f"cannot import {module_name!r}: no module named {e.name!r} "
                            f"(searched from {os.getcwd()}; --app-dir adds a directory)") from e
        raise LoadError(f"importing {module_name!r} failed:\n{traceback.format_exc()}") from e
    except Exception as e:
        raise LoadError(f"importing {module_name!r} failed:\n{traceback.format_exc()}") from e
    names = attr.split(".") if attr else []
    if not names:
        names = ["app"] if hasattr(module, "app") else ["application"]
    obj: Any = module
    for i, name in enumerate(names):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            where = ".".join([module_name] + names[:i])
            raise LoadError(f"{where!r} has no attribute {name!r} "
                            f"(looked for {module_name}:{'.'.join(names)})") from None
    if factory:
        if not callable(obj):
            raise LoadError(f"--factory: {target!r} is not callable")
        try:
            obj = obj()
        except Exception as e:
            raise LoadError(f"calling the factory {target!r} failed:\n"
                            f"{traceback.format_exc()}") from e
    return obj


def _parser() -> argparse.ArgumentParser:
    # No abbreviations: the reloader's child must not read "--rel" as --reload.
    p = argparse.ArgumentParser(prog="pyparallel serve", allow_abbrev=False,
                                description="Serve a WSGI app or an HttpServer on all cores.")
    p.add_argument("target", help="module:attribute, e.g. mysite.wsgi:application")
    p.add_argument("--interface", choices=("auto", "wsgi", "http", "asgi"), default="auto",
                   help="wsgi: a PEP 3333 callable; asgi: an ASGI 3 app; http: an HttpServer "
                        "subclass or a protocol class (auto: http for classes, asgi for an "
                        "async callable of three parameters, wsgi otherwise)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", "-p", type=int, default=8000, help="port (0: any free one)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker threads (default: PX_WORKERS or one per usable CPU)")
    p.add_argument("--static", action="append", default=[], metavar="/URL=DIR",
                   help="serve DIR under /URL from the engine (repeatable)")
    p.add_argument("--access-log", nargs="?", const="-", default=None, metavar="FILE",
                   help="log every request in the common log format to FILE (default: stdout)")
    p.add_argument("--root-path", default="", help="SCRIPT_NAME: where the app is mounted")
    p.add_argument("--url-scheme-header", default=None, metavar="NAME",
                   help="trust this header from a proxy for wsgi.url_scheme "
                        "(e.g. X-Forwarded-Proto)")
    p.add_argument("--max-body", type=int, default=None, help="largest request body (bytes)")
    p.add_argument("--timeout-keep-alive", type=float, default=None,
                   help="idle keep-alive connection timeout (s)")
    p.add_argument("--timeout-head", type=float, default=None,
                   help="time to receive a complete request head (s)")
    p.add_argument("--timeout-body", type=float, default=None,
                   help="time to receive a request body once its head is in (s)")
    p.add_argument("--handoff-ms", type=int, default=None,
                   help="a worker blocked this long in an app hands its other connections to "
                        "a spare thread (default 2)")
    p.add_argument("--handoff-threads", type=int, default=None,
                   help="most threads serving workers whose apps block, beyond one per worker "
                        "(default 1024; each costs the stack it touched)")
    p.add_argument("--factory", action="store_true",
                   help="the target is a callable that returns the app")
    p.add_argument("--app-dir", default=".", help="directory added to sys.path (default: .)")
    p.add_argument("--reload", action="store_true",
                   help="restart when a .py file under --app-dir changes (development)")
    p.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto",
                   help="asgi: run the app's lifespan startup/shutdown (auto: unless it does "
                        "not support it)")
    p.add_argument("--timeout-response", type=float, default=60.0, metavar="SECONDS",
                   help="asgi: an app that has not started its response by then is cancelled "
                        "and the client answered 500 (default 60)")
    p.add_argument("--ws-max-size", type=int, default=16 * 1024 * 1024, metavar="BYTES",
                   help="asgi: the largest WebSocket message; a bigger one closes with 1009 "
                        "(default 16 MiB)")
    p.add_argument("--ws-ping-interval", type=float, default=20.0, metavar="SECONDS",
                   help="asgi: a WebSocket ping whenever this long passed since the last "
                        "pong; 0: none (default 20)")
    p.add_argument("--ws-ping-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="asgi: an unanswered ping closes the WebSocket with 1011 after this "
                        "long (default 20)")
    p.add_argument("--ws-max-queue", type=int, default=32, metavar="MESSAGES",
                   help="asgi: WebSocket messages the app has not received yet before the "
                        "connection's next ones wait (default 32)")
    p.add_argument("--ws-per-message-deflate", action=argparse.BooleanOptionalAction,
                   default=True,
                   help="asgi: take a client's permessage-deflate offer (default: on; the "
                        "server keeps no zlib state on idle connections)")
    p.add_argument("--health-path", metavar="PATH", default=None,
                   help="answer GET PATH in the server: 200 ok, 503 draining while stopping "
                        "or restarting (for a load balancer's checks)")
    p.add_argument("--proxy-protocol", action="store_true",
                   help="each connection starts with a PROXY protocol header (v1 or v2) from "
                        "a load balancer: REMOTE_ADDR is the client it names")
    p.add_argument("--drain-grace", type=float, default=None, metavar="SECONDS",
                   help="on SIGTERM/SIGINT serve on that long, the health path answering "
                        "503 draining, before stopping; a restart's old process serves its "
                        "connections that long (default: PX_DRAIN_GRACE, else 0 for a stop, "
                        "1 for a restart)")
    p.add_argument("--proxy-timeout", type=float, default=None, metavar="SECONDS",
                   help="--proxy-protocol: a connection whose header is not in within "
                        "SECONDS is closed (default 5)")
    p.add_argument("--pid-file", metavar="FILE", default=None,
                   help="keep FILE naming the serving process (SIGHUP restarts it)")
    return p


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if args.health_path is not None:
        limits["health_path"] = args.health_path
    if args.proxy_protocol:
        limits["proxy_protocol"] = True
    if args.proxy_timeout is not None:
        limits["proxy_timeout"] = args.proxy_timeout
    if args.max_body is not None:
        limits["max_body"] = args.max_body
    for name, key in (("timeout_keep_alive", "keepalive_timeout"),
                      ("timeout_head", "head_timeout"), ("timeout_body", "body_timeout")):
        if getattr(args, name) is not None:
            limits[key] = getattr(args, name)
    return limits


def _statics(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        url, sep, directory = spec.partition("=")
        if not sep or not url.startswith("/") or not directory:
            parser.error(f"--static {spec!r}: expected /URL=DIR")
        if not os.path.isdir(directory):
            parser.error(f"--static {spec!r}: not a directory: {directory}")
        out[url.rstrip("/") or "/"] = os.path.abspath(directory)
    return out


class _AccessLogWriter(threading.Thread):
    """Writes the lines the workers buffered, a few times a second."""

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__(name="pyparallel-access-log", daemon=True)
        self.out = out
        self.stopping = threading.Event()

    def flush_once(self) -> None:
        from pyparallel.wsgi import _access_log_take
        data, dropped = _access_log_take()
        if data:
            self.out.write(data)
        if dropped:
            self.out.write(f"pyparallel: {dropped} access log lines dropped\n".encode())
        if data or dropped:
            self.out.flush()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            self.flush_once()


def _protocol(parser: argparse.ArgumentParser, args: argparse.Namespace, obj: Any) -> Any:
    from pyparallel.asgi import is_asgi_app
    from pyparallel.http import HttpServer

    interface = args.interface
    if interface == "auto":
        interface = ("http" if isinstance(obj, type) else
                     "asgi" if is_asgi_app(obj) else "wsgi")
    if interface == "http":
        if not isinstance(obj, type):
            parser.error(f"--interface http: {args.target!r} is not a class (an HttpServer "
                         "subclass or a protocol class)")
        if args.static or args.root_path or args.access_log or args.url_scheme_header:
            parser.error("--static, --root-path, --access-log and --url-scheme-header are for "
                         "--interface wsgi and asgi (an HttpServer routes StaticFiles itself)")
        if issubclass(obj, HttpServer) and _limits(args):
            obj = type(obj.__name__, (obj,), {"limits": {**obj.limits, **_limits(args)}})
        return obj
    if interface == "asgi":
        return _asgi_server(parser, args, obj)
    from pyparallel.wsgi import make_server
    if not callable(obj):
        parser.error(f"{args.target!r} is not callable: not a WSGI application")
    return make_server(obj, root_path=args.root_path, url_scheme_header=args.url_scheme_header,
                       static=_statics(parser, args.static), access_log=bool(args.access_log),
                       **_limits(args))


def _asgi_server(parser: argparse.ArgumentParser, args: argparse.Namespace, obj: Any) -> Any:
    from pyparallel.asgi import make_server as make_asgi_server

    if not callable(obj):
        parser.error(f"{args.target!r} is not callable: not an ASGI application")
    if args.access_log:
        parser.error("--access-log is for --interface wsgi")
    return make_asgi_server(obj, root_path=args.root_path,
                            url_scheme_header=args.url_scheme_header,
                            static=_statics(parser, args.static), lifespan=args.lifespan,
                            response_timeout=args.timeout_response,
                            websocket={"max_size": args.ws_max_size,
                                       "ping_interval": args.ws_ping_interval,
                                       "ping_timeout": args.ws_ping_timeout,
                                       "max_queue": args.ws_max_queue,
                                       "per_message_deflate": args.ws_per_message_deflate},
                            **_limits(args))


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import pyparallel as px

    sys.path.insert(0, os.path.abspath(args.app_dir))
    try:
        obj = load_app(args.target, args.factory)
    except LoadError as e:
        print(f"pyparallel serve: {e}", file=sys.stderr)
        return 2
    protocol = _protocol(parser, args, obj)
    options = {} if args.handoff_ms is None else {"handoff_ms": args.handoff_ms}
    if args.handoff_threads is not None:
        options["handoff_threads"] = args.handoff_threads
    try:
        server = px.server(args.host, args.port)
        px.engine(args.workers, **options)
    except OSError as e:
        print(f"pyparallel serve: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    from pyparallel.asgi import ASGIServer, LifespanError

    asgi = isinstance(protocol, type) and issubclass(protocol, ASGIServer)
    if asgi:  # the lifespan startup, before the app gets requests
        try:
            protocol.startup()
        except LifespanError as e:
            print(f"pyparallel serve: {e}; not starting", file=sys.stderr, flush=True)
            return 3
    px.register(transport=server, protocol=protocol)
    writer = None
    if args.access_log:
        out = (sys.stdout.buffer if args.access_log == "-"
               else open(args.access_log, "ab"))  # noqa: SIM115 (open as long as we serve)
        writer = _AccessLogWriter(out)
        writer.start()
    print(f"pyparallel: listening on {args.host}:{server.port}", flush=True)
    try:
        px.run(workers=args.workers, pid_file=args.pid_file, drain_grace=args.drain_grace)
    finally:
        if asgi:
            protocol.shutdown()
        if writer is not None:
            writer.stopping.set()
            writer.join(2)
            writer.flush_once()
    return 0


# -- --reload ------------------------------------------------------------------

def _sources(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and d not in ("__pycache__", "node_modules")]
        for name in filenames:
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def _snapshot(root: str) -> dict[str, float]:
    out = {}
    for path in _sources(root):
        try:
            out[path] = os.stat(path).st_mtime
        except OSError:
            pass
    return out


_RELOADER_CHILD = "PX_SERVE_RELOADER_CHILD"  # set in the child: it never reloads itself


def _reload(argv: list[str], root: str) -> int:
    """Run the server in a child; restart it when a source file changes."""
    child_argv = [sys.executable, "-m", "pyparallel", "serve"] + [a for a in argv
                                                                  if a != "--reload"]
    stop = threading.Event()
    hangup = threading.Event()  # SIGHUP restarts the child, as a source change does

    def on_signal(signum: int, frame: Any) -> None:
        (hangup if signum == signal.SIGHUP else stop).set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    while True:
        before = _snapshot(root)
        child = subprocess.Popen(child_argv, env={**os.environ, _RELOADER_CHILD: "1"})
        changed = False
        while not stop.is_set() and child.poll() is None:
            stop.wait(0.5)
            if hangup.is_set() or _snapshot(root) != before:
                hangup.clear()
                changed = True
                break
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if stop.is_set():
            return 0
        if changed:
            print("pyparallel serve: a source changed, restarting", file=sys.stderr, flush=True)
            continue
        # The server exited by itself (an error at start): wait for a fix.
        while not stop.is_set() and _snapshot(root) == before:
            stop.wait(0.5)
        if stop.is_set():
            return child.returncode or 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.reload and not os.environ.get(_RELOADER_CHILD):
        return _reload(argv, os.path.abspath(args.app_dir))
    return _serve(args, parser)


if __name__ == "__main__":
    sys.exit(main())
