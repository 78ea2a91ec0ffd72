/* Shared declarations of the CPython binding (the only code that includes Python.h). */
#ifndef PX_PY_BINDING_H
#define PX_PY_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>

#include "px/engine.h"
#include "threadstate.h"

#if PY_VERSION_HEX < 0x030D0000
/* Before 3.13 there is no free-threading and no critical sections: the GIL is
 * the critical section. */
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#endif

#if PY_VERSION_HEX < 0x030D0000
/* 3.11/3.12: a strong-reference dict lookup arrived in 3.13. */
static inline int PyDict_GetItemRef(PyObject *d, PyObject *key, PyObject **result)
{
    PyObject *v = PyDict_GetItemWithError(d, key);
    *result = v ? Py_NewRef(v) : NULL;
    return v ? 1 : (PyErr_Occurred() ? -1 : 0);
}
#endif

#if PY_VERSION_HEX < 0x030C0000
/* 3.11: the raised-exception API arrived in 3.12. */
static inline PyObject *PyErr_GetRaisedException(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

static inline void PyErr_SetRaisedException(PyObject *exc)
{
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}
#endif

struct px_py_share; /* share.c's record of what share() did */

/* Module state: everything the binding keeps beyond one object's life (types,
 * exceptions, counters). Nothing in src/py is a process-wide static; what is
 * per thread (the running transport, transaction, locks held, thread state)
 * is a thread-local, since it describes the thread and not the module. Code
 * reaches this from the module (module functions), from a type it defined
 * (px_py_state_of_type), or from an Engine (px_py_engine_state), the way
 * CPython's own modules do. */
typedef struct px_module_state {
    PyTypeObject *engine_type;
    PyTypeObject *transport_type;
    PyTypeObject *sendfile_type;
    PyTypeObject *request_type;
    PyTypeObject *timer_type;
    PyTypeObject *rwlock_type;
    PyTypeObject *rwlock_guard_type;
    PyTypeObject *locked_dict_type;
    PyTypeObject *locked_list_type;
    PyTypeObject *http_stream_type;
    PyTypeObject *http_deferred_type;
    PyObject *engine_error; /* pyparallel.EngineError (an OSError and a RuntimeError) */
    PyObject *stm_error;    /* pyparallel.TransactionError */
    PyObject *stm_io_error; /* pyparallel.IOInTransactionError */
    /* HTTP (src/py/http_*.c), set by the first listen_http: */
    PyObject *http_error;   /* pyparallel.http.HttpError: a status, not a 500 */
    PyObject *json_loads;   /* json.loads, for Request.json() */
    PyObject *parse_qsl;    /* urllib.parse.parse_qsl: query arguments */
    PyObject *header_range; /* pyparallel.http._original's: request.range */
    PyObject *new_response; /* and request.response, when first read */
    /* Thread ids and debug lines (stats.c). */
    _Atomic int seq_floor;   /* largest worker count of any engine */
    _Atomic int seq_others;  /* other threads numbered so far */
    _Atomic int debug_state; /* -1: PX_DEBUG not read yet, 0 off, 1 on */
    _Atomic unsigned long long debug_epoch;
    _Atomic unsigned work_rotor;            /* work.c: where ties between workers go */
    struct px_py_share *share;              /* share.c; NULL until module exec */
    PyTypeObject *aio_waker_type;           /* aio_waker.c */
    _Atomic(PyObject *) aio_drive_protocol; /* pyparallel.asyncio's drivers of awaitables */
    _Atomic(PyObject *) aio_drive_http;     /* returned by callbacks (aio_drive.c) */
    /* websocket.c */
    PyTypeObject *websocket_type;
} px_module_state_t;

/* The module definition: types reach their module (and its state) through it. */
extern PyModuleDef px_py_module_def;

/* The state of the module that defined tp or one of its bases (a Python
 * subclass of LockedDict finds its base's); NULL with TypeError when none. */
px_module_state_t *px_py_state_of_type(PyTypeObject *tp);

/* The state of the module whose Engine type made `engine` (Engine has no
 * subclasses, so this is one pointer load). engine must be an Engine. */
static inline px_module_state_t *px_py_engine_state(PyObject *engine)
{
    return (px_module_state_t *)PyType_GetModuleState(Py_TYPE(engine));
}

/* Engine results become Python exceptions here only (errors.c).
 *
 * px_py_errno_error: a new exception for the -errno `err` (a new reference, or
 * NULL with an exception set), made as type(errno, strerror[, what]) where
 * `what`, when not NULL, names the operation (it shows as OSError's filename).
 * type NULL picks by errno: MemoryError for ENOMEM, EngineError for ESHUTDOWN
 * (the engine takes no more work), else OSError, which itself picks the
 * errno's subclass (ECONNREFUSED: ConnectionRefusedError, ...). Any other type
 * is used as given (a lost connection is a ConnectionError whatever the errno).
 *
 * px_py_raise_errno: raise the exception px_py_errno_error(st, NULL, err, what)
 * makes; returns NULL. */
PyObject *px_py_errno_error(px_module_state_t *st, PyObject *type, int err, const char *what);
PyObject *px_py_raise_errno(px_module_state_t *st, int err, const char *what);
/* Print exc (stolen) and its traceback on sys.stderr: how the binding logs
 * an exception nobody else takes (a handler's, a callback's). */
void px_py_display_exception(PyObject *exc);
/* Create EngineError in st and add it to m; module exec, -1 with an exception. */
int px_py_errors_init(PyObject *m, px_module_state_t *st);

/* Per-server (or per-client) protocol description, built once at registration
 * from the protocol class so that callbacks look nothing up by name. */
typedef struct px_py_proto_spec {
    PyObject *cls;
    PyObject *engine;        /* the Engine object (borrowed: it owns the spec) */
    PyObject *initial_bytes; /* bytes-like, callable, or NULL */
    PyObject *next_bytes;    /* bytes-like, callable, or NULL */
    bool has_made, has_data, has_lines, has_complete, has_lost, has_handler;
    bool line_mode;
    size_t max_line_length;
    unsigned rate_limit_ms;
    px_handler_t handler;
    struct px_py_proto_spec *next;
    bool has_failed; /* connection_failed(exc): a client that never connected */
    bool is_factory; /* cls is a callable returning instances, not a class */
    /* A factory's: one spec per class its instances had (factory.c), each
     * with the per-connection idle timeout that class sets. */
    _Atomic(struct px_py_proto_spec *) made;
    struct px_py_proto_spec *next_made;
    unsigned idle_timeout_ms;
    bool is_client;                /* a client's own: freed when it closes or never connects */
    struct px_py_proto_spec *prev; /* a client's: the engine's list of clients' specs */
    /* PyParallel's other callbacks: client_created(t) before connection_made,
     * connection_closed(t) on a close without error, send_failed(t, exc) and
     * recv_failed(t, exc) when writing or reading failed. */
    bool has_created, has_closed, has_send_failed, has_recv_failed;
    bool has_recv_shutdown; /* the peer's end leaves the connection open for sending */
    bool has_send_shutdown;
    bool no_output_backpressure; /* output_backpressure = False: the protocol pauses itself */
} px_py_proto_spec_t;

/* Build a spec from a protocol class or factory; NULL with an exception set
 * on error. */
px_py_proto_spec_t *px_py_proto_spec_new(PyObject *engine, PyObject *cls, unsigned *sock_flags,
                                         unsigned *timeout_ms);
/* Read cls's protocol attributes into spec: 0, or -1 with an exception set. */
int px_py_proto_spec_fill(px_py_proto_spec_t *spec, PyObject *cls, unsigned *sock_flags,
                          unsigned *timeout_ms);
void px_py_proto_spec_free(px_py_proto_spec_t *spec);
/* Factories (factory.c). The spec of what factory spec's call returned
 * (borrowed: it lives as long as spec), or NULL with TypeError when that is
 * not a protocol instance. */
px_py_proto_spec_t *px_py_factory_spec(px_py_proto_spec_t *spec, PyObject *instance);
/* Free the specs px_py_factory_spec made for spec; visit or clear their
 * references (the engine's traverse and clear). */
void px_py_factory_specs_free(px_py_proto_spec_t *spec);
int px_py_factory_specs_traverse(px_py_proto_spec_t *spec, visitproc visit, void *arg);
void px_py_factory_specs_clear(px_py_proto_spec_t *spec);

/* Report the exception set by a connection callback named `syscall`: to the
 * protocol's exception_handler when it has one. What no handler takes (or what
 * the handler raised) is counted in unhandled_errors and logged with its
 * traceback, or queued for run() to re-raise when the engine's raise_errors is
 * set; the caller closes the connection either way. A failed outbound connect
 * ("connect") is the program's own request: it always goes to run(). */
void px_py_report(px_py_proto_spec_t *spec, PyObject *transport, const char *syscall);
/* A client never connected (client.c): the handler's on_connect_error. */
void px_py_on_connect_error(void *udata, const px_connect_error_t *ce);
/* Engine.connect's options (client.c): timeout and attempt_delay (seconds,
 * None: the engine's defaults) into ep, worker (None, "any", "caller", an
 * index) into *w (NULL: round robin). 0, or -1 with ValueError. */
int px_py_connect_options(px_engine_t *e, PyObject *timeout, PyObject *delay, PyObject *worker,
                          px_endpoint_config_t *ep, px_worker_t **w);
/* A client's connection is over (closed, or never made): free its spec
 * (engine_obj.c; any thread with a thread state). Other specs stay. */
void px_py_client_spec_done(px_py_proto_spec_t *spec);
void px_py_client_done(PyObject *engine);
/* Queue exc (stolen) for the main thread; run() re-raises it. */
void px_py_post_exception(PyObject *engine, PyObject *exc);
/* run(raise_errors=...): unhandled exceptions of connection callbacks are
 * re-raised by run() instead of logged. Any thread. */
bool px_py_engine_raise_errors(PyObject *engine);

/* The px_engine_t of an Engine object that has not been shut down, or NULL
 * with TypeError (not an Engine) or EngineError (shut down) set. */
px_engine_t *px_py_engine_of(px_module_state_t *st, PyObject *engine);
/* The Engine whose worker is calling (borrowed), or NULL off the workers. */
PyObject *px_py_current_engine(void);
/* Work, timers and map helpers in flight: run() serves while any remain. */
void px_py_engine_tasks_add(PyObject *engine, long delta);

/* Timers (timers.c). */
struct px_py_timer;
/* The list of a worker's live timers (its engine's record of that worker). */
struct px_py_timer **px_py_worker_timers(px_worker_t *w);
/* Release every timer of such a list; its worker has stopped. */
void px_py_timers_release(struct px_py_timer **live);

/* Append the sendable `obj` to conn's output. 0, or -1 with an exception set. */
int px_py_send(px_module_state_t *st, px_conn_t *c, PyObject *obj);
/* The same from a thread that does not own the connection: posted through its
 * handle, all of obj or nothing. 1 taken, 0 refused (over the high-water
 * mark, unless force), -1 with an exception set (ConnectionError once closed;
 * TypeError for a sendfile(), which only the owning worker can open and send).
 * The owner posts too (force) while other threads' calls are pending, so as
 * not to overtake them. */
struct px_handle;
int px_py_send_posted(px_module_state_t *st, struct px_handle *h, PyObject *obj, bool force);
/* obj is or holds a sendfile(). */
bool px_py_sendable_has_file(px_module_state_t *st, PyObject *obj);

/* The Transport of the callback running on this thread (borrowed), or NULL. */
PyObject *px_py_current_transport(void);

/* Types, created from specs at module exec. */
extern PyType_Spec px_py_engine_type_spec;
extern PyType_Spec px_py_transport_type_spec;
extern PyType_Spec px_py_sendfile_type_spec;
extern PyType_Spec px_py_request_type_spec;
extern PyType_Spec px_py_timer_type_spec;
extern PyType_Spec px_py_rwlock_type_spec;
extern PyType_Spec px_py_rwlock_guard_type_spec;
extern PyType_Spec px_py_locked_dict_type_spec;
extern PyType_Spec px_py_locked_list_type_spec;

/* JSON (json.c): a growable byte buffer and the encoder writing into it. */
typedef struct px_py_jbuf {
    char *data;
    size_t len, cap;
} px_py_jbuf_t;
/* Append obj as JSON; on error (-1, exception set) b->len is unchanged. */
int px_py_json_encode(px_py_jbuf_t *b, PyObject *obj, PyObject *dflt);
void px_py_jbuf_free(px_py_jbuf_t *b);
PyObject *px_py_json_dumps(PyObject *module, PyObject *args, PyObject *kwds);

/* Readers-writer locks (rwlock.c), for the protected containers: acquire
 * returns 1, 0 (not blocking, not free) or -1 with an exception; release 0 or
 * -1 (not held by this thread). */
int px_py_rwlock_acquire(PyObject *lock, bool write, bool blocking);
int px_py_rwlock_release(PyObject *lock, bool write);
PyObject *px_py_rwlock_new(px_module_state_t *st);
/* The lock's context manager for reading or writing (new reference). */
PyObject *px_py_rwlock_guard(PyObject *lock, bool write);

/* Module functions of the runtime (work.c, mainthread.c). */
PyObject *px_py_submit(PyObject *module, PyObject *args, PyObject *kwds);
PyObject *px_py_tasks_hold(PyObject *module, PyObject *args);
PyObject *px_py_current_engine_fn(PyObject *module, PyObject *unused);
PyObject *px_py_post_main(PyObject *module, PyObject *args);

/* HTTP (http_*.c). */
extern PyMethodDef px_py_http_methods[]; /* module functions, added at exec */
extern PyMethodDef px_py_http_stream_methods[];
extern PyType_Spec px_py_http_stream_type_spec;
extern PyMethodDef px_py_http_deferred_methods[];
extern PyType_Spec px_py_http_deferred_type_spec;
/* bytes of s[0..len) with ASCII letters lower-cased (asgi_request.c) */
PyObject *px_py_lower_bytes(const char *s, size_t len);
extern PyMethodDef px_py_asgi_methods[];          /* asgi_request.c */
extern PyMethodDef px_py_asgi_response_methods[]; /* asgi_response.c */
extern PyMethodDef px_py_websocket_methods[];
extern PyType_Spec px_py_websocket_type_spec;
PyObject *px_py_listen_http(px_engine_t *e, PyObject *engine, PyObject *args, PyObject *kwds,
                            void **owned);
void px_py_http_app_free(void *app);
/* The application's Python references, for its Engine's traverse and clear
 * (only while no engine thread can call into it). */
int px_py_http_app_traverse(void *app, visitproc visit, void *arg);
void px_py_http_app_clear(void *app);
void px_py_http_thread_exit(void); /* free this thread's HTTP scratch memory */
void px_py_wsgi_thread_exit(void); /* let go of this thread's WSGI environ templates */

/* Stats (stats.c): module functions, added at module exec. */
extern PyMethodDef px_py_stats_methods[];
/* The engine inside an Engine object (borrowed; valid while the object lives),
 * or NULL with TypeError (not an Engine) or EngineError (destroyed) set. */
px_engine_t *px_py_engine_ptr(px_module_state_t *st, PyObject *engine);
/* An engine with this many workers exists: thread ids of other threads go above. */
void px_py_note_workers(px_module_state_t *st, int nworkers);
/* Main thread 0, worker i is i + 1, other threads numbered after the workers. */
int px_py_thread_seq_id(px_module_state_t *st);
/* Sharing (share.c): px.share(obj) makes an object graph immortal on the
 * free-threaded versions whose layout is tested; counts and keeps it elsewhere. */
/* At module exec: 0, or -1 with an exception set. */
int px_py_share_init(px_module_state_t *st);
/* At module free: what share() kept stays alive (shared objects are never freed). */
void px_py_share_free(px_module_state_t *st);
PyObject *px_py_share(PyObject *module, PyObject *roots); /* share(*objs) */
PyObject *px_py_share_stats(PyObject *module, PyObject *unused);
PyObject *px_py_share_info(PyObject *module, PyObject *unused);
/* Give o, owned by the calling thread, shared reference counting for the rest
 * of its life (on the interpreters where share() writes the fields; a no-op
 * elsewhere): for a value other threads will read and release, which would
 * otherwise queue each release to this thread to merge. Any thread. */
void px_py_share_hand_over(PyObject *o);

/* asyncio on the workers (aio_*.c). */
extern PyType_Spec px_py_aio_waker_type_spec;
extern PyMethodDef px_py_aio_methods[];
/* The engine is joined: forget the worker's pump (its timer died with the
 * worker), tell its loop, drop it. Main thread. */
void px_py_aio_worker_done(_Atomic(PyObject *) *slot);
/* r is an awaitable a callback returned (a coroutine, a future...), which
 * pyparallel.asyncio drives on the worker's loop. */
bool px_py_aio_awaitable(PyObject *r);
/* Drive the awaitable r a protocol callback returned as a task on the worker's
 * loop; its result is sent on transport when it is done. Owned. 0, or -1
 * with an exception set. */
int px_py_aio_drive_protocol(px_module_state_t *st, PyObject *transport, PyObject *r);
/* The response of an async HttpServer handler: r (stolen) driven on the
 * worker's loop, waited for (released) when it suspends; a new reference to
 * its result, or NULL with an exception set. */
PyObject *px_py_aio_drive_http(px_module_state_t *st, PyObject *r, PyObject *req);

#endif
