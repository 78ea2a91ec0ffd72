/*
 * The Engine type's attributes: what a Python caller may read of an engine
 * (its backend, workers, state, options) and the one it may set
 * (raise_errors).
 */
#include "engine_obj.h"

#include <string.h>

static PyObject *get_backend(PyObject *op, void *c)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    (void)c;
    return PyUnicode_FromString(self->e ? px_engine_backend_name(self->e) : "none");
}

static PyObject *get_uring_error(PyObject *op, void *c)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    int err = self->e ? px_engine_uring_error(self->e) : 0;
    (void)c;
    if (err == 0)
        Py_RETURN_NONE;
    return Py_BuildValue("(is)", -err, strerror(-err));
}

static PyObject *get_workers(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(((px_py_engine_obj_t *)op)->nworkers);
}

static PyObject *get_finished(PyObject *op, void *c)
{
    px_py_engine_obj_t *self = (px_py_engine_obj_t *)op;
    (void)c;
    return PyBool_FromLong(self->e == NULL || self->joined ||
                           (self->started && px_engine_finished(self->e)));
}

static PyObject *get_started(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(((px_py_engine_obj_t *)op)->started);
}

static PyObject *get_tasks(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(atomic_load(&((px_py_engine_obj_t *)op)->tasks));
}

static PyObject *get_handoff_ms(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLong(((px_py_engine_obj_t *)op)->handoff_ms);
}

static PyObject *get_raise_errors(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong(atomic_load(&((px_py_engine_obj_t *)op)->raise_errors));
}

static int set_raise_errors(PyObject *op, PyObject *value, void *c)
{
    int on = value ? PyObject_IsTrue(value) : -1;
    (void)c;
    if (value == NULL)
        PyErr_SetString(PyExc_AttributeError, "raise_errors cannot be deleted");
    if (on < 0)
        return -1;
    atomic_store(&((px_py_engine_obj_t *)op)->raise_errors, on > 0);
    return 0;
}

static PyObject *get_memory_budget(PyObject *op, void *c)
{
    px_engine_t *e = ((px_py_engine_obj_t *)op)->e;

    (void)c;
    return PyLong_FromSize_t(e ? px_engine_memory_budget(e) : 0);
}

static PyObject *get_clients(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromLong(atomic_load(&((px_py_engine_obj_t *)op)->clients));
}

PyGetSetDef px_py_engine_getset[] = {
    {"backend", get_backend, NULL, "'io_uring' or 'epoll'", NULL},
    {"uring_error", get_uring_error, NULL, "why io_uring was not used, or None", NULL},
    {"workers", get_workers, NULL, "number of worker threads", NULL},
    {"started", get_started, NULL, NULL, NULL},
    {"finished", get_finished, NULL, "True once every worker has exited", NULL},
    {"clients", get_clients, NULL, "client connections not yet closed", NULL},
    {"tasks", get_tasks, NULL, "submitted work and timers not yet finished", NULL},
    {"raise_errors", get_raise_errors, set_raise_errors,
     "True: exceptions of connection callbacks that no exception_handler takes are\n"
     "re-raised by wait() (run()); False (the default): logged, and the connection closed",
     NULL},
    {"handoff_ms", get_handoff_ms, NULL,
     "a worker blocked this long in a callback goes to a spare thread (0: never)", NULL},
    {"memory_budget", get_memory_budget, NULL,
     "bytes of request bodies and unsent output the process holds at most", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};
