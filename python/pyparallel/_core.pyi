"""Type stubs of pyparallel._core, the C extension (src/py): the engine, its
transports, HTTP requests, timers, locks, and the runtime's C helpers.

Application code uses the ``pyparallel`` package; these stubs describe what the
package (and a ``mypy --strict`` user reaching for the extension) can call.
"""


import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from types import GenericAlias, TracebackType
from typing import (
    Any,
    Final,
    Generic,
    Literal,
    SupportsIndex,
    TypeAlias,
    TypedDict,
    TypeVar,
    final,
    overload,
)

from typing_extensions import Buffer, disjoint_base

__version__: Final[str]

# ---- sendable values -----------------------------------------------------------

_Flat: TypeAlias = Buffer | str | sendfile
# What a callback may return or Transport.send() takes: bytes-like, str (sent
# as UTF-8), a sendfile(), or a tuple/list of those (one gathered send).
_Sendable: TypeAlias = _Flat | tuple[_Flat, ...] | list[_Flat]

@final
class sendfile:
    """sendfile(path, offset=0, count=None, before=None, after=None): a file
    range the kernel sends without passing it through Python."""

    def __new__(
        cls,
        path: str | bytes | PathLike[str] | PathLike[bytes],
        offset: int = 0,
        count: int | None = None,
        before: _Sendable | None = None,
        after: _Sendable | None = None,
    ) -> sendfile: ...
    @property
    def path(self) -> str | bytes: ...
    @property
    def offset(self) -> int: ...
    @property
    def count(self) -> int | None:
        """Bytes to send; None: to the end of the file."""

# ---- exceptions ------------------------------------------------------------------

class EngineError(OSError, RuntimeError):
    """The engine failed or refused: it has shut down, a backend that was asked
    for is refused, or a system call it made failed. ``errno`` is set when the
    cause is one."""

class TransactionError(RuntimeError):
    """An operation that a transaction (pyparallel.atomic) cannot perform."""

class IOInTransactionError(TransactionError):
    """I/O was attempted inside a transaction, which may be retried."""

# ---- the engine ------------------------------------------------------------------

_Protocol: TypeAlias = type[Any] | Callable[[], Any]

@final
class Engine:
    """The completion engine: worker threads, rings, connections.

    Every argument is keyword-only; 0 (or None) means the engine's default."""

    def __new__(
        cls,
        *,
        workers: int = 0,
        backend: str = "auto",  # 'auto', 'uring' (or 'io_uring'), 'epoll'
        max_connections: int = ...,
        recv_buffer_size: int = ...,
        recv_buffers: int = ...,
        send_high_water: int = 0,
        send_low_water: int = 0,
        turn_budget: int = 0,
        handoff_ms: float | None = None,
        pool_idle_ms: float | None = None,  # memory unused this long is returned; 0: kept
        memory_budget: int = 0,  # bytes; 0: a quarter of the memory available
        handoff_threads: int = 0,  # spare threads for blocked workers, at most; 0: 1024
    ) -> Engine: ...
    def listen(self, host: str, port: int, protocol: _Protocol, fd: int = -1, /) -> int:
        """Serve protocol on host:port (0: a free port); returns the bound port.
        fd: a listening socket the engine takes over as the first worker's."""
    def connect(self, host: str, port: int, protocol: _Protocol, *,
                timeout: float | None = None, attempt_delay: float | None = None,
                worker: str | int | None = None) -> None:
        """Connect to host:port from a worker (never blocks: names are looked
        up on resolver threads); protocol gets the connection."""
    def listen_http(
        self,
        host: str,
        port: int,
        app: Callable[[Request], object],
        static: Mapping[str, tuple[str, bytes]] | None = None,
        keepalive_timeout: float = ...,
        head_timeout: float = ...,
        body_timeout: float = ...,
        max_body: int = ...,
        max_headers: int = ...,
        max_request_line: int = ...,
        max_header_bytes: int = ...,
        server_name: str = ...,
        *,
        response_type: type[Any] | None = None,
        json_default: Callable[[Any], object] | None = None,
        routes: Iterable[tuple[str, Callable[..., object], Iterable[str]]
                         | tuple[str, Callable[..., object], Iterable[str],
                                 tuple[frozenset[str] | None, frozenset[str]]]] | None = None,
        fd: int = -1,
        error_type: type[BaseException] | None = None,
        fallback_takes_body: bool = True,
        stream_bodies: bool = False,
        body_buffer: int = 0,
        wsgi: Mapping[str, Any] | None = None,
        health_path: str | None = None,
        proxy_protocol: bool = False,
        proxy_timeout: float = 0.0,
    ) -> int:
        """Serve an HTTP application on host:port; returns the bound port.
        fallback_takes_body False: a request no route matches is answered
        before its body arrives (the body is dropped unread). stream_bodies:
        the app is called at the head and reads the body as it arrives
        (through body_buffer bytes, 0: 256 KiB) with the C API's
        px_http_body_read (for adapters such as WSGI's wsgi.input);
        Request.body (and .json(), .data) then reads the rest of the body
        whole at its first use in the handler, bounded by max_body
        (HttpError 413 past it), and raises RuntimeError after the handler
        returned. wsgi: a WSGI application answers what no route
        took (pyparallel.wsgi describes it: app, errors, file_wrapper,
        root_path, scheme_header, server_name, server_software, access_log).
        health_path: GET/HEAD of it answered by the server (200 ok, 503
        draining while stopping). proxy_protocol: each connection starts
        with a PROXY protocol header, whose client is remote_addr;
        proxy_timeout: seconds to receive it, else the connection is closed
        (0: 5 s)."""
    def start(self) -> None:
        """Start the worker threads (once; later calls do nothing)."""
    def drain(self, grace: float = 1.0, timeout: float = 5.0, /) -> None:
        """Hand over to another process serving the same sockets: stop accepting
        (the sockets stay open), serve the open connections for grace seconds
        (HTTP answers with Connection: close), then shut down."""
    def listen_fds(self) -> list[int]:
        """The servers' listening descriptors (the engine's), oldest server first."""
    def announce_stop(self) -> None:
        """Serve on, but HTTP health answers 503 draining and every answer says
        Connection: close (a stop's drain grace)."""
    def shutdown(self, timeout: float = 5.0, /) -> None:
        """Stop accepting, drain sends, close; abort what is left after timeout."""
    def join(self) -> None:
        """Wait for the workers to exit."""
    def wait(self, timeout: float = 0.0, /) -> bool:
        """Run main-thread work and re-raise worker exceptions, waiting up to
        timeout seconds for them; True once the engine has finished."""
    def worker_stats(self) -> list[dict[str, int]]:
        """Counters of each worker."""
    @property
    def backend(self) -> Literal["io_uring", "epoll", "none"]: ...
    @property
    def uring_error(self) -> tuple[int, str] | None:
        """(errno, text): why io_uring was not used, or None."""
    @property
    def workers(self) -> int: ...
    @property
    def started(self) -> bool: ...
    @property
    def finished(self) -> bool: ...
    @property
    def clients(self) -> int:
        """Client connections not yet closed."""
    @property
    def tasks(self) -> int:
        """Submitted work and timers not yet finished."""
    @property
    def handoff_ms(self) -> int: ...
    #: True: exceptions of connection callbacks that no exception_handler takes
    #: are re-raised by wait(); False (default): logged, the connection closed.
    raise_errors: bool
    @property
    def memory_budget(self) -> int:
        """Bytes of request bodies and unsent output the process holds at most."""

# ---- connections -------------------------------------------------------------------

_Address: TypeAlias = tuple[str, int] | tuple[str, int, int, int]

@final
class Transport:
    """A connection, as protocol callbacks see it (made by the engine only).

    Usable from any thread: calls from a thread other than the connection's
    worker are posted to that worker, in order per calling thread."""

    def send(self, data: _Sendable, /, wait: float | None = None) -> bool: ...
    def write(self, data: _Sendable, /, wait: float | None = None) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def shutdown_send(self) -> None:
        """Shut the sending side once what was queued before has left (FIN).

        A protocol that defines ``recv_shutdown`` keeps the connection open
        after the peer's end and must itself call this or ``close()``, or the
        connection stays half-open until its idle timeout. A ``send`` racing
        this call from another thread may be taken and then dropped."""
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    @overload
    def get_extra_info(self, name: Literal["peername", "sockname"], /) -> _Address | None: ...
    @overload
    def get_extra_info(self, name: str, default: object = None, /) -> object: ...
    @property
    def peername(self) -> _Address | None: ...
    @property
    def sockname(self) -> _Address | None: ...
    @property
    def id(self) -> int: ...
    @property
    def protocol(self) -> Any: ...
    @property
    def closed(self) -> bool: ...
    @property
    def unsent(self) -> int: ...
    @property
    def worker(self) -> int: ...

@final
class Request:
    """An HTTP request as a handler sees it; fields are built when asked for."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str:
        """The path, not decoded, without the query."""
    @property
    def query(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def version(self) -> Literal["HTTP/1.0", "HTTP/1.1"]: ...
    @property
    def headers(self) -> dict[str, str]:
        """Header names lower-cased."""
    @property
    def args(self) -> dict[str, str]:
        """Query parameters: {name: first value}."""
    @property
    def body(self) -> bytes: ...
    @property
    def keep_alive(self) -> bool: ...
    @property
    def remote_addr(self) -> _Address | None: ...
    @overload
    def header(self, name: str, /) -> str | None: ...
    @overload
    def header(self, name: str, default: str, /) -> str: ...
    def json(self) -> Any: ...
    @property
    def command(self) -> str:
        """The method (the original PyParallel's name)."""
    @property
    def data(self) -> bytes:
        """The request as received: head, blank line, decoded body."""
    @property
    def transport(self) -> Any:
        """The connection (pyparallel.http.HttpConnection) while the handler runs."""
    range: Any
    response: Any

# ---- timers and locks -------------------------------------------------------------

@final
class Timer:
    """A function called on a worker after delay seconds, then every period."""

    def __new__(
        cls,
        engine: Engine,
        delay: float,
        func: Callable[[], object],
        period: float | None = None,
        worker: int = -1,
    ) -> Timer: ...
    def cancel(self) -> None: ...
    @property
    def active(self) -> bool: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def fired(self) -> int: ...
    @property
    def delay(self) -> float: ...
    @property
    def period(self) -> float | None: ...
    @property
    def worker(self) -> int: ...

@final
class RWLockGuard:
    """``with lock.reader:`` / ``with lock.writer:``."""

    def __enter__(self) -> RWLock: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...

@final
class RWLock:
    """Readers in parallel, writers alone, writers preferred; re-entrant per thread."""

    def __new__(cls) -> RWLock: ...
    def acquire_read(self, blocking: bool = True) -> bool: ...
    def acquire_write(self, blocking: bool = True) -> bool: ...
    def release_read(self) -> None: ...
    def release_write(self) -> None: ...
    def held(self) -> Literal["read", "write"] | None: ...
    @property
    def reader(self) -> RWLockGuard: ...
    @property
    def writer(self) -> RWLockGuard: ...
    @property
    def readers(self) -> int: ...
    @property
    def write_locked(self) -> bool: ...
    @property
    def writers_waiting(self) -> int: ...

@disjoint_base
class LockedDict(dict[Any, Any]):
    """A dict whose common operations take its own RWLock (base of pyparallel.dict)."""

    @property
    def _px_lock(self) -> RWLock: ...
    @property
    def _px_r(self) -> RWLockGuard: ...
    @property
    def _px_w(self) -> RWLockGuard: ...

@disjoint_base
class LockedList(list[Any]):
    """A list whose common operations take its own RWLock (base of pyparallel.list)."""

    @property
    def _px_lock(self) -> RWLock: ...
    @property
    def _px_r(self) -> RWLockGuard: ...
    @property
    def _px_w(self) -> RWLockGuard: ...

# ---- the runtime's helpers -----------------------------------------------------------

def adopt_listeners(fds: Sequence[int], /) -> None:
    """Inherited listening sockets bound to one address: a listen given one
    of them serves them all and binds nothing."""
def current_transport() -> Transport | None: ...
def current_engine() -> Engine | None: ...
def worker_index() -> int | None: ...
def worker_waiting() -> bool: ...
def submit(engine: Engine, fn: Callable[[], object], worker: int = -1) -> int:
    """Call fn() on a worker (the least loaded unless one is given); returns its
    index. What fn raises is re-raised by the engine's wait()."""
def tasks_hold(engine: Engine, delta: int, /) -> None:
    """Count (1) or uncount (-1) work pending off the workers among the
    engine's tasks."""
def post_main(engine: Engine, fn: Callable[[], object], /) -> None:
    """The main thread calls fn() when it next waits in the engine."""
def json_dumps(obj: object, *, default: Callable[[Any], object] | None = None) -> bytes: ...

# ---- HTTP ----------------------------------------------------------------------------

class _HttpDefaults(TypedDict):
    keepalive_timeout: float
    head_timeout: float
    body_timeout: float
    max_body: int
    max_headers: int
    max_request_line: int
    max_header_bytes: int
    server_name: str

def http_path_decode(path: Buffer, /) -> bytes:
    """A request path percent-decoded as the engine decodes it (ValueError for a
    malformed escape, a NUL or a backslash, a '..' segment or no leading '/')."""
def http_defaults() -> _HttpDefaults:
    """listen_http's keyword defaults, as the engine defines them."""
def wsgi_access_log_take() -> tuple[bytes, int]:
    """The access log lines the workers buffered since the last call, and how
    many lines were dropped (a writer that could not keep up)."""

@final
class Deferred:
    """An HTTP response answered later, from any thread."""
    @property
    def closed(self) -> bool: ...
    def respond(self, result: object, /) -> bool: ...
    def respond_with(self, fn: Callable[[Any], object],
                     gone: Callable[[], object] | None = None) -> bool: ...
    def fail(self, exc: BaseException, /) -> bool: ...

def http_defer(request: object, /) -> Deferred:
    """Answer request later (inside its handler)."""

@final
class HttpStream:
    """A streamed response body that any thread may write to."""
    @property
    def closed(self) -> bool: ...
    @property
    def written(self) -> int: ...
    def write(self, data: Buffer | str, *, block: bool = True,
              timeout: float | None = None) -> None: ...
    def end(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def fail(self) -> None:
        """The body cannot be completed: the connection closes after what was
        written, without what would end the body (the client sees it cut)."""
    def wait_writable(self, timeout: float | None = None) -> bool: ...
    def heartbeat(self, interval: float, data: bytes = b": \n\n") -> None: ...
    def __enter__(self) -> HttpStream: ...
    def __exit__(self, *exc: object) -> bool: ...

def http_stream(request: object, status: int = 200, content_type: str | None = None,
                headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                length: int | None = None) -> HttpStream:
    """Start request's response (inside its handler) with a body written later."""

# ---- sharing -------------------------------------------------------------------------

class _ShareCounts(TypedDict):
    objects: int
    bytes: int
    new_objects: int
    new_bytes: int
    skipped: int
    immortal: bool

class _ShareInfo(TypedDict):
    immortal: bool
    reason: str

def share(*objs: object) -> _ShareCounts:
    """Make the object graphs immortal; what was reached, and what this call
    shared (new_*), skipped, and whether objects are made immortal here."""
def share_stats() -> dict[str, int]:
    """Objects and bytes newly shared since the module was loaded."""
def share_info() -> _ShareInfo:
    """What share() does on this interpreter, and why not when it does not."""

# ---- stats and debugging ---------------------------------------------------------------

def latency(engine: Engine, buckets: bool = False) -> dict[str, dict[str, Any]]:
    """{'request': ..., 'callback': ...}: each {'workers': [summary, ...],
    'total': summary}, a summary holding count, sum_ns, mean_ns, p50_ns, p90_ns,
    p99_ns, p999_ns, max_ns (and the total its buckets when asked)."""
def worker_runtime(engine: Engine, /) -> list[dict[str, int | bool]]: ...
def thread_seq_id() -> int: ...
def rdtsc() -> int: ...
def now_ns() -> int: ...
def debug(msg: object, /) -> None: ...
def set_debug(on: object, /) -> bool: ...
def debug_enabled() -> bool: ...
def socket_stats(obj: Transport | socket.socket | int, /) -> dict[str, int | str]: ...

# ---- transactions (pyparallel.stm) -------------------------------------------------------

_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")

class _Conflict(BaseException): ...

def atomic(func: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T: ...
def in_transaction() -> bool: ...
def refuse_in_transaction(what: str, /) -> None: ...
def stm_stats(reset: bool = False, top: int = 10) -> dict[str, Any]: ...
def stm_config(max_retries: int | None = None) -> dict[str, int]: ...
def _stm_now() -> int: ...
def _stm_refuse(what: str, /) -> None: ...

@disjoint_base
class tvar(Generic[_T]):
    name: Any
    value: _T
    def __new__(cls, value: _T = ..., name: str | None = None) -> tvar[_T]: ...
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...
    def get(self) -> _T: ...
    def set(self, value: _T, /) -> None: ...

@disjoint_base
class tdict(Generic[_K, _V]):
    name: Any
    def __new__(cls, items: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (),
                name: str | None = None) -> tdict[_K, _V]: ...
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...
    def __getitem__(self, key: _K, /) -> _V: ...
    def __setitem__(self, key: _K, value: _V, /) -> None: ...
    def __delitem__(self, key: _K, /) -> None: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[_K]: ...
    def get(self, key: _K, default: Any = None, /) -> Any: ...
    def pop(self, key: _K, default: Any = ..., /) -> Any: ...
    def setdefault(self, key: _K, default: _V, /) -> _V: ...
    def update(self, other: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = (), /,
               **kw: _V) -> None: ...
    def clear(self) -> None: ...
    def items(self) -> list[tuple[_K, _V]]: ...
    def keys(self) -> list[_K]: ...
    def values(self) -> list[_V]: ...
    def snapshot(self) -> dict[_K, _V]: ...

@disjoint_base
class tlist(Generic[_T]):
    name: Any
    def __new__(cls, items: Iterable[_T] = (), name: str | None = None) -> tlist[_T]: ...
    def __class_getitem__(cls, item: Any, /) -> GenericAlias: ...
    @overload
    def __getitem__(self, i: SupportsIndex, /) -> _T: ...
    @overload
    def __getitem__(self, i: slice, /) -> list[_T]: ...
    def __setitem__(self, i: SupportsIndex, value: _T, /) -> None: ...
    def __delitem__(self, i: SupportsIndex, /) -> None: ...
    def __contains__(self, value: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[_T]: ...
    def append(self, value: _T, /) -> None: ...
    def extend(self, values: Iterable[_T], /) -> None: ...
    def insert(self, i: int, value: _T, /) -> None: ...
    def pop(self, i: SupportsIndex = -1, /) -> _T: ...
    def remove(self, value: _T, /) -> None: ...
    def clear(self) -> None: ...
    def snapshot(self) -> list[_T]: ...
    def index(self, value: _T, /) -> int: ...
    def count(self, value: _T, /) -> int: ...

# ---- ASGI (asgi_request.c) -------------------------------------------------------------

def asgi_request(request: Request, /) -> tuple[str, str, bytes, bytes, list[tuple[bytes, bytes]],
                                               tuple[str, int] | None, bool]:
    """(method, http_version, raw_path, query_string, headers, client, has_body) of the
    request whose handler runs on this thread."""
def asgi_body_read(request: Request, size: int, timeout_ms: int, /) -> tuple[bytes, bool]:
    """(bytes, more): up to size bytes of the request body as it arrives; b"" at its end."""
def asgi_client_gone(request: Request, /) -> bool:
    """True when the client of the request whose handler runs here has gone."""

# ---- ASGI (asgi_response.c) ------------------------------------------------------------

def asgi_response_head(message: Mapping[str, Any], /) -> tuple[int, list[tuple[str, str]],
                                                               str | None, int | None]:
    """(status, header pairs, content type, Content-Length) of an http.response.start
    message: status an int in 100..999 (ValueError otherwise), names lower-cased, names
    and values latin-1 text, the server's own framing headers (Transfer-Encoding,
    Connection, Keep-Alive, Trailer, Upgrade, TE, Proxy-Connection) taken out."""

# ---- asyncio on the workers (pyparallel.asyncio) ------------------------------------

@final
class AioWaker:
    """The pump of a worker's asyncio loop: calls ``loop._px_pump()`` on the worker."""

    def arm(self, when: float, /) -> None:
        """Pump at monotonic time ``when`` (0: right after this batch); worker only."""
    def disarm(self) -> None: ...
    def wake(self) -> None:
        """Pump soon; any thread."""
    def claim(self) -> bool: ...
    def unclaim(self) -> None: ...
    @property
    def loop(self) -> Any: ...
    @property
    def worker(self) -> int: ...
    @property
    def armed(self) -> float | None: ...

def aio_worker_waker(make_loop: Callable[[AioWaker], Any], /) -> AioWaker | None: ...
# ---- WebSocket (pyparallel.http.websocket) ------------------------------------------

@final
class WebSocket:
    """A WebSocket connection: any thread may send, ping and close."""
    @property
    def closed(self) -> bool: ...
    @property
    def subprotocol(self) -> str | None: ...
    @property
    def compression(self) -> str | None: ...
    @property
    def writable(self) -> bool: ...
    @property
    def close_code(self) -> int | None: ...
    @property
    def close_reason(self) -> str | None: ...
    @property
    def path(self) -> str: ...
    def send(self, data: str | Buffer, /) -> None: ...
    def send_nowait(self, data: str | Buffer, /) -> None: ...
    def wait_writable(self, timeout: float | None = None, /) -> None: ...
    def send_text(self, data: str, /) -> None: ...
    def send_bytes(self, data: Buffer, /) -> None: ...
    def ping(self, data: bytes = b"", /) -> None: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...

def ws_refusal(request: object, /) -> tuple[int, dict[str, str]] | None:
    """None when request is a valid WebSocket upgrade, else (status, headers)."""
def ws_accept(request: object, on_message: Callable[[WebSocket, str | bytes], object],
              on_close: Callable[[WebSocket, int, str], object] | None = None, *,
              subprotocol: str | None = None, max_message: int = 0, max_frame: int = 0,
              ping_interval: float = 0.0, ping_timeout: float = 0.0, idle_timeout: float = 0.0,
              close_timeout: float = 0.0,
              headers: Sequence[tuple[str | bytes, str | bytes]] | None = None,
              deflate: tuple[int, int, bool, int] | None = None) -> WebSocket:
    """Answer 101 and make request's connection a WebSocket (inside its handler)."""
