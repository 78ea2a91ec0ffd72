/*
 * The Engine object's layout (private to engine_obj.c and its properties,
 * engine_props.c).
 */
#ifndef PX_PY_ENGINE_OBJ_H
#define PX_PY_ENGINE_OBJ_H

#include <pthread.h>
#include <stdatomic.h>

#include "binding.h"

typedef struct px_py_engine_obj px_py_engine_obj_t;

/* Per worker, whichever thread runs it: its engine, and its live timers. */
typedef struct worker_py {
    px_py_engine_obj_t *owner; /* borrowed: the engine joins its workers before it dies */
    struct px_py_timer *live_timers;
    _Atomic(PyObject *) aio_waker; /* pyparallel.asyncio's pump of this worker (aio_waker.c) */
} worker_py_t;

struct px_py_engine_obj {
    PyObject_HEAD px_engine_t *e;
    PyInterpreterState *interp;
    int nworkers;
    worker_py_t *wpy;
    px_py_proto_spec_t *specs; /* every spec handed to the engine; freed with it */
    /* Clients' specs, each freed once its client is over (any worker), the
     * rest with the engine: */
    pthread_mutex_t clients_lock;
    px_py_proto_spec_t *client_specs; /* clients_lock; linked by next and prev */
    _Atomic long clients;             /* client connections not yet closed */
    void **http_apps;                 /* HTTP servers' application records */
    Py_ssize_t nhttp;
    unsigned handoff_ms;
    bool started, joined;
    _Atomic long tasks;        /* work, timers and map helpers not yet finished */
    _Atomic bool raise_errors; /* run(raise_errors=True): see px_py_report */
};

/* Engine's attributes (engine_props.c). */
extern PyGetSetDef px_py_engine_getset[];

#endif
