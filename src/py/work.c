/*
 * Work on the workers: a Python callable carried by a message to a worker
 * (px_worker_submit), called there with the worker's thread state. What it
 * raises goes to the main thread, which re-raises it from run(). The Python
 * layer (pyparallel.runtime) builds submit_work, map and timers' bookkeeping
 * on this.
 */
#include "binding.h"

#include <errno.h>
#include <stdatomic.h>

typedef struct work_msg {
    px_msg_t msg;
    PyObject *engine; /* borrowed: an engine runs every accepted message before it dies */
    PyObject *fn;
} work_msg_t;

static void work_fn(px_worker_t *w, px_msg_t *m)
{
    work_msg_t *wm = PX_CONTAINER_OF(m, work_msg_t, msg);
    PyObject *r;
    uint64_t t0;
    bool released;

    px_py_attach(w);
    t0 = px_worker_callback_enter(w);
    released = px_py_release(w); /* if fn blocks, a spare serves the worker */
    r = PyObject_CallNoArgs(wm->fn);
    px_py_reacquire(w, released);
    px_worker_callback_leave(w, t0);
    if (r == NULL) {
        PX_STAT_ADD(px_worker_stats(w), errors, 1);
        px_py_post_exception(wm->engine, PyErr_GetRaisedException());
    }
    Py_XDECREF(r);
    Py_DECREF(wm->fn);
    px_py_engine_tasks_add(wm->engine, -1);
    PyMem_RawFree(wm);
}

/* The worker with the shortest backlog; ties go round robin so that equal
 * loads spread. */
static int least_loaded(px_module_state_t *st, px_engine_t *e)
{
    int n = px_engine_worker_count(e), best = -1, i;
    unsigned best_backlog = 0,
             start = atomic_fetch_add_explicit(&st->work_rotor, 1, memory_order_relaxed);

    for (i = 0; i < n; i++) {
        int k = (int)((start + (unsigned)i) % (unsigned)n);
        unsigned b = px_worker_backlog(px_engine_worker(e, k));
        if (best < 0 || b < best_backlog) {
            best = k;
            best_backlog = b;
        }
    }
    return best;
}

/* submit(engine, fn, worker=-1) -> worker index: call fn() on a worker (the
 * given one, or the least loaded). EngineError (a RuntimeError) once the workers
 * have exited. */
PyObject *px_py_submit(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"engine", "fn", "worker", NULL};
    PyObject *engine, *fn;
    px_engine_t *e;
    work_msg_t *wm;
    int worker = -1, rc;
    px_module_state_t *st = PyModule_GetState(module);

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|i:submit", kwlist, &engine, &fn, &worker))
        return NULL;
    if ((e = px_py_engine_of(st, engine)) == NULL)
        return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "submit() needs a callable");
        return NULL;
    }
    if (worker >= px_engine_worker_count(e)) {
        PyErr_Format(PyExc_ValueError, "no worker %d (the engine has %d)", worker,
                     px_engine_worker_count(e));
        return NULL;
    }
    if (worker < 0)
        worker = least_loaded(st, e);
    wm = PyMem_RawMalloc(sizeof(*wm));
    if (wm == NULL)
        return PyErr_NoMemory();
    /* No drop: only px_engine_destroy drops worker messages, and it runs
     * without the thread state a Py_DECREF needs. */
    px_msg_init(&wm->msg, work_fn, NULL);
    wm->engine = engine;
    wm->fn = Py_NewRef(fn);
    px_py_engine_tasks_add(engine, 1);
    rc = px_worker_submit(px_engine_worker(e, worker), &wm->msg);
    if (rc < 0) {
        px_py_engine_tasks_add(engine, -1);
        Py_DECREF(wm->fn);
        PyMem_RawFree(wm);
        return px_py_raise_errno(st, rc, "submit"); /* EngineError once the workers have exited */
    }
    return PyLong_FromLong(worker);
}

/* current_engine() -> the Engine whose worker runs this code, or None. */
PyObject *px_py_current_engine_fn(PyObject *module, PyObject *unused)
{
    PyObject *engine = px_py_current_engine();
    (void)module;
    (void)unused;
    if (engine == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(engine);
}

/* tasks_hold(engine, delta): work the package keeps off the workers (a wait
 * for a descriptor, a blocking call) counts among the engine's tasks while it
 * is pending (+1), until it was handed to a worker or failed (-1): run()'s
 * one counter then never reads 0 between the two. */
PyObject *px_py_tasks_hold(PyObject *module, PyObject *args)
{
    px_module_state_t *st = PyModule_GetState(module);
    PyObject *engine;
    int delta;

    if (!PyArg_ParseTuple(args, "Oi:tasks_hold", &engine, &delta))
        return NULL;
    if (px_py_engine_of(st, engine) == NULL)
        return NULL;
    if (delta != 1 && delta != -1) {
        PyErr_SetString(PyExc_ValueError, "tasks_hold() takes 1 or -1");
        return NULL;
    }
    px_py_engine_tasks_add(engine, delta);
    Py_RETURN_NONE;
}
