/*
 * Calls for the main thread: a Python callable carried by a message on the
 * engine's main queue, called by the main thread while it waits in the engine
 * (Engine.wait, i.e. px.run() and px.run_once()), one at a time, in the order
 * posted. What a call raises is re-raised by that wait. The Python layer
 * (pyparallel.runtime) builds call_from_main_thread and its waiting variant on
 * this.
 */
#include "binding.h"

typedef struct main_msg {
    px_msg_t msg;
    PyObject *engine; /* borrowed: it frees what is queued before it dies */
    PyObject *fn;
} main_msg_t;

/* On the main thread, thread state attached (Engine.wait pops it). */
static void main_fn(px_worker_t *w, px_msg_t *m)
{
    main_msg_t *mm = PX_CONTAINER_OF(m, main_msg_t, msg);
    PyObject *r;
    (void)w;

    r = PyObject_CallNoArgs(mm->fn);
    Py_XDECREF(r); /* on error the exception stays set for Engine.wait to raise */
    Py_DECREF(mm->fn);
    px_py_engine_tasks_add(mm->engine, -1);
    PyMem_RawFree(mm);
}

/* Discarded with the main queue (the engine dies); thread state attached. */
static void main_drop(px_msg_t *m)
{
    main_msg_t *mm = PX_CONTAINER_OF(m, main_msg_t, msg);

    Py_DECREF(mm->fn);
    px_py_engine_tasks_add(mm->engine, -1);
    PyMem_RawFree(mm);
}

/* post_main(engine, fn): the main thread calls fn() when it next waits in
 * the engine. Any thread. */
PyObject *px_py_post_main(PyObject *module, PyObject *args)
{
    PyObject *engine, *fn;
    px_engine_t *e;
    main_msg_t *mm;

    if (!PyArg_ParseTuple(args, "OO:post_main", &engine, &fn))
        return NULL;
    if ((e = px_py_engine_of(PyModule_GetState(module), engine)) == NULL)
        return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "post_main() needs a callable");
        return NULL;
    }
    mm = PyMem_RawMalloc(sizeof(*mm));
    if (mm == NULL)
        return PyErr_NoMemory();
    px_msg_init(&mm->msg, main_fn, main_drop);
    mm->engine = engine;
    mm->fn = Py_NewRef(fn);
    /* Counted until it runs: run() must not stop while the main thread still
     * has a call to make (which may start more work). */
    px_py_engine_tasks_add(engine, 1);
    px_engine_post_main(e, &mm->msg);
    Py_RETURN_NONE;
}
