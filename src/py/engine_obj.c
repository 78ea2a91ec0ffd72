/*
 * The Engine type: owns a px_engine_t, gives each engine thread a long-lived
 * thread state (attached lazily for callbacks, detached before the thread
 * sleeps), and pumps the main thread's queue.
 *
 * The thread state belongs to the thread, not to the worker: when a callback
 * blocks, the worker's other callbacks run on a spare thread meanwhile, and
 * both threads run Python at once.
 */
#include "binding.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>

typedef struct px_engine_obj px_engine_obj_t;

/* Per worker, whichever thread runs it: its engine, and its live timers. */
typedef struct worker_py {
    px_engine_obj_t *owner; /* borrowed: the engine joins its workers before it dies */
    struct px_py_timer *live_timers;
} worker_py_t;

/* Per engine thread: a worker's callbacks may run on two threads at once (one
 * blocked, one a spare that took the worker over), each with its own state. */
typedef struct thread_py {
    PyThreadState *ts;
    PyGILState_STATE gil_state;
    bool attached;
} thread_py_t;

static _Thread_local thread_py_t thread_py; /* engine threads only */

struct px_engine_obj {
    PyObject_HEAD
    px_engine_t *e;
    PyInterpreterState *interp;
    int nworkers;
    worker_py_t *wpy;
    px_proto_spec_t *specs; /* every spec handed to the engine; freed with it */
    _Atomic long clients;   /* client connections not yet closed */
    void **http_apps;       /* HTTP servers' application records */
    Py_ssize_t nhttp;
    unsigned handoff_ms;
    bool started, joined;
    _Atomic long tasks;     /* work, timers and map helpers not yet finished */
};

typedef struct exc_msg {
    px_msg_t msg;
    PyObject *exc;
} exc_msg_t;

/* On the main thread (Engine.wait): the exception becomes the one raised. */
static void exc_msg_fn(px_worker_t *w, px_msg_t *m)
{
    exc_msg_t *em = PX_CONTAINER_OF(m, exc_msg_t, msg);
    (void)w;
    PyErr_SetRaisedException(em->exc);
    PyMem_RawFree(em);
}

/* Discarded with the main queue; thread state attached. */
static void exc_msg_drop(px_msg_t *m)
{
    exc_msg_t *em = PX_CONTAINER_OF(m, exc_msg_t, msg);
    Py_DECREF(em->exc);
    PyMem_RawFree(em);
}

PyThreadState *px_py_attach(px_worker_t *w)
{
    thread_py_t *tp = &thread_py;
    (void)w;

    if (tp->ts == NULL) /* not an engine thread: it runs Python already */
        return PyThreadState_Get();
    if (!tp->attached) {
        PyEval_RestoreThread(tp->ts);
        tp->attached = true;
    }
    return tp->ts;
}

static void hook_thread_start(px_worker_t *w, void *arg)
{
    thread_py_t *tp = &thread_py;
    (void)w;
    (void)arg;

    tp->gil_state = PyGILState_Ensure();
    tp->ts = PyThreadState_Get();
    PyEval_SaveThread();
    tp->attached = false;
}

/* The thread may sleep: detach, so that it neither holds the GIL nor holds up
 * a stop-the-world collection. */
static void hook_before_wait(px_worker_t *w, void *arg)
{
    thread_py_t *tp = &thread_py;
    (void)w;
    (void)arg;
    if (tp->attached) {
        tp->attached = false;
        PyEval_SaveThread();
    }
}

static void hook_thread_stop(px_worker_t *w, void *arg)
{
    thread_py_t *tp = &thread_py;
    (void)arg;
    px_py_attach(w);
    px_py_http_thread_exit();
    tp->attached = false;
    tp->ts = NULL;
    PyGILState_Release(tp->gil_state);
}

void px_engine_post_exception(PyObject *engine, PyObject *exc)
{
    px_engine_obj_t *self = (px_engine_obj_t *)engine;
    exc_msg_t *m;

    if (self == NULL || self->e == NULL) {
        PyErr_SetRaisedException(exc);
        PyErr_WriteUnraisable(NULL);
        return;
    }
    m = PyMem_RawMalloc(sizeof(*m));
    if (m == NULL) {
        PyErr_SetRaisedException(exc);
        PyErr_WriteUnraisable(NULL);
        return;
    }
    px_msg_init(&m->msg, exc_msg_fn, exc_msg_drop);
    m->exc = exc;
    px_engine_post_main(self->e, &m->msg);
}

px_engine_t *px_py_engine_of(PyObject *engine)
{
    px_module_state_t *st = px_py_state();
    px_engine_obj_t *self = (px_engine_obj_t *)engine;

    if (st == NULL || !PyObject_TypeCheck(engine, st->engine_type)) {
        PyErr_SetString(PyExc_TypeError, "an Engine is needed");
        return NULL;
    }
    if (self->e == NULL || self->joined) {
        PyErr_SetString(PyExc_RuntimeError, "the engine has been shut down");
        return NULL;
    }
    return self->e;
}

struct px_py_timer **px_py_worker_timers(px_worker_t *w)
{
    return &((worker_py_t *)px_worker_udata(w))->live_timers;
}

PyObject *px_py_current_engine(void)
{
    px_worker_t *w = px_worker_current();
    worker_py_t *wp = w ? px_worker_udata(w) : NULL;

    return wp ? (PyObject *)wp->owner : NULL;
}

void px_py_engine_tasks_add(PyObject *engine, long delta)
{
    atomic_fetch_add(&((px_engine_obj_t *)engine)->tasks, delta);
}

void px_py_client_done(PyObject *engine)
{
    atomic_fetch_sub(&((px_engine_obj_t *)engine)->clients, 1);
}

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"workers", "backend", "max_connections", "recv_buffer_size",
                             "recv_buffers", "send_high_water", "send_low_water",
                             "turn_budget", "handoff_ms", NULL};
    px_engine_config_t cfg;
    const char *backend = "auto";
    int workers = 0;
    unsigned long long high = 0, low = 0, budget = 0;
    PyObject *handoff = NULL;
    px_thread_hooks_t hooks;
    px_engine_obj_t *self;
    int rc, i;

    px_engine_config_default(&cfg);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$isIIIKKKO:Engine", kwlist, &workers,
                                     &backend, &cfg.max_connections, &cfg.recv_buffer_size,
                                     &cfg.recv_buffers, &high, &low, &budget, &handoff))
        return NULL;
    if (handoff != NULL) {
        double handoff_ms = PyFloat_AsDouble(handoff);
        if (handoff_ms == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(handoff_ms >= 0 && handoff_ms <= 3600e3)) {
            PyErr_SetString(PyExc_ValueError,
                            "handoff_ms must be between 0 (no hand-off) and 3600000");
            return NULL;
        }
        /* A fraction of a millisecond still means "hand off": at the first tick. */
        cfg.handoff_ms = handoff_ms > 0 && handoff_ms < 1 ? 1 : (unsigned)handoff_ms;
    }
    if (workers < 0 || workers > 1024) {
        PyErr_SetString(PyExc_ValueError, "workers must be between 0 (one per CPU) and 1024");
        return NULL;
    }
    cfg.workers = workers;
    if (strcmp(backend, "auto") == 0)
        cfg.backend = PX_BACKEND_AUTO;
    else if (strcmp(backend, "uring") == 0 || strcmp(backend, "io_uring") == 0)
        cfg.backend = PX_BACKEND_URING;
    else if (strcmp(backend, "epoll") == 0)
        cfg.backend = PX_BACKEND_EPOLL;
    else {
        PyErr_Format(PyExc_ValueError, "backend must be 'auto', 'uring' or 'epoll', not '%s'",
                     backend);
        return NULL;
    }
    if (high)
        cfg.send_high_water = high;
    if (low)
        cfg.send_low_water = low;
    if (budget)
        cfg.turn_budget = budget;
    if (cfg.send_low_water > cfg.send_high_water) {
        PyErr_SetString(PyExc_ValueError, "send_low_water must not exceed send_high_water");
        return NULL;
    }
    self = (px_engine_obj_t *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->interp = PyInterpreterState_Get();
    hooks.thread_start = hook_thread_start;
    hooks.thread_stop = hook_thread_stop;
    hooks.before_wait = hook_before_wait;
    hooks.arg = self;
    rc = px_engine_create(&cfg, &hooks, &self->e);
    if (rc < 0) {
        Py_DECREF(self);
        if (cfg.backend != PX_BACKEND_URING)
            return px_py_raise_errno(rc, "engine");
        /* Only an explicit choice ends here: 'auto' falls back to epoll. */
        PyObject *err = PyObject_CallFunction(
            PyExc_OSError, "iN", -rc, PyUnicode_FromFormat(
                "io_uring was asked for (backend='uring' or PX_BACKEND=uring) but this "
                "system refuses it (%s); use backend='auto' or 'epoll'", strerror(-rc)));
        if (err != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(err), err);
            Py_DECREF(err);
        }
        return NULL;
    }
    self->nworkers = px_engine_worker_count(self->e);
    self->wpy = PyMem_RawCalloc((size_t)self->nworkers, sizeof(*self->wpy));
    if (self->wpy == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (i = 0; i < self->nworkers; i++) {
        self->wpy[i].owner = self;
        px_worker_set_udata(px_engine_worker(self->e, i), &self->wpy[i]);
    }
    px_py_note_workers(self->nworkers);
    self->handoff_ms = cfg.handoff_ms;
    return (PyObject *)self;
}

px_engine_t *px_py_engine_ptr(PyObject *engine)
{
    px_module_state_t *st = px_py_state();

    if (st == NULL || !PyObject_TypeCheck(engine, st->engine_type)) {
        PyErr_SetString(PyExc_TypeError, "an Engine is required");
        return NULL;
    }
    if (((px_engine_obj_t *)engine)->e == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the engine has been destroyed");
        return NULL;
    }
    return ((px_engine_obj_t *)engine)->e;
}

static px_engine_t *live_engine(px_engine_obj_t *self)
{
    if (self->e == NULL || self->joined) {
        PyErr_SetString(PyExc_RuntimeError, "the engine has been shut down");
        return NULL;
    }
    return self->e;
}

static px_proto_spec_t *add_spec(px_engine_obj_t *self, PyObject *protocol, unsigned *flags,
                                 unsigned *timeout_ms)
{
    px_proto_spec_t *spec = px_proto_spec_new((PyObject *)self, protocol, flags, timeout_ms);
    if (spec == NULL)
        return NULL;
    spec->next = self->specs;
    self->specs = spec;
    return spec;
}

static PyObject *engine_listen(PyObject *op, PyObject *args)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    px_endpoint_config_t ep = {.listen_fd = -1};
    px_proto_spec_t *spec;
    const char *host;
    PyObject *protocol;
    int port, rc;

    if (!PyArg_ParseTuple(args, "siO|i:listen", &host, &port, &protocol, &ep.listen_fd))
        return NULL;
    if (live_engine(self) == NULL)
        return NULL;
    spec = add_spec(self, protocol, &ep.sock_flags, &ep.idle_timeout_ms);
    if (spec == NULL)
        return NULL;
    ep.handler = &spec->handler;
    ep.udata = spec;
    Py_BEGIN_ALLOW_THREADS
    rc = px_engine_listen(self->e, host, port, &ep, NULL);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return px_py_raise_errno(rc, "listen");
    return PyLong_FromLong(rc);
}

static PyObject *engine_listen_http(PyObject *op, PyObject *args, PyObject *kwds)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    void *owned = NULL, **grown;
    PyObject *port;

    if (live_engine(self) == NULL)
        return NULL;
    grown = PyMem_Realloc(self->http_apps, sizeof(void *) * (size_t)(self->nhttp + 1));
    if (grown == NULL)
        return PyErr_NoMemory();
    self->http_apps = grown;
    port = px_py_listen_http(self->e, op, args, kwds, &owned);
    if (port != NULL)
        self->http_apps[self->nhttp++] = owned;
    return port;
}

static PyObject *engine_connect(PyObject *op, PyObject *args)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    px_endpoint_config_t ep = {.listen_fd = -1};
    px_proto_spec_t *spec;
    const char *host;
    PyObject *protocol;
    int port, rc;

    if (!PyArg_ParseTuple(args, "siO:connect", &host, &port, &protocol))
        return NULL;
    if (live_engine(self) == NULL)
        return NULL;
    spec = add_spec(self, protocol, &ep.sock_flags, &ep.idle_timeout_ms);
    if (spec == NULL)
        return NULL;
    ep.handler = &spec->handler;
    ep.udata = spec;
    atomic_fetch_add(&self->clients, 1);
    Py_BEGIN_ALLOW_THREADS
    rc = px_engine_connect(self->e, host, port, &ep);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        atomic_fetch_sub(&self->clients, 1);
        return px_py_raise_errno(rc, "connect");
    }
    Py_RETURN_NONE;
}

static PyObject *engine_start(PyObject *op, PyObject *unused)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    int rc;
    (void)unused;

    if (live_engine(self) == NULL)
        return NULL;
    if (self->started)
        Py_RETURN_NONE;
    rc = px_engine_start(self->e);
    if (rc < 0)
        return px_py_raise_errno(rc, "start");
    self->started = true;
    Py_RETURN_NONE;
}

static PyObject *engine_shutdown(PyObject *op, PyObject *args)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    double timeout = 5.0;

    if (!PyArg_ParseTuple(args, "|d:shutdown", &timeout))
        return NULL;
    if (timeout < 0)
        timeout = 0;
    if (self->e && !self->joined)
        px_engine_shutdown(self->e, (unsigned)(timeout * 1000.0));
    Py_RETURN_NONE;
}

static void do_join(px_engine_obj_t *self)
{
    if (self->e == NULL || self->joined)
        return;
    Py_BEGIN_ALLOW_THREADS
    px_engine_join(self->e);
    Py_END_ALLOW_THREADS
    self->joined = true;
    for (int i = 0; i < self->nworkers; i++) /* timers die with their wheel */
        px_py_timers_release(&self->wpy[i].live_timers);
}

static PyObject *engine_join(PyObject *op, PyObject *unused)
{
    (void)unused;
    do_join((px_engine_obj_t *)op);
    Py_RETURN_NONE;
}

/* Raise the next exception a worker queued, if any. Returns -1 when raised. */
static int raise_queued(px_engine_obj_t *self)
{
    px_msg_t *m;

    while ((m = px_engine_main_pop(self->e)) != NULL) {
        m->fn(NULL, m);
        /* A worker's exception, or a main-thread call that raised: run()
         * re-raises it. */
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* wait(timeout) -> finished: sleep until a message, a signal or the timeout,
 * then run main-thread messages; raises what workers queued. */
static PyObject *engine_wait(PyObject *op, PyObject *args)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    double timeout = 0.0;
    struct pollfd p;
    int rc;

    if (!PyArg_ParseTuple(args, "|d:wait", &timeout))
        return NULL;
    if (self->e == NULL)
        Py_RETURN_TRUE;
    if (raise_queued(self) < 0)
        return NULL;
    p.fd = px_engine_main_fd(self->e);
    p.events = POLLIN;
    Py_BEGIN_ALLOW_THREADS
    rc = poll(&p, 1, timeout <= 0 ? 0 : (int)(timeout * 1000.0));
    Py_END_ALLOW_THREADS
    if (rc < 0 && errno == EINTR && PyErr_CheckSignals() < 0)
        return NULL;
    if (raise_queued(self) < 0)
        return NULL;
    return PyBool_FromLong(self->started && px_engine_finished(self->e));
}

static PyObject *stats_dict(px_worker_stats_t *s)
{
    PyObject *d = PyDict_New(), *v;

    if (d == NULL)
        return NULL;
#define PX_STATS_PUT(name)                                                   \
    v = PyLong_FromUnsignedLongLong(PX_STAT_GET(s, name));                   \
    if (v == NULL || PyDict_SetItemString(d, #name, v) < 0) {                \
        Py_XDECREF(v);                                                       \
        Py_DECREF(d);                                                        \
        return NULL;                                                         \
    }                                                                        \
    Py_DECREF(v);
    PX_STATS_FIELDS(PX_STATS_PUT)
#undef PX_STATS_PUT
    return d;
}

static PyObject *engine_worker_stats(PyObject *op, PyObject *unused)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    PyObject *list;
    int i;
    (void)unused;

    if (self->e == NULL)
        return PyList_New(0);
    list = PyList_New(self->nworkers);
    if (list == NULL)
        return NULL;
    for (i = 0; i < self->nworkers; i++) {
        PyObject *d = stats_dict(px_worker_stats(px_engine_worker(self->e, i)));
        if (d == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, d);
    }
    return list;
}

static PyObject *get_backend(PyObject *op, void *c)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    (void)c;
    return PyUnicode_FromString(self->e ? px_engine_backend_name(self->e) : "none");
}

static PyObject *get_uring_error(PyObject *op, void *c)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    int err = self->e ? px_engine_uring_error(self->e) : 0;
    (void)c;
    if (err == 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(is)", -err, strerror(-err));
}

static PyObject *get_workers(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(((px_engine_obj_t *)op)->nworkers);
}

static PyObject *get_finished(PyObject *op, void *c)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    (void)c;
    return PyBool_FromLong(self->e == NULL || self->joined ||
                           (self->started && px_engine_finished(self->e)));
}

static PyObject *get_started(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(((px_engine_obj_t *)op)->started);
}

static PyObject *get_tasks(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(atomic_load(&((px_engine_obj_t *)op)->tasks));
}

static PyObject *get_handoff_ms(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLong(((px_engine_obj_t *)op)->handoff_ms);
}

static PyObject *get_clients(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(atomic_load(&((px_engine_obj_t *)op)->clients));
}

static void engine_dealloc(PyObject *op)
{
    px_engine_obj_t *self = (px_engine_obj_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    px_proto_spec_t *spec, *next;

    if (self->e) {
        if (self->started && !self->joined)
            px_engine_shutdown(self->e, 0);
        do_join(self);
        px_engine_main_discard(self->e); /* their drops need the thread state */
        Py_BEGIN_ALLOW_THREADS
        px_engine_destroy(self->e);
        Py_END_ALLOW_THREADS
        self->e = NULL;
    }
    for (spec = self->specs; spec; spec = next) {
        next = spec->next;
        px_proto_spec_free(spec);
    }
    for (Py_ssize_t i = 0; i < self->nhttp; i++)
        px_py_http_app_free(self->http_apps[i]);
    PyMem_Free(self->http_apps);
    PyMem_RawFree(self->wpy);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef engine_methods[] = {
    {"listen", engine_listen, METH_VARARGS,
     "listen(host, port, protocol, fd=-1) -> bound port; fd: a listening socket the\n"
     "engine takes over as the first worker's listener"},
    {"connect", engine_connect, METH_VARARGS, "connect(host, port, protocol)"},
    {"listen_http", (PyCFunction)(void (*)(void))engine_listen_http, METH_VARARGS | METH_KEYWORDS,
     "listen_http(host, port, app, static=None, **limits) -> bound port"},
    {"start", engine_start, METH_NOARGS, "Start the worker threads."},
    {"shutdown", engine_shutdown, METH_VARARGS,
     "shutdown(timeout=5.0): stop accepting, drain sends, close; abort after timeout."},
    {"join", engine_join, METH_NOARGS, "Wait for the workers to exit."},
    {"wait", engine_wait, METH_VARARGS,
     "wait(timeout=0.0) -> finished: run main-thread work, re-raise worker exceptions."},
    {"worker_stats", engine_worker_stats, METH_NOARGS, "Counters of each worker."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef engine_getset[] = {
    {"backend", get_backend, NULL, "'io_uring' or 'epoll'", NULL},
    {"uring_error", get_uring_error, NULL, "why io_uring was not used, or None", NULL},
    {"workers", get_workers, NULL, "number of worker threads", NULL},
    {"started", get_started, NULL, NULL, NULL},
    {"finished", get_finished, NULL, "True once every worker has exited", NULL},
    {"clients", get_clients, NULL, "client connections not yet closed", NULL},
    {"tasks", get_tasks, NULL, "submitted work and timers not yet finished", NULL},
    {"handoff_ms", get_handoff_ms, NULL,
     "a worker blocked this long in a callback goes to a spare thread (0: never)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot engine_slots[] = {
    {Py_tp_doc, "The completion engine: worker threads, rings, connections."},
    {Py_tp_new, engine_new},
    {Py_tp_methods, engine_methods},
    {Py_tp_getset, engine_getset},
    {Py_tp_dealloc, engine_dealloc},
    {0, NULL},
};

PyType_Spec px_engine_type_spec = {
    .name = "pyparallel._core.Engine",
    .basicsize = sizeof(px_engine_obj_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = engine_slots,
};
