/* Shared declarations of the CPython binding (the only code that includes Python.h). */
#ifndef PX_PY_BINDING_H
#define PX_PY_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "px/engine.h"

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

/* Module state: every type and exception the binding owns. */
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
    PyObject *engine_error; /* pyparallel.EngineError (an OSError) */
    PyObject *stm_error;    /* pyparallel.TransactionError */
    PyObject *stm_io_error; /* pyparallel.IOInTransactionError */
} px_module_state_t;

/* Raise an OSError-derived exception from a -errno result; returns NULL. The one
 * place where engine errors become Python exceptions. */
PyObject *px_py_raise_errno(int err, const char *what);

/* Per-server (or per-client) protocol description, built once at registration
 * from the protocol class so that callbacks look nothing up by name. */
typedef struct px_proto_spec {
    PyObject *cls;
    PyObject *engine;           /* the Engine object (borrowed: it owns the spec) */
    PyObject *initial_bytes;    /* bytes-like, callable, or NULL */
    PyObject *next_bytes;       /* bytes-like, callable, or NULL */
    bool has_made, has_data, has_lines, has_complete, has_lost, has_handler;
    bool line_mode;
    size_t max_line_length;
    unsigned rate_limit_ms;
    px_handler_t handler;
    struct px_proto_spec *next;
} px_proto_spec_t;

/* Build a spec from a protocol class; NULL with an exception set on error. */
px_proto_spec_t *px_proto_spec_new(PyObject *engine, PyObject *cls,
                                   unsigned *sock_flags, unsigned *timeout_ms);
void px_proto_spec_free(px_proto_spec_t *spec);

/* Engine-side helpers used by the protocol dispatch. */
PyThreadState *px_py_attach(px_worker_t *w);        /* attach this thread's thread state */

/* Hand-off (px/engine.h). Application code runs with the worker released, so
 * that a spare thread can take the worker over while the code blocks:
 *
 *     bool released = px_py_release(w);
 *     r = PyObject_Call...(...);
 *     px_py_reacquire(w, released);
 *
 * and the binding's engine calls made from that code (Transport methods) are
 * bracketed the other way round with px_py_engine_enter / px_py_engine_leave.
 * Both brackets leave the thread state attached. */
static inline bool px_py_release(px_worker_t *w) { return px_worker_release(w); }

static inline void px_py_reacquire(px_worker_t *w, bool released)
{
    if (released) {
        px_worker_reacquire(w); /* may sleep, detached, until w comes back */
        px_py_attach(w);
    }
}

static inline bool px_py_engine_enter(px_worker_t *w)
{
    bool reacquired = px_worker_reacquire(w);
    if (reacquired)
        px_py_attach(w);
    return reacquired;
}

static inline void px_py_engine_leave(px_worker_t *w, bool entered)
{
    if (entered)
        px_worker_release(w);
}
void px_py_report(px_proto_spec_t *spec, PyObject *transport, const char *syscall);
void px_py_client_done(PyObject *engine);
/* Queue exc (stolen) for the main thread; run() re-raises it. */
void px_engine_post_exception(PyObject *engine, PyObject *exc);

/* The px_engine_t of an Engine object that has not been shut down, or NULL
 * with TypeError/RuntimeError set. */
px_engine_t *px_py_engine_of(PyObject *engine);
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
int px_py_send(px_conn_t *c, PyObject *obj);

/* The Transport of the callback running on this thread (borrowed), or NULL. */
PyObject *px_py_current_transport(void);

/* Types, created from specs at module exec. */
extern PyType_Spec px_engine_type_spec;
extern PyType_Spec px_transport_type_spec;
extern PyType_Spec px_sendfile_type_spec;
extern PyType_Spec px_request_type_spec;
extern PyType_Spec px_timer_type_spec;
extern PyType_Spec px_rwlock_type_spec;
extern PyType_Spec px_rwlock_guard_type_spec;
extern PyType_Spec px_locked_dict_type_spec;
extern PyType_Spec px_locked_list_type_spec;

/* JSON (json.c): a growable byte buffer and the encoder writing into it. */
typedef struct px_jbuf {
    char *data;
    size_t len, cap;
} px_jbuf_t;
/* Append obj as JSON; on error (-1, exception set) b->len is unchanged. */
int px_json_encode(px_jbuf_t *b, PyObject *obj, PyObject *dflt);
void px_jbuf_free(px_jbuf_t *b);
PyObject *px_py_json_dumps(PyObject *module, PyObject *args, PyObject *kwds);

/* Readers-writer locks (rwlock.c), for the protected containers: acquire
 * returns 1, 0 (not blocking, not free) or -1 with an exception; release 0 or
 * -1 (not held by this thread). */
int px_rwlock_acquire(PyObject *lock, bool write, bool blocking);
int px_rwlock_release(PyObject *lock, bool write);
PyObject *px_rwlock_new(void);
/* The lock's context manager for reading or writing (new reference). */
PyObject *px_rwlock_guard(PyObject *lock, bool write);

/* Module functions of the runtime (work.c, mainthread.c). */
PyObject *px_py_submit(PyObject *module, PyObject *args, PyObject *kwds);
PyObject *px_py_current_engine_fn(PyObject *module, PyObject *unused);
PyObject *px_py_post_main(PyObject *module, PyObject *args);

/* HTTP (http.c). */
void px_py_set_request_type(PyTypeObject *tp);
PyObject *px_py_listen_http(px_engine_t *e, PyObject *engine, PyObject *args, PyObject *kwds,
                            void **owned);
void px_py_http_app_free(void *app);
void px_py_http_thread_exit(void);  /* free this thread's HTTP scratch memory */

/* Stats (stats.c): module functions, added at module exec. */
extern PyMethodDef px_stats_methods[];
/* The engine inside an Engine object (borrowed; valid while the object lives),
 * or NULL with TypeError. */
px_engine_t *px_py_engine_ptr(PyObject *engine);
/* An engine with this many workers exists: thread ids of other threads go above. */
void px_py_note_workers(int nworkers);
/* Main thread 0, worker i is i + 1, other threads numbered after the workers. */
int px_py_thread_seq_id(void);
/* Sharing (share.c): px.share(obj) makes an object graph immortal on the
 * free-threaded versions whose layout is tested; counts and keeps it elsewhere. */
int px_py_share_init(void); /* at module exec: 0, or -1 with an exception set */
PyObject *px_py_share(PyObject *module, PyObject *roots); /* share(*objs) */
PyObject *px_py_share_stats(PyObject *module, PyObject *unused);
PyObject *px_py_share_info(PyObject *module, PyObject *unused);

px_module_state_t *px_py_state_of_type(PyTypeObject *tp);
px_module_state_t *px_py_state(void);

#endif
