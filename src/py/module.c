/* pyparallel._core: module definition and state. */
#include "binding.h"
#include "stm.h"
#include "px/listen_fds.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>

px_module_state_t *px_py_state_of_type(PyTypeObject *tp)
{
    PyObject *m = PyType_GetModuleByDef(tp, &px_py_module_def); // borrowed
    return m ? (px_module_state_t *)PyModule_GetState(m) : NULL;
}

static PyObject *current_transport(PyObject *module, PyObject *unused)
{
    PyObject *t = px_py_current_transport();
    (void)module;
    (void)unused;
    if (t == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(t);
}

static PyObject *worker_index(PyObject *module, PyObject *unused)
{
    px_worker_t *w = px_worker_current();
    (void)module;
    (void)unused;
    if (w == NULL)
        Py_RETURN_NONE;
    return PyLong_FromLong(px_worker_index(w));
}

/* worker_waiting(): released handler code is about to wait for its own
 * worker's loop; the worker goes to a spare at once (px_worker_waiting). */
static PyObject *worker_waiting(PyObject *module, PyObject *unused)
{
    px_worker_t *w = px_worker_current();
    (void)module;
    (void)unused;
    return PyBool_FromLong(w != NULL && px_worker_waiting(w));
}

/* adopt_listeners(fds): one group of inherited sockets (px/listen_fds.h). */
static PyObject *adopt_listeners(PyObject *module, PyObject *seq)
{
    int fds[PX_LISTEN_GROUP_MAX];
    Py_ssize_t i, n;
    int rc;

    PyObject *fast = PySequence_Fast(seq, "adopt_listeners() needs a sequence of descriptors");
    if (fast == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(fast);
    if (n < 1 || n > PX_LISTEN_GROUP_MAX) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "adopt_listeners(): 1 to 256 descriptors");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        fds[i] = fd < 0 || fd > INT_MAX ? -1 : (int)fd;
        if (fds[i] == -1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "adopt_listeners(): not a descriptor");
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    rc = px_listen_fds_adopt(fds, (int)n);
    if (rc < 0)
        return px_py_raise_errno(PyModule_GetState(module), rc, "adopt_listeners");
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"adopt_listeners", adopt_listeners, METH_O,
     "adopt_listeners(fds): inherited listening sockets bound to one address; a listen\n"
     "given one of them serves them all and binds nothing"},
    {"current_transport", current_transport, METH_NOARGS,
     "The transport of the running protocol callback, or None."},
    {"worker_index", worker_index, METH_NOARGS,
     "Index of the worker running this code, or None outside workers."},
    {"worker_waiting", worker_waiting, METH_NOARGS,
     "worker_waiting() -> bool: released code is about to wait for work of its own\n"
     "worker; hand the worker to a spare thread now."},
    {"json_dumps", (PyCFunction)(void (*)(void))px_py_json_dumps, METH_VARARGS | METH_KEYWORDS,
     "json_dumps(obj, *, default=None) -> bytes: compact UTF-8 JSON."},
    {"submit", (PyCFunction)(void (*)(void))px_py_submit, METH_VARARGS | METH_KEYWORDS,
     "submit(engine, fn, worker=-1) -> worker index: call fn() on a worker (the least\n"
     "loaded unless one is given); what it raises is re-raised by run()."},
    {"tasks_hold", px_py_tasks_hold, METH_VARARGS,
     "tasks_hold(engine, delta): count (1) or uncount (-1) work pending off the workers\n"
     "among the engine's tasks."},
    {"current_engine", px_py_current_engine_fn, METH_NOARGS,
     "The Engine whose worker runs this code, or None."},
    {"post_main", px_py_post_main, METH_VARARGS,
     "post_main(engine, fn): the main thread calls fn() when it next waits in the\n"
     "engine (run(), run_once()); what it raises is re-raised there."},
    {"share", px_py_share, METH_VARARGS,
     "share(*objs) -> dict: make the object graphs immortal (counts: objects, bytes, ...)."},
    {"share_stats", px_py_share_stats, METH_NOARGS,
     "share_stats() -> {'objects': n, 'bytes': n} newly shared since the process started."},
    {"share_info", px_py_share_info, METH_NOARGS,
     "share_info() -> {'immortal': bool, 'reason': str}: what share() does here."},
    {NULL, NULL, 0, NULL},
};

static int add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **out)
{
    PyObject *t = PyType_FromModuleAndSpec(m, spec, NULL);
    if (t == NULL)
        return -1;
    *out = (PyTypeObject *)t;
    return PyModule_AddType(m, (PyTypeObject *)t);
}

static int add_subtype(PyObject *m, PyType_Spec *spec, PyTypeObject *base, PyTypeObject **out)
{
    PyObject *t = PyType_FromModuleAndSpec(m, spec, (PyObject *)base);
    if (t == NULL)
        return -1;
    *out = (PyTypeObject *)t;
    return PyModule_AddType(m, (PyTypeObject *)t);
}

static int module_exec(PyObject *m)
{
    px_module_state_t *st = PyModule_GetState(m);

    if (add_type(m, &px_py_engine_type_spec, &st->engine_type) < 0 ||
        add_type(m, &px_py_transport_type_spec, &st->transport_type) < 0 ||
        add_type(m, &px_py_sendfile_type_spec, &st->sendfile_type) < 0 ||
        add_type(m, &px_py_request_type_spec, &st->request_type) < 0 ||
        add_type(m, &px_py_timer_type_spec, &st->timer_type) < 0 ||
        add_type(m, &px_py_rwlock_type_spec, &st->rwlock_type) < 0 ||
        add_type(m, &px_py_rwlock_guard_type_spec, &st->rwlock_guard_type) < 0 ||
        add_subtype(m, &px_py_locked_dict_type_spec, &PyDict_Type, &st->locked_dict_type) < 0 ||
        add_subtype(m, &px_py_locked_list_type_spec, &PyList_Type, &st->locked_list_type) < 0 ||
        add_type(m, &px_py_http_stream_type_spec, &st->http_stream_type) < 0 ||
        add_type(m, &px_py_http_deferred_type_spec, &st->http_deferred_type) < 0 ||
        add_type(m, &px_py_aio_waker_type_spec, &st->aio_waker_type) < 0 ||
        add_type(m, &px_py_websocket_type_spec, &st->websocket_type) < 0)
        return -1;
    atomic_store(&st->debug_state, -1);
    if (px_py_errors_init(m, st) < 0 || px_py_stm_init(m, st) < 0)
        return -1;
    if (px_py_share_init(st) < 0)
        return -1;
    if (PyModule_AddStringConstant(m, "__version__", PX_VERSION) < 0 ||
        PyModule_AddFunctions(m, px_py_stats_methods) < 0 ||
        PyModule_AddFunctions(m, px_py_http_methods) < 0 ||
        PyModule_AddFunctions(m, px_py_http_stream_methods) < 0 ||
        PyModule_AddFunctions(m, px_py_http_deferred_methods) < 0 ||
        PyModule_AddFunctions(m, px_py_asgi_methods) < 0 ||
        PyModule_AddFunctions(m, px_py_asgi_response_methods) < 0 ||
        PyModule_AddFunctions(m, px_py_aio_methods) < 0 ||
        PyModule_AddFunctions(m, px_py_websocket_methods) < 0)
        return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
    px_module_state_t *st = PyModule_GetState(m);
    Py_VISIT(st->engine_type);
    Py_VISIT(st->transport_type);
    Py_VISIT(st->sendfile_type);
    Py_VISIT(st->request_type);
    Py_VISIT(st->engine_error);
    Py_VISIT(st->stm_error);
    Py_VISIT(st->stm_io_error);
    Py_VISIT(st->timer_type);
    Py_VISIT(st->rwlock_type);
    Py_VISIT(st->rwlock_guard_type);
    Py_VISIT(st->locked_dict_type);
    Py_VISIT(st->locked_list_type);
    Py_VISIT(st->http_stream_type);
    Py_VISIT(st->http_deferred_type);
    Py_VISIT(st->websocket_type);
    Py_VISIT(st->http_error);
    Py_VISIT(st->json_loads);
    Py_VISIT(st->parse_qsl);
    Py_VISIT(st->header_range);
    Py_VISIT(st->new_response);
    Py_VISIT(st->aio_waker_type);
    Py_VISIT(atomic_load(&st->aio_drive_protocol));
    Py_VISIT(atomic_load(&st->aio_drive_http));
    return 0;
}

static int module_clear(PyObject *m)
{
    px_module_state_t *st = PyModule_GetState(m);
    Py_CLEAR(st->engine_type);
    Py_CLEAR(st->transport_type);
    Py_CLEAR(st->sendfile_type);
    Py_CLEAR(st->request_type);
    Py_CLEAR(st->engine_error);
    Py_CLEAR(st->stm_error);
    Py_CLEAR(st->stm_io_error);
    Py_CLEAR(st->timer_type);
    Py_CLEAR(st->rwlock_type);
    Py_CLEAR(st->rwlock_guard_type);
    Py_CLEAR(st->locked_dict_type);
    Py_CLEAR(st->locked_list_type);
    Py_CLEAR(st->http_stream_type);
    Py_CLEAR(st->http_deferred_type);
    Py_CLEAR(st->websocket_type);
    Py_CLEAR(st->http_error);
    Py_CLEAR(st->json_loads);
    Py_CLEAR(st->parse_qsl);
    Py_CLEAR(st->header_range);
    Py_CLEAR(st->new_response);
    Py_CLEAR(st->aio_waker_type);
    Py_XDECREF(atomic_exchange(&st->aio_drive_protocol, NULL));
    Py_XDECREF(atomic_exchange(&st->aio_drive_http, NULL));
    return 0;
}

static void module_free(void *m)
{
    px_module_state_t *st = PyModule_GetState((PyObject *)m);

    module_clear((PyObject *)m);
    if (st != NULL)
        px_py_share_free(st);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_GIL_DISABLED
    /* Audited: shared state is per worker or behind the engine's own locks. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyModuleDef px_py_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyparallel._core",
    .m_doc = "The C engine of pyparallel.",
    .m_size = sizeof(px_module_state_t),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&px_py_module_def);
}
