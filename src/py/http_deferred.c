/*
 * Deferred HTTP responses in the binding (px_http_defer): the Deferred type,
 * made by pyparallel.http.defer(request) inside a handler and answered later,
 * from any thread, with what a handler would have returned. An async def
 * handler whose coroutine suspends answers this way when its task is done,
 * with no thread waiting for it meanwhile.
 *
 * Threads: defer and the answer need the worker, so both are bracketed by
 * px_py_engine_enter/leave; the answer's conversion (the result into a
 * response) runs on the worker with the thread state attached, as a handler's
 * result does.
 */
#include "http.h"

#include "px/http_stream.h"

typedef struct {
    PyObject_HEAD px_http_stream_t *st;
    px_py_http_app_t *a;
    px_worker_t *w;
    PyObject *app;     /* whose _http_error answers an HttpError */
    PyObject *request; /* for _http_error */
} deferred_obj_t;

/* One answer on its way to the worker. */
typedef struct {
    px_py_http_app_t *a;
    px_worker_t *w;
    PyObject *result; /* what to send, or NULL: exc, or what call returns */
    PyObject *exc;
    PyObject *call; /* respond_with: called with the request on the worker */
    PyObject *gone; /* respond_with: called instead when the client went first */
    PyObject *app, *request;
} answer_t;

static void answer_free(answer_t *an)
{
    Py_XDECREF(an->result);
    Py_XDECREF(an->exc);
    Py_XDECREF(an->call);
    Py_XDECREF(an->gone);
    Py_XDECREF(an->app);
    Py_XDECREF(an->request);
    PyMem_RawFree(an);
}

/* The result to send: the answer's, what its call returned (run as the
 * request's handler, so that stream(request) works in it), or the app's
 * answer to an HttpError; NULL with the exception set otherwise. */
static PyObject *result_of(answer_t *an, px_http_exchange_t *x)
{
    px_module_state_t *st = px_py_engine_state(an->a->engine);

    if (an->result != NULL)
        return Py_NewRef(an->result);
    if (an->call != NULL) {
        PyObject *r;

        px_py_http_stream_enter(x, an->request);
        r = PyObject_CallOneArg(an->call, an->request);
        px_py_http_stream_leave();
        if (r != NULL || st->http_error == NULL || !PyErr_ExceptionMatches(st->http_error))
            return r;
        an->exc = PyErr_GetRaisedException();
    }
    if (st->http_error != NULL && an->app != NULL &&
        PyErr_GivenExceptionMatches(an->exc, st->http_error))
        return PyObject_CallMethod(an->app, "_http_error", "OO", an->request, an->exc);
    PyErr_SetRaisedException(Py_NewRef(an->exc));
    return NULL;
}

/* On the worker: as app_call does with a handler's result. */
static void answer_fn(px_http_exchange_t *x, void *arg)
{
    answer_t *an = arg;
    PyObject *result;

    if (x == NULL) { /* the client went away: the references to drop */
        PyGILState_STATE g = PyGILState_Ensure();
        PyObject *r = an->gone ? PyObject_CallNoArgs(an->gone) : Py_NewRef(Py_None);

        if (r == NULL)
            px_py_display_exception(PyErr_GetRaisedException());
        Py_XDECREF(r);
        answer_free(an);
        PyGILState_Release(g);
        return;
    }
    px_py_attach(an->w);
    result = result_of(an, x);
    if (px_conn_closing(x->conn)) {
        if (result == NULL) {
            PX_STAT_ADD(px_worker_stats(an->w), errors, 1);
            px_py_display_exception(PyErr_GetRaisedException());
        }
        x->responded = true; /* nobody to answer */
    } else if (result == NULL || px_py_http_send_result(an->a, x, result) < 0) {
        PX_STAT_ADD(px_worker_stats(an->w), errors, 1);
        if (PyErr_Occurred())
            px_py_display_exception(PyErr_GetRaisedException());
        x->responded = x->stream != NULL || x->ws != NULL; /* else the engine's 500 */
        x->keep_alive = false;
    }
    Py_XDECREF(result);
    answer_free(an);
}

/* Hand result (or exc) to the worker. True when it goes; False when the
 * client went away or the response was answered already. */
static PyObject *answer(deferred_obj_t *self, PyObject *result, PyObject *exc, PyObject *call,
                        PyObject *gone)
{
    answer_t *an = PyMem_RawCalloc(1, sizeof(*an));
    bool entered;
    int rc;

    if (an == NULL)
        return PyErr_NoMemory();
    an->a = self->a;
    an->w = self->w;
    an->result = Py_XNewRef(result);
    an->exc = Py_XNewRef(exc);
    an->call = Py_XNewRef(call);
    an->gone = Py_XNewRef(gone);
    an->app = Py_XNewRef(self->app);
    an->request = Py_XNewRef(self->request);
    entered = px_py_engine_enter(self->w);
    rc = px_http_answer(self->st, answer_fn, an);
    px_py_engine_leave(self->w, entered);
    if (rc < 0)
        answer_free(an);
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    return PyBool_FromLong(rc == 0);
}

static PyObject *deferred_respond(deferred_obj_t *self, PyObject *result)
{
    return answer(self, result, NULL, NULL, NULL);
}

static PyObject *deferred_respond_with(deferred_obj_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fn", "gone", NULL};
    PyObject *fn, *gone = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:respond_with", kwlist, &fn, &gone))
        return NULL;
    if (!PyCallable_Check(fn) || (gone != Py_None && !PyCallable_Check(gone))) {
        PyErr_SetString(PyExc_TypeError, "respond_with(fn, gone=None) takes callables");
        return NULL;
    }
    return answer(self, NULL, NULL, fn, gone == Py_None ? NULL : gone);
}

static PyObject *deferred_fail(deferred_obj_t *self, PyObject *exc)
{
    if (!PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_TypeError, "fail() takes an exception instance");
        return NULL;
    }
    return answer(self, NULL, exc, NULL, NULL);
}

static PyObject *deferred_get_closed(deferred_obj_t *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(px_http_stream_closed(self->st));
}

static void deferred_dealloc(deferred_obj_t *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    if (self->st != NULL)
        px_http_stream_release(self->st); /* unanswered: 500 */
    Py_XDECREF(self->app);
    Py_XDECREF(self->request);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef deferred_methods[] = {
    {"respond", (PyCFunction)deferred_respond, METH_O,
     "respond(result) -> bool: answer with what a handler would return (any thread); False "
     "when the client went away or the request was answered already"},
    {"respond_with", (PyCFunction)(void (*)(void))deferred_respond_with,
     METH_VARARGS | METH_KEYWORDS,
     "respond_with(fn, gone=None) -> bool: answer with what fn(request) returns, called on "
     "the request's worker as its handler would be (stream(request) works in it); gone() "
     "is called instead when the client goes away before fn could run; False as "
     "respond()"},
    {"fail", (PyCFunction)deferred_fail, METH_O,
     "fail(exc) -> bool: answer as to a handler that raised exc (an HttpError's status, else "
     "500 and the traceback in the log)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef deferred_getset[] = {
    {"closed", (getter)deferred_get_closed, NULL, "True once answered or the client went away",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot deferred_slots[] = {
    {Py_tp_dealloc, deferred_dealloc},
    {Py_tp_methods, deferred_methods},
    {Py_tp_getset, deferred_getset},
    {Py_tp_doc, "An HTTP response answered later, from any thread (pyparallel.http.defer())."},
    {0, NULL},
};

PyType_Spec px_py_http_deferred_type_spec = {
    .name = "pyparallel._core.Deferred",
    .basicsize = sizeof(deferred_obj_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = deferred_slots,
};

/* The app instance whose handler runs (the connection's own one in
 * per-connection mode): it answers an HttpError. New reference. */
static PyObject *app_of(px_py_http_app_t *a, px_conn_t *c)
{
    PyObject *ctx, *app;

    if (!a->per_connection)
        return Py_XNewRef(a->app);
    ctx = px_py_http_conn_context(a, c);
    app = ctx ? PyObject_GetAttrString(ctx, "app") : NULL;
    Py_XDECREF(ctx);
    return app;
}

/* _core.http_defer(request) */
static PyObject *http_defer(PyObject *mod, PyObject *req)
{
    px_module_state_t *st = PyModule_GetState(mod);
    px_http_exchange_t *x;
    deferred_obj_t *obj;
    bool entered;
    int rc;

    if ((x = px_py_http_current(req)) == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "defer(request): only inside the handler of request, on its thread");
        return NULL;
    }
    obj = PyObject_New(deferred_obj_t, st->http_deferred_type);
    if (obj == NULL)
        return NULL;
    obj->st = NULL;
    obj->a = px_py_request_app(req);
    obj->w = px_conn_worker(x->conn);
    obj->app = NULL;
    obj->request = Py_NewRef(req);
    if (obj->a == NULL || (obj->app = app_of(obj->a, x->conn)) == NULL) {
        Py_DECREF(obj);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "defer(request): not an HttpServer's request");
        return NULL;
    }
    if (px_py_request_keep(req) < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    entered = px_py_engine_enter(obj->w);
    rc = px_http_defer(x, &obj->st);
    px_py_engine_leave(obj->w, entered);
    if (rc < 0) {
        Py_DECREF(obj);
        if (rc == -ENOMEM)
            return PyErr_NoMemory();
        PyErr_SetString(rc == -ENOTCONN ? PyExc_ConnectionError : PyExc_RuntimeError,
                        rc == -ENOTCONN ? "defer(request): the connection is closing"
                                        : "defer(request): the request was answered already");
        return NULL;
    }
    return (PyObject *)obj;
}

PyMethodDef px_py_http_deferred_methods[] = {
    {"http_defer", http_defer, METH_O,
     "http_defer(request) -> Deferred: answer request later (inside its handler); "
     "see pyparallel.http.defer"},
    {NULL, NULL, 0, NULL},
};
