/*
 * px.timer: a Python function called on a worker after a delay, and then every
 * period if one is given, driven by that worker's timer wheel.
 *
 * Ownership: a live timer (started, not yet released) holds one reference to
 * itself and one task of its engine; both are given up by release(), which
 * only ever runs on the timer's worker: when a one-shot timer has fired, when
 * a cancel reaches the worker, or when the worker exits with the timer still
 * armed. Creating a timer from another thread posts a start message to the
 * worker; cancelling from another thread posts a cancel message. Everything
 * else about the wheel happens on the worker, so the wheel needs no lock.
 */
#include "binding.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>

#include "px/timer.h"

typedef struct px_py_timer {
    PyObject_HEAD px_timer_t timer;
    px_msg_t start_msg, cancel_msg;
    PyObject *engine; /* borrowed: its workers (and so we) go first */
    PyObject *func;
    px_worker_t *w; /* valid while the timer is live (its engine runs) */
    int worker;     /* w's index, for after */
    uint64_t delay_ms, period_ms;
    uint64_t due;         /* next deadline on px_now_ms's clock */
    double delay, period; /* as given, for repr and attributes */
    _Atomic bool cancelled;
    _Atomic bool cancel_posted;
    _Atomic bool done; /* released: will never fire again */
    _Atomic unsigned long fired;
    bool live;                       /* worker only: holds its self-reference */
    struct px_py_timer *next, *prev; /* worker only: the worker's live timers */
} px_py_timer_t;

/* A worker's live timers hang from the worker (whichever thread runs it: a
 * blocked callback's worker goes on on a spare thread), released at the join. */
static void link_live(px_py_timer_t *t)
{
    px_py_timer_t **live = px_py_worker_timers(t->w);

    t->live = true;
    t->prev = NULL;
    t->next = *live;
    if (*live)
        (*live)->prev = t;
    *live = t;
}

/* Worker only: disarm, give up the task and the self-reference. t may be
 * freed on return. */
static void release(px_py_timer_t *t)
{
    if (!t->live)
        return;
    t->live = false;
    px_timer_stop(px_worker_wheel(t->w), &t->timer);
    if (t->prev)
        t->prev->next = t->next;
    else
        *px_py_worker_timers(t->w) = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
    atomic_store(&t->done, true);
    px_py_engine_tasks_add(t->engine, -1);
    Py_DECREF(t);
}

/* Arm for t->due, counted from the real time: the wheel's clock may lag. */
static void arm(px_py_timer_t *t)
{
    px_wheel_t *wheel = px_worker_wheel(t->w);
    uint64_t now = px_now_ms();
    uint64_t due = t->due > now ? t->due : now;

    px_timer_start(wheel, &t->timer, due - wheel->now);
}

static void on_fire(px_timer_t *timer)
{
    px_py_timer_t *t = PX_CONTAINER_OF(timer, px_py_timer_t, timer);
    PyObject *r;
    uint64_t t0;
    bool released;

    px_py_attach(t->w);
    if (atomic_load(&t->cancelled)) {
        release(t);
        return;
    }
    Py_INCREF(t); /* the function may cancel (and so release) us */
    atomic_fetch_add(&t->fired, 1);
    t0 = px_worker_callback_enter(t->w);
    released = px_py_release(t->w); /* if func blocks, a spare serves the worker */
    r = PyObject_CallNoArgs(t->func);
    px_py_reacquire(t->w, released);
    px_worker_callback_leave(t->w, t0);
    if (r == NULL) {
        PX_STAT_ADD(px_worker_stats(t->w), errors, 1);
        px_py_post_exception(t->engine, PyErr_GetRaisedException());
    }
    Py_XDECREF(r);
    if (t->live) {
        if (t->period_ms && !atomic_load(&t->cancelled)) {
            /* Fixed rate; after a stall, one catch-up call and on from now. */
            uint64_t now = px_now_ms();
            t->due += t->period_ms;
            if (t->due < now)
                t->due = now;
            arm(t);
        } else {
            release(t);
        }
    }
    Py_DECREF(t);
}

static void start_fn(px_worker_t *w, px_msg_t *m)
{
    px_py_timer_t *t = PX_CONTAINER_OF(m, px_py_timer_t, start_msg);

    (void)w;
    px_py_attach(t->w);
    link_live(t); /* the message's reference becomes the live one */
    if (atomic_load(&t->cancelled))
        release(t);
    else
        arm(t);
}

static void cancel_fn(px_worker_t *w, px_msg_t *m)
{
    px_py_timer_t *t = PX_CONTAINER_OF(m, px_py_timer_t, cancel_msg);

    (void)w;
    px_py_attach(t->w);
    release(t);
    Py_DECREF(t); /* the cancel message's reference */
}

void px_py_timers_release(px_py_timer_t **live)
{
    while (*live)
        release(*live);
}

/* Seconds to whole milliseconds, never early: rounded up, plus one for the
 * millisecond clock's truncation. */
static int to_ms(double s, const char *what, uint64_t *out)
{
    if (!isfinite(s) || s < 0 || s > 86400.0 * 365 * 10) {
        PyErr_Format(PyExc_ValueError, "timer %s must be between 0 and ten years, in seconds",
                     what);
        return -1;
    }
    *out = s > 0 ? (uint64_t)ceil(s * 1000.0) + 1 : 0;
    return 0;
}

/* Timer(engine, delay, func, period=None, worker=-1) */
static PyObject *timer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"engine", "delay", "func", "period", "worker", NULL};
    PyObject *engine, *func, *period_obj = Py_None;
    double delay, period = 0;
    int worker = -1, rc;
    px_engine_t *e;
    px_py_timer_t *t;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OdO|Oi:Timer", kwlist, &engine, &delay, &func,
                                     &period_obj, &worker))
        return NULL;
    if ((e = px_py_engine_of(PyType_GetModuleState(type), engine)) == NULL)
        return NULL;
    if (!PyCallable_Check(func)) {
        PyErr_SetString(PyExc_TypeError, "timer() needs a callable");
        return NULL;
    }
    if (period_obj != Py_None) {
        period = PyFloat_AsDouble(period_obj);
        if (period == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(period > 0)) {
            PyErr_SetString(PyExc_ValueError, "timer period must be positive (or None)");
            return NULL;
        }
    }
    if (worker >= px_engine_worker_count(e)) {
        PyErr_Format(PyExc_ValueError, "no worker %d", worker);
        return NULL;
    }
    t = (px_py_timer_t *)type->tp_alloc(type, 0);
    if (t == NULL)
        return NULL;
    t->engine = engine;
    t->func = Py_NewRef(func);
    t->delay = delay;
    t->period = period;
    if (to_ms(delay, "delay", &t->delay_ms) < 0 ||
        (period > 0 && to_ms(period, "period", &t->period_ms) < 0)) {
        Py_DECREF(t);
        return NULL;
    }
    if (period > 0 && t->period_ms == 0)
        t->period_ms = 1;
    px_timer_init(&t->timer, on_fire);
    t->start_msg.fn = start_fn;
    t->cancel_msg.fn = cancel_fn;
    t->due = px_now_ms() + t->delay_ms;
    px_py_engine_tasks_add(engine, 1);

    /* On one of this engine's workers (and no other asked for): arm here. */
    if (worker < 0 && px_py_current_engine() == engine) {
        t->w = px_worker_current();
        t->worker = px_worker_index(t->w);
        Py_INCREF(t);
        link_live(t);
        arm(t);
        return (PyObject *)t;
    }
    if (worker < 0) {
        /* The least loaded worker, as work goes. */
        int n = px_engine_worker_count(e), i;
        unsigned best = 0;
        for (i = 0; i < n; i++) {
            unsigned b = px_worker_backlog(px_engine_worker(e, i));
            if (worker < 0 || b < best) {
                worker = i;
                best = b;
            }
        }
    }
    t->w = px_engine_worker(e, worker);
    t->worker = worker;
    Py_INCREF(t); /* the start message's, then the live reference */
    rc = px_worker_submit(t->w, &t->start_msg);
    if (rc < 0) {
        Py_DECREF(t);
        px_py_engine_tasks_add(engine, -1);
        atomic_store(&t->done, true);
        Py_DECREF(t);
        return px_py_raise_errno(PyType_GetModuleState(type), rc, "timer");
    }
    return (PyObject *)t;
}

static PyObject *timer_cancel(PyObject *op, PyObject *unused)
{
    px_py_timer_t *t = (px_py_timer_t *)op;
    (void)unused;

    if (atomic_load(&t->done) || atomic_exchange(&t->cancelled, true))
        Py_RETURN_NONE;
    if (px_worker_current() == t->w) {
        /* Its own worker: release now (or, while it fires, once it returns).
         * A start message still queued here finds the flag and releases. The
         * worker first: application code runs released (hand-off). */
        bool entered = px_py_engine_enter(t->w);
        release(t);
        px_py_engine_leave(t->w, entered);
        Py_RETURN_NONE;
    }
    if (!atomic_exchange(&t->cancel_posted, true)) {
        Py_INCREF(t);
        if (px_worker_submit(t->w, &t->cancel_msg) < 0)
            Py_DECREF(t); /* the worker has exited: it released the timer */
    }
    Py_RETURN_NONE;
}

static int timer_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(((px_py_timer_t *)op)->func);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int timer_clear(PyObject *op)
{
    Py_CLEAR(((px_py_timer_t *)op)->func);
    return 0;
}

static void timer_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    timer_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *timer_repr(PyObject *op)
{
    px_py_timer_t *t = (px_py_timer_t *)op;
    const char *state = atomic_load(&t->cancelled) ? "cancelled"
                        : atomic_load(&t->done)    ? "finished"
                                                   : "active";
    PyObject *d = PyFloat_FromDouble(t->delay), *r;

    if (d == NULL)
        return NULL;
    if (t->period > 0) {
        PyObject *p = PyFloat_FromDouble(t->period);
        r = p ? PyUnicode_FromFormat("<Timer delay=%R period=%R %s, fired %lu>", d, p, state,
                                     atomic_load(&t->fired))
              : NULL;
        Py_XDECREF(p);
    } else {
        r = PyUnicode_FromFormat("<Timer delay=%R %s, fired %lu>", d, state,
                                 atomic_load(&t->fired));
    }
    Py_DECREF(d);
    return r;
}

static PyObject *get_active(PyObject *op, void *c)
{
    px_py_timer_t *t = (px_py_timer_t *)op;
    (void)c;
    return PyBool_FromLong(!atomic_load(&t->cancelled) && !atomic_load(&t->done));
}

static PyObject *get_cancelled(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(atomic_load(&((px_py_timer_t *)op)->cancelled));
}

static PyObject *get_fired(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLong(atomic_load(&((px_py_timer_t *)op)->fired));
}

static PyObject *get_delay(PyObject *op, void *c)
{
    (void)c;
    return PyFloat_FromDouble(((px_py_timer_t *)op)->delay);
}

static PyObject *get_period(PyObject *op, void *c)
{
    px_py_timer_t *t = (px_py_timer_t *)op;
    (void)c;
    if (t->period <= 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(t->period);
}

static PyObject *get_worker(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(((px_py_timer_t *)op)->worker);
}

static PyMethodDef timer_methods[] = {
    {"cancel", timer_cancel, METH_NOARGS,
     "Stop the timer: it does not fire again (a call already running finishes).\n"
     "Any thread; harmless when it has finished or was cancelled."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef timer_getset[] = {
    {"active", get_active, NULL, "True until it is cancelled or has fired for good", NULL},
    {"cancelled", get_cancelled, NULL, "True once cancel() was called", NULL},
    {"fired", get_fired, NULL, "how many times the function was called", NULL},
    {"delay", get_delay, NULL, "seconds before the first call", NULL},
    {"period", get_period, NULL, "seconds between calls, or None", NULL},
    {"worker", get_worker, NULL, "index of the worker it runs on", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot timer_slots[] = {
    {Py_tp_doc, "A function called on a worker after a delay, then every period.\n"
                "Made by pyparallel.timer()."},
    {Py_tp_new, timer_new},
    {Py_tp_dealloc, timer_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, timer_clear},
    {Py_tp_repr, timer_repr},
    {Py_tp_methods, timer_methods},
    {Py_tp_getset, timer_getset},
    {0, NULL},
};

PyType_Spec px_py_timer_type_spec = {
    .name = "pyparallel._core.Timer",
    .basicsize = sizeof(px_py_timer_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = timer_slots,
};
