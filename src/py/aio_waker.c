/*
 * The pump of a worker's asyncio loop (pyparallel.asyncio): one object per
 * worker that calls the loop's _px_pump() on that worker, when
 *   - a deadline of the worker's precise timer heap comes (arm(when)): the
 *     loop's earliest call_later, or "now" for call_soon, which fires right
 *     after the batch of completions being dispatched;
 *   - another thread wakes it (wake(), call_soon_threadsafe): a message on
 *     the worker's queue, posted once until it has run.
 * The pump runs released (hand-off: a callback that blocks leaves the
 * worker's other connections to a spare), briefly (asyncio's callbacks do
 * not block by its rules: no eager hand-off, which on a GIL build only passes
 * the worker between threads waiting for the interpreter) and one at a time: a pump due while
 * another still runs on a blocked thread waits for it (claim()).
 *
 * Ownership: the worker's record (worker_py_t) holds the waker; an armed
 * timer or a posted message holds one more reference each, so the heap and
 * the queue never point at freed memory. When the engine is joined,
 * px_py_aio_worker_done forgets the timer (it died with the worker's heap),
 * tells the loop, and drops the record's reference.
 */
#include "binding.h"
#include "engine_obj.h"

#include <math.h>
#include <stdatomic.h>

#include "px/clock.h"
#include "px/hrtimer.h"

typedef struct px_py_aio_waker {
    PyObject_HEAD px_hrtimer_t timer;
    px_msg_t msg;
    px_worker_t *w;
    PyObject *engine;  /* borrowed: the engine outlives its workers' records */
    PyObject *loop;    /* the loop whose _px_pump() runs */
    uint64_t deadline; /* armed for this (ns); worker only */
    bool armed;        /* worker only */
    bool dead;         /* the worker has exited: no timer any more */
    _Atomic bool posted;
    _Atomic bool pumping;
} px_py_aio_waker_t;

static PyObject *pump_name; /* interned "_px_pump", made at first use */

/* Claimed: call loop._px_pump() released; what it raises goes to run(). */
static void pump(px_py_aio_waker_t *k)
{
    px_worker_t *w = k->w;
    PyObject *r;
    uint64_t t0;
    bool released;

    t0 = px_worker_callback_enter(w);
    released = px_worker_release_brief(w);
    r = k->loop ? PyObject_CallMethodNoArgs(k->loop, pump_name) : Py_NewRef(Py_None);
    px_py_reacquire(w, released);
    px_worker_callback_leave(w, t0);
    atomic_store(&k->pumping, false);
    if (r == NULL) {
        PX_STAT_ADD(px_worker_stats(w), errors, 1);
        px_py_post_exception(k->engine, PyErr_GetRaisedException());
    }
    Py_XDECREF(r);
}

/* Arm for deadline (ns), owned; takes the timer's reference when it had none. */
static int arm_owned(px_py_aio_waker_t *k, uint64_t deadline)
{
    int rc;

    if (k->dead)
        return 0;
    rc = px_worker_hrtimer_start(k->w, &k->timer, deadline);
    if (rc < 0)
        return rc;
    if (!k->armed)
        Py_INCREF(k);
    k->armed = true;
    k->deadline = deadline;
    return 0;
}

static void on_timer(px_hrtimer_t *t)
{
    px_py_aio_waker_t *k = PX_CONTAINER_OF(t, px_py_aio_waker_t, timer);

    px_py_attach(k->w);
    k->armed = false; /* its reference is ours until the end */
    if (atomic_exchange(&k->pumping, true)) {
        /* A pump blocked on another thread: look again in a millisecond
         * rather than spin. */
        arm_owned(k, px_now_ns() + PX_NS_PER_MS);
    } else {
        pump(k);
    }
    Py_DECREF(k);
}

static void on_msg(px_worker_t *w, px_msg_t *m)
{
    px_py_aio_waker_t *k = PX_CONTAINER_OF(m, px_py_aio_waker_t, msg);

    px_py_attach(w);
    atomic_store(&k->posted, false); /* a wake from now on posts again */
    if (atomic_exchange(&k->pumping, true))
        arm_owned(k, px_now_ns() + PX_NS_PER_MS);
    else
        pump(k);
    Py_DECREF(k);
}

/* Never run (the worker had exited): thread state attached. */
static void on_msg_drop(px_msg_t *m)
{
    px_py_aio_waker_t *k = PX_CONTAINER_OF(m, px_py_aio_waker_t, msg);

    Py_DECREF(k);
}

static bool on_worker(px_py_aio_waker_t *k)
{
    if (px_worker_current() == k->w)
        return true;
    PyErr_SetString(PyExc_RuntimeError,
                    "a worker's asyncio loop is scheduled from its own worker only "
                    "(use call_soon_threadsafe from other threads)");
    return false;
}

/* arm(when): pump at loop time `when` (seconds of the monotonic clock; 0:
 * right after the current batch). Earlier than what is armed moves it;
 * later changes nothing (the pump re-arms for what is left). What is armed
 * is read once the worker is ours: a released caller (a handler's first
 * step) that looked before could move a pump the worker armed meanwhile
 * for work queued behind it (on_msg) to its own later deadline. */
static PyObject *waker_arm(PyObject *op, PyObject *arg)
{
    px_py_aio_waker_t *k = (px_py_aio_waker_t *)op;
    double when = PyFloat_AsDouble(arg);
    uint64_t deadline;
    bool entered;
    int rc;

    if (when == -1.0 && PyErr_Occurred())
        return NULL;
    if (!on_worker(k))
        return NULL;
    deadline = !(when > 0) ? 0 : when >= 1.8e10 ? UINT64_MAX - 1 : (uint64_t)ceil(when * 1e9);
    entered = px_py_engine_enter(k->w);
    rc = k->armed && k->deadline <= deadline ? 0 : arm_owned(k, deadline);
    px_py_engine_leave(k->w, entered);
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *waker_disarm(PyObject *op, PyObject *unused)
{
    px_py_aio_waker_t *k = (px_py_aio_waker_t *)op;
    bool entered;
    (void)unused;

    if (!on_worker(k))
        return NULL;
    if (!k->armed)
        Py_RETURN_NONE;
    entered = px_py_engine_enter(k->w);
    if (k->armed && !k->dead) {
        px_worker_hrtimer_stop(k->w, &k->timer);
        k->armed = false;
        Py_DECREF(k);
    }
    px_py_engine_leave(k->w, entered);
    Py_RETURN_NONE;
}

/* wake(): any thread; one message until it has run. */
static PyObject *waker_wake(PyObject *op, PyObject *unused)
{
    px_py_aio_waker_t *k = (px_py_aio_waker_t *)op;
    (void)unused;

    if (!atomic_exchange(&k->posted, true)) {
        Py_INCREF(k);
        px_worker_post(k->w, &k->msg);
    }
    Py_RETURN_NONE;
}

/* claim() -> bool: take the right to run the loop's callbacks here (an async
 * handler's first step, on its own thread); False while a pump runs. */
static PyObject *waker_claim(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(!atomic_exchange(&((px_py_aio_waker_t *)op)->pumping, true));
}

static PyObject *waker_unclaim(PyObject *op, PyObject *unused)
{
    (void)unused;
    atomic_store(&((px_py_aio_waker_t *)op)->pumping, false);
    Py_RETURN_NONE;
}

static PyObject *get_loop(PyObject *op, void *c)
{
    PyObject *loop = ((px_py_aio_waker_t *)op)->loop;
    (void)c;
    return Py_NewRef(loop ? loop : Py_None);
}

static PyObject *get_worker(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(px_worker_index(((px_py_aio_waker_t *)op)->w));
}

static PyObject *get_armed(PyObject *op, void *c)
{
    px_py_aio_waker_t *k = (px_py_aio_waker_t *)op;
    (void)c;
    if (!k->armed)
        Py_RETURN_NONE;
    return PyFloat_FromDouble((double)k->deadline / 1e9);
}

static int waker_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(((px_py_aio_waker_t *)op)->loop);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int waker_clear(PyObject *op)
{
    Py_CLEAR(((px_py_aio_waker_t *)op)->loop);
    return 0;
}

static void waker_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    waker_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef waker_methods[] = {
    {"arm", waker_arm, METH_O,
     "arm(when): pump at monotonic time `when` (0: right after this batch); worker only."},
    {"disarm", waker_disarm, METH_NOARGS, "Nothing due any more; worker only."},
    {"wake", waker_wake, METH_NOARGS, "Pump soon; any thread."},
    {"claim", waker_claim, METH_NOARGS,
     "claim() -> bool: run the loop's callbacks here; False while a pump runs."},
    {"unclaim", waker_unclaim, METH_NOARGS, "Give back what claim() took."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef waker_getset[] = {
    {"loop", get_loop, NULL, "the loop pumped", NULL},
    {"worker", get_worker, NULL, "index of the worker", NULL},
    {"armed", get_armed, NULL, "the armed deadline (monotonic seconds), or None", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot waker_slots[] = {
    {Py_tp_doc, "The pump of a worker's asyncio loop (pyparallel.asyncio)."},
    {Py_tp_dealloc, waker_dealloc},
    {Py_tp_traverse, waker_traverse},
    {Py_tp_clear, waker_clear},
    {Py_tp_methods, waker_methods},
    {Py_tp_getset, waker_getset},
    {0, NULL},
};

PyType_Spec px_py_aio_waker_type_spec = {
    .name = "pyparallel._core.AioWaker",
    .basicsize = sizeof(px_py_aio_waker_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = waker_slots,
};

/* aio_worker_waker(make_loop) -> AioWaker | None: the calling worker's; made
 * on first call with make_loop() as its loop. None off the workers. */
static PyObject *aio_worker_waker(PyObject *module, PyObject *make_loop)
{
    px_module_state_t *st = PyModule_GetState(module);
    px_worker_t *w = px_worker_current();
    worker_py_t *wp = w ? px_worker_udata(w) : NULL;
    px_py_aio_waker_t *k;
    PyObject *loop, *existing;

    if (wp == NULL)
        Py_RETURN_NONE;
    existing = atomic_load(&wp->aio_waker);
    if (existing != NULL)
        return Py_NewRef(existing);
    if (pump_name == NULL && (pump_name = PyUnicode_InternFromString("_px_pump")) == NULL)
        return NULL;
    k = PyObject_GC_New(px_py_aio_waker_t, st->aio_waker_type);
    if (k == NULL)
        return NULL;
    px_hrtimer_init(&k->timer, on_timer);
    px_msg_init(&k->msg, on_msg, on_msg_drop);
    k->w = w;
    k->engine = (PyObject *)wp->owner;
    k->loop = NULL;
    k->deadline = 0;
    k->armed = k->dead = false;
    atomic_store(&k->posted, false);
    atomic_store(&k->pumping, false);
    PyObject_GC_Track(k);
    loop = PyObject_CallOneArg(make_loop, (PyObject *)k);
    if (loop == NULL) {
        Py_DECREF(k);
        return NULL;
    }
    k->loop = loop;
    existing = NULL;
    /* A released handler and the spare serving its worker may both ask. */
    if (!atomic_compare_exchange_strong(&wp->aio_waker, &existing, (PyObject *)k)) {
        Py_DECREF(k);
        return Py_NewRef(existing);
    }
    return Py_NewRef((PyObject *)k);
}

void px_py_aio_worker_done(_Atomic(PyObject *) *slot)
{
    px_py_aio_waker_t *k = (px_py_aio_waker_t *)atomic_exchange(slot, NULL);
    PyObject *r;

    if (k == NULL)
        return;
    k->dead = true;
    if (k->armed) { /* forgotten with the worker's heap */
        k->armed = false;
        Py_DECREF(k);
    }
    if (k->loop != NULL) {
        r = PyObject_CallMethod(k->loop, "_px_worker_done", NULL);
        if (r == NULL)
            PyErr_WriteUnraisable(k->loop);
        Py_XDECREF(r);
    }
    Py_DECREF(k);
}

PyMethodDef px_py_aio_methods[] = {
    {"aio_worker_waker", aio_worker_waker, METH_O,
     "aio_worker_waker(make_loop) -> AioWaker | None: the calling worker's asyncio pump,\n"
     "made on first call with make_loop(waker) as its loop; None off the workers."},
    {NULL, NULL, 0, NULL},
};
