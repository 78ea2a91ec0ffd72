/*
 * The Engine type: owns a px_engine_t and what the binding handed it
 * (protocol specs, HTTP applications), gives its threads their thread states
 * (threadstate.c), and pumps the main thread's queue.
 */
#include "binding.h"
#include "px/listen_fds.h"
#include "engine_obj.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

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

void px_py_post_exception(PyObject *engine, PyObject *exc)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)engine;
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

px_engine_t *px_py_engine_of(px_module_state_t *st, PyObject *engine)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)engine;

    if (!PyObject_TypeCheck(engine, st->engine_type)) {
        PyErr_SetString(PyExc_TypeError, "an Engine is needed");
        return NULL;
    }
    if (self->e == NULL || self->joined) {
        PyErr_SetString(st->engine_error, "the engine has been shut down");
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
    atomic_fetch_add(&((px_py_engine_obj_t *)engine)->tasks, delta);
}

bool px_py_engine_raise_errors(PyObject *engine)
{
    return engine != NULL && atomic_load_explicit(&((px_py_engine_obj_t *)engine)->raise_errors,
                                                  memory_order_relaxed);
}

void px_py_client_done(PyObject *engine)
{
    atomic_fetch_sub(&((px_py_engine_obj_t *)engine)->clients, 1);
}

void px_py_client_spec_done(px_py_proto_spec_t *spec)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)spec->engine;

    if (!spec->is_client)
        return;
    pthread_mutex_lock(&self->clients_lock);
    if (spec->prev)
        spec->prev->next = spec->next;
    else
        self->client_specs = spec->next;
    if (spec->next)
        spec->next->prev = spec->prev;
    pthread_mutex_unlock(&self->clients_lock);
    px_py_proto_spec_free(spec);
}

/* Only an explicit choice of io_uring ends here ('auto' falls back to epoll):
 * an EngineError whose text says what to do. Returns NULL. */
static PyObject *refused_uring(px_module_state_t *st, int rc)
{
    PyObject *exc = px_py_errno_error(st, st->engine_error, rc, NULL);
    PyObject *text = PyUnicode_FromFormat(
        "io_uring was asked for (backend='uring' or PX_BACKEND=uring) but this "
        "system refuses it (%s); use backend='auto' or 'epoll'",
        strerror(-rc));

    if (exc != NULL && text != NULL && PyObject_SetAttrString(exc, "strerror", text) == 0)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_XDECREF(text);
    Py_XDECREF(exc);
    return NULL;
}

/* A duration in milliseconds between 0 and max into *out; -1 with an
 * exception (message: the range) when it is not. A fraction of a millisecond
 * still means "not 0": 1 (the first tick). */
static int ms_option(PyObject *value, double max, const char *message, unsigned *out)
{
    double ms = PyFloat_AsDouble(value);

    if (ms == -1.0 && PyErr_Occurred())
        return -1;
    if (!(ms >= 0 && ms <= max)) {
        PyErr_SetString(PyExc_ValueError, message);
        return -1;
    }
    *out = ms > 0 && ms < 1 ? 1 : (unsigned)ms;
    return 0;
}

static PyObject *engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    px_module_state_t *st = PyType_GetModuleState(type); /* Engine has no subclasses */
    static char *kwlist[] = {"workers",
                             "backend",
                             "max_connections",
                             "recv_buffer_size",
                             "recv_buffers",
                             "send_high_water",
                             "send_low_water",
                             "turn_budget",
                             "handoff_ms",
                             "pool_idle_ms",
                             "memory_budget",
                             "handoff_threads",
                             NULL};
    px_engine_config_t cfg;
    const char *backend = "auto";
    int workers = 0, handoff_threads = 0;
    unsigned long long high = 0, low = 0, budget = 0, memory_budget = 0;
    PyObject *handoff = NULL, *pool_idle = NULL;
    px_thread_hooks_t hooks;
    px_py_engine_obj_t *self;
    int rc, i;

    px_engine_config_default(&cfg);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$isIIIKKKOOKi:Engine", kwlist, &workers,
                                     &backend, &cfg.max_connections, &cfg.recv_buffer_size,
                                     &cfg.recv_buffers, &high, &low, &budget, &handoff, &pool_idle,
                                     &memory_budget, &handoff_threads))
        return NULL;
    if (handoff_threads < 0 || handoff_threads > 65536) {
        PyErr_SetString(PyExc_ValueError,
                        "handoff_threads must be between 0 (the default) and 65536");
        return NULL;
    }
    cfg.handoff_threads = (unsigned)handoff_threads;
    if ((handoff != NULL &&
         ms_option(handoff, 3600e3, "handoff_ms must be between 0 (no hand-off) and 3600000",
                   &cfg.handoff_ms) < 0) ||
        (pool_idle != NULL && pool_idle != Py_None &&
         ms_option(pool_idle, 86400e3, "pool_idle_ms must be between 0 (keep memory) and 86400000",
                   &cfg.pool_idle_ms) < 0))
        return NULL;
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
    cfg.memory_budget = (size_t)memory_budget; /* 0: derived from the machine */
    if (cfg.send_low_water > cfg.send_high_water) {
        PyErr_SetString(PyExc_ValueError, "send_low_water must not exceed send_high_water");
        return NULL;
    }
    self = (px_py_engine_obj_t *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->interp = PyInterpreterState_Get();
    pthread_mutex_init(&self->clients_lock, NULL);
    px_py_thread_hooks(&hooks, self);
    rc = px_engine_create(&cfg, &hooks, &self->e);
    if (rc < 0) {
        Py_DECREF(self);
        if (cfg.backend != PX_BACKEND_URING)
            return px_py_raise_errno(st, rc, "engine");
        return refused_uring(st, rc);
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
    px_py_note_workers(PyType_GetModuleState(type), self->nworkers);
    self->handoff_ms = cfg.handoff_ms;
    return (PyObject *)self;
}

px_engine_t *px_py_engine_ptr(px_module_state_t *st, PyObject *engine)
{
    if (!PyObject_TypeCheck(engine, st->engine_type)) {
        PyErr_SetString(PyExc_TypeError, "an Engine is required");
        return NULL;
    }
    if (((px_py_engine_obj_t *)engine)->e == NULL) {
        PyErr_SetString(st->engine_error, "the engine has been destroyed");
        return NULL;
    }
    return ((px_py_engine_obj_t *)engine)->e;
}

static px_engine_t *live_engine(px_py_engine_obj_t *self)
{
    if (self->e == NULL || self->joined) {
        PyErr_SetString(px_py_engine_state((PyObject *)self)->engine_error,
                        "the engine has been shut down");
        return NULL;
    }
    return self->e;
}

static px_py_proto_spec_t *add_spec(px_py_engine_obj_t *self, PyObject *protocol, unsigned *flags,
                                    unsigned *timeout_ms)
{
    px_py_proto_spec_t *spec = px_py_proto_spec_new((PyObject *)self, protocol, flags, timeout_ms);
    if (spec == NULL)
        return NULL;
    spec->next = self->specs;
    self->specs = spec;
    return spec;
}

static PyObject *engine_listen(PyObject *op, PyObject *args)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    px_endpoint_config_t ep = {.listen_fd = -1};
    px_py_proto_spec_t *spec;
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
    Py_BEGIN_ALLOW_THREADS rc = px_engine_listen(self->e, host, port, &ep, NULL);
    Py_END_ALLOW_THREADS if (rc < 0) return px_py_raise_errno(px_py_engine_state(op), rc, "listen");
    return PyLong_FromLong(rc);
}

static PyObject *engine_listen_http(PyObject *op, PyObject *args, PyObject *kwds)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
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

static PyObject *engine_connect(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host",          "port",   "protocol", "timeout",
                             "attempt_delay", "worker", "sock",     NULL};
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    px_endpoint_config_t ep = {.listen_fd = -1};
    px_py_proto_spec_t *spec;
    PyObject *protocol, *timeout = NULL, *delay = NULL, *worker = NULL;
    const char *host;
    px_worker_t *w;
    int port, rc, sock = -1;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "siO|$OOOi:connect", kwlist, &host, &port,
                                     &protocol, &timeout, &delay, &worker, &sock))
        return NULL;
    if (live_engine(self) == NULL ||
        px_py_connect_options(self->e, timeout, delay, worker, &ep, &w) < 0)
        goto refused;
    /* The client's own spec, freed once it is over (client.c). */
    spec = px_py_proto_spec_new(op, protocol, &ep.sock_flags, &ep.idle_timeout_ms);
    if (spec == NULL)
        goto refused;
    spec->is_client = true;
    pthread_mutex_lock(&self->clients_lock);
    spec->next = self->client_specs;
    if (spec->next)
        spec->next->prev = spec;
    self->client_specs = spec;
    pthread_mutex_unlock(&self->clients_lock);
    ep.handler = &spec->handler;
    ep.udata = spec;
    atomic_fetch_add(&self->clients, 1);
    /* Never blocks: a name is looked up on the engine's resolver threads. */
    rc = sock >= 0 ? px_engine_adopt_on(self->e, w, sock, &ep)
                   : px_engine_connect_on(self->e, w, host, port, &ep);
    if (rc < 0) {
        atomic_fetch_sub(&self->clients, 1);
        px_py_client_spec_done(spec);
        return px_py_raise_errno(px_py_engine_state(op), rc, "connect");
    }
    Py_RETURN_NONE;
refused:
    if (sock >= 0)
        close(sock); /* the engine's from the call on, as px_engine_adopt_on says */
    return NULL;
}

static PyObject *engine_start(PyObject *op, PyObject *unused)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    int rc;
    (void)unused;

    if (live_engine(self) == NULL)
        return NULL;
    if (self->started)
        Py_RETURN_NONE;
    self->started = true; /* before any worker runs: the collector looks at it */
    rc = px_engine_start(self->e);
    if (rc < 0) {
        self->started = false;
        return px_py_raise_errno(px_py_engine_state(op), rc, "start");
    }
    Py_RETURN_NONE;
}

static PyObject *engine_shutdown(PyObject *op, PyObject *args)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    double timeout = 5.0;

    if (!PyArg_ParseTuple(args, "|d:shutdown", &timeout))
        return NULL;
    if (timeout < 0)
        timeout = 0;
    if (self->e && !self->joined)
        px_engine_shutdown(self->e, (unsigned)(timeout * 1000.0));
    Py_RETURN_NONE;
}

static PyObject *engine_drain(PyObject *op, PyObject *args)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    double grace = 1.0, timeout = 5.0;

    if (!PyArg_ParseTuple(args, "|dd:drain", &grace, &timeout))
        return NULL;
    if (self->e && !self->joined)
        px_engine_drain(self->e, (unsigned)(grace > 0 ? grace * 1000.0 : 0),
                        (unsigned)(timeout > 0 ? timeout * 1000.0 : 0));
    Py_RETURN_NONE;
}

static PyObject *engine_announce_stop(PyObject *op, PyObject *unused)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;

    (void)unused;
    if (self->e && !self->joined)
        px_engine_announce_stop(self->e);
    Py_RETURN_NONE;
}

static PyObject *engine_listen_fds(PyObject *op, PyObject *unused)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    int fds[PX_LISTEN_GROUP_MAX];
    PyObject *out;
    int i, n;

    (void)unused;
    if (live_engine(self) == NULL)
        return NULL;
    n = px_engine_listen_fds(self->e, fds, PX_LISTEN_GROUP_MAX);
    if (n < 0)
        return px_py_raise_errno(px_py_engine_state(op), n, "listen_fds");
    out = PyList_New(n);
    for (i = 0; out != NULL && i < n; i++)
        PyList_SET_ITEM(out, i, PyLong_FromLong(fds[i]));
    return out;
}

static void do_join(px_py_engine_obj_t *self)
{
    if (self->e == NULL || self->joined)
        return;
    Py_BEGIN_ALLOW_THREADS px_engine_join(self->e);
    Py_END_ALLOW_THREADS self->joined = true;
    for (int i = 0; i < self->nworkers; i++) { /* timers die with their wheel */
        px_py_timers_release(&self->wpy[i].live_timers);
        px_py_aio_worker_done(&self->wpy[i].aio_waker);
    }
}

static PyObject *engine_join(PyObject *op, PyObject *unused)
{
    (void)unused;
    do_join((px_py_engine_obj_t *)op);
    Py_RETURN_NONE;
}

/* Raise the next exception a worker queued, if any. Returns -1 when raised. */
static int raise_queued(px_py_engine_obj_t *self)
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
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
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
    Py_BEGIN_ALLOW_THREADS rc = poll(&p, 1, timeout <= 0 ? 0 : (int)(timeout * 1000.0));
    Py_END_ALLOW_THREADS if (rc < 0 && errno == EINTR && PyErr_CheckSignals() < 0) return NULL;
    if (raise_queued(self) < 0)
        return NULL;
    return PyBool_FromLong(self->started && px_engine_finished(self->e));
}

static PyObject *stats_dict(px_worker_stats_t *s)
{
    PyObject *d = PyDict_New(), *v;

    if (d == NULL)
        return NULL;
#define PX_STATS_PUT(name)                                    \
    v = PyLong_FromUnsignedLongLong(PX_STAT_GET(s, name));    \
    if (v == NULL || PyDict_SetItemString(d, #name, v) < 0) { \
        Py_XDECREF(v);                                        \
        Py_DECREF(d);                                         \
        return NULL;                                          \
    }                                                         \
    Py_DECREF(v);
    PX_STATS_FIELDS(PX_STATS_PUT)
#undef PX_STATS_PUT
    return d;
}

static PyObject *engine_worker_stats(PyObject *op, PyObject *unused)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
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

/* True when no engine thread can run the protocols and applications the
 * engine holds: it never started, or its workers have exited. */
static bool engine_idle(px_py_engine_obj_t *self)
{
    return self->e == NULL || !self->started || self->joined;
}

/* A running engine is a root, like a running thread: what its threads may
 * call is not visited, so the collector never finds it in a cycle and never
 * clears it; dealloc stops it. Idle, its protocols and applications are plain
 * references, and cycles through them (a protocol class that names its
 * engine) are collected. */
static int engine_traverse(PyObject *op, visitproc visit, void *arg)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;

    Py_VISIT(Py_TYPE(op));
    if (!engine_idle(self))
        return 0;
    for (px_py_proto_spec_t *spec = self->client_specs; spec; spec = spec->next) {
        int rc = px_py_factory_specs_traverse(spec, visit, arg);
        Py_VISIT(spec->cls);
        Py_VISIT(spec->initial_bytes);
        Py_VISIT(spec->next_bytes);
        if (rc)
            return rc;
    }
    for (px_py_proto_spec_t *spec = self->specs; spec; spec = spec->next) {
        Py_VISIT(spec->cls);
        Py_VISIT(spec->initial_bytes);
        Py_VISIT(spec->next_bytes);
        int rc = px_py_factory_specs_traverse(spec, visit, arg);
        if (rc)
            return rc;
    }
    for (Py_ssize_t i = 0; i < self->nhttp; i++) {
        int rc = px_py_http_app_traverse(self->http_apps[i], visit, arg);
        if (rc)
            return rc;
    }
    return 0;
}

static int engine_clear(PyObject *op)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;

    if (!engine_idle(self))
        return 0;
    for (px_py_proto_spec_t *spec = self->client_specs; spec; spec = spec->next) {
        Py_CLEAR(spec->cls);
        Py_CLEAR(spec->initial_bytes);
        Py_CLEAR(spec->next_bytes);
        px_py_factory_specs_clear(spec);
    }
    for (px_py_proto_spec_t *spec = self->specs; spec; spec = spec->next) {
        Py_CLEAR(spec->cls);
        Py_CLEAR(spec->initial_bytes);
        Py_CLEAR(spec->next_bytes);
        px_py_factory_specs_clear(spec);
    }
    for (Py_ssize_t i = 0; i < self->nhttp; i++)
        px_py_http_app_clear(self->http_apps[i]);
    return 0;
}

static void engine_dealloc(PyObject *op)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    PyTypeObject *tp = Py_TYPE(op);
    px_py_proto_spec_t *spec, *next;

    PyObject_GC_UnTrack(op);
    if (self->e) {
        if (self->started && !self->joined)
            px_engine_shutdown(self->e, 0);
        do_join(self);
        px_engine_main_discard(self->e); /* their drops need the thread state */
        Py_BEGIN_ALLOW_THREADS px_engine_destroy(self->e);
        Py_END_ALLOW_THREADS self->e = NULL;
    }
    for (spec = self->specs; spec; spec = next) {
        next = spec->next;
        px_py_proto_spec_free(spec);
    }
    for (spec = self->client_specs; spec; spec = next) { /* never finished */
        next = spec->next;
        px_py_proto_spec_free(spec);
    }
    pthread_mutex_destroy(&self->clients_lock);
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
    {"connect", (PyCFunction)(void (*)(void))engine_connect, METH_VARARGS | METH_KEYWORDS,
     "connect(host, port, protocol, *, timeout=None, attempt_delay=None, worker=None,\n"
     "sock=-1); sock: a connected stream socket's descriptor the engine takes over\n"
     "(closes on failure) instead of connecting to host:port"},
    {"listen_http", (PyCFunction)(void (*)(void))engine_listen_http, METH_VARARGS | METH_KEYWORDS,
     "listen_http(host, port, app, static=None, **limits) -> bound port"},
    {"start", engine_start, METH_NOARGS, "Start the worker threads."},
    {"shutdown", engine_shutdown, METH_VARARGS,
     "shutdown(timeout=5.0): stop accepting, drain sends, close; abort after timeout."},
    {"drain", engine_drain, METH_VARARGS,
     "drain(grace=1.0, timeout=5.0): hand over to another process serving the same\n"
     "sockets: stop accepting, serve open connections for grace s, then shut down."},
    {"announce_stop", engine_announce_stop, METH_NOARGS,
     "announce_stop(): serve on, but HTTP health answers 503 draining and every\n"
     "answer says Connection: close (a stop's drain grace)."},
    {"listen_fds", engine_listen_fds, METH_NOARGS,
     "listen_fds() -> the servers' listening descriptors (the engine's), oldest first"},
    {"join", engine_join, METH_NOARGS, "Wait for the workers to exit."},
    {"wait", engine_wait, METH_VARARGS,
     "wait(timeout=0.0) -> finished: run main-thread work, re-raise worker exceptions."},
    {"worker_stats", engine_worker_stats, METH_NOARGS, "Counters of each worker."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot engine_slots[] = {
    {Py_tp_doc, "The completion engine: worker threads, rings, connections."},
    {Py_tp_new, engine_new},
    {Py_tp_methods, engine_methods},
    {Py_tp_getset, px_py_engine_getset},
    {Py_tp_dealloc, engine_dealloc},
    {Py_tp_traverse, engine_traverse},
    {Py_tp_clear, engine_clear},
    {0, NULL},
};

PyType_Spec px_py_engine_type_spec = {
    .name = "pyparallel._core.Engine",
    .basicsize = sizeof(px_py_engine_obj_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = engine_slots,
};
