/*
 * Awaitables returned by the project's own callbacks (an `async def`
 * data_received, an `async def` HttpServer handler): handed to
 * pyparallel.asyncio, which drives them on the worker's loop. The drivers are
 * looked up once, on first use, so that code which never returns one never
 * imports asyncio.
 */
#include "binding.h"

#include <stdatomic.h>

bool px_py_aio_awaitable(PyObject *r)
{
    PyTypeObject *tp = Py_TYPE(r);

    return PyCoro_CheckExact(r) || (tp->tp_as_async != NULL && tp->tp_as_async->am_await != NULL);
}

/* The driver `name` of pyparallel.asyncio._drive (borrowed; it lives as long
 * as the module state), or NULL with an exception set. */
static PyObject *driver(px_module_state_t *st, _Atomic(PyObject *) *slot, const char *name)
{
    PyObject *fn = atomic_load(slot), *mod, *expected = NULL;

    if (fn != NULL)
        return fn;
    mod = PyImport_ImportModule("pyparallel.asyncio._drive");
    if (mod == NULL)
        return NULL;
    fn = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    if (fn == NULL)
        return NULL;
    if (!atomic_compare_exchange_strong(slot, &expected, fn)) {
        Py_DECREF(fn); /* another thread was first: the same function */
        return expected;
    }
    (void)st;
    return fn;
}

int px_py_aio_drive_protocol(px_module_state_t *st, PyObject *transport, PyObject *r)
{
    PyObject *fn = driver(st, &st->aio_drive_protocol, "drive_protocol"), *res;

    if (fn == NULL)
        return -1;
    res = PyObject_CallFunctionObjArgs(fn, transport, r, NULL);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

PyObject *px_py_aio_drive_http(px_module_state_t *st, PyObject *r, PyObject *req)
{
    PyObject *fn = driver(st, &st->aio_drive_http, "drive_http"), *res;

    res = fn ? PyObject_CallFunctionObjArgs(fn, r, req, NULL) : NULL;
    Py_DECREF(r);
    return res;
}
