/*
 * Streamed HTTP responses in the binding (px/http_stream.h): the HttpStream
 * type that any thread may write to, made by pyparallel.http.stream()
 * inside a handler, and the iterators (generators) a handler returns, whose
 * items are sent as they come, chunked or with the length it gave.
 *
 * Threads: a handler runs with its worker released, so stream_start (which
 * needs the worker) is bracketed by px_py_engine_enter/leave; writes and
 * waits run with the thread state detached, the bytes held by their buffer.
 * An iterator is consumed on the handler's thread, released: a generator
 * that blocks (sleeps, waits for data) keeps this thread, and the worker is
 * handed to a spare for the other connections.
 */
#include "http.h"

#include "px/http_stream.h"

/* The exchange whose handler runs on this thread, and its request. */
static _Thread_local px_http_exchange_t *current_x;
static _Thread_local PyObject *current_req;

void px_py_http_stream_enter(px_http_exchange_t *x, PyObject *req)
{
    current_x = x;
    current_req = req;
}

void px_py_http_stream_leave(void)
{
    current_x = NULL;
    current_req = NULL;
}

px_http_exchange_t *px_py_http_current(PyObject *req)
{
    return req != NULL && req == current_req ? current_x : NULL;
}

typedef struct {
    PyObject_HEAD px_http_stream_t *st;
} stream_obj_t;

static int raise_stream_error(int rc, const char *what)
{
    switch (rc) {
    case -EPIPE: PyErr_Format(PyExc_BrokenPipeError, "%s: the stream is over", what); break;
    case -EAGAIN: PyErr_Format(PyExc_BlockingIOError, "%s: over the high-water mark", what); break;
    case -ETIMEDOUT: PyErr_Format(PyExc_TimeoutError, "%s: timed out", what); break;
    case -EMSGSIZE:
        PyErr_Format(PyExc_ValueError, "%s: past the length the response announced", what);
        break;
    case -EBADMSG:
        PyErr_Format(PyExc_ValueError, "%s: short of the length the response announced", what);
        break;
    case -EDEADLK:
        PyErr_Format(PyExc_RuntimeError, "%s: would wait for its own worker", what);
        break;
    default: errno = -rc; PyErr_SetFromErrno(PyExc_OSError);
    }
    return -1;
}

static int timeout_ms_of(PyObject *timeout, int *out)
{
    double t;

    *out = -1;
    if (timeout == NULL || timeout == Py_None)
        return 0;
    t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred())
        return -1;
    *out = t <= 0 ? 0 : t > 2e6 ? 2000000000 : (int)(t * 1000);
    return 0;
}

/* Write data (bytes-like or str) whole, waiting while over the mark when
 * block. 0, or -1 with an exception. */
static int write_data(px_http_stream_t *st, PyObject *data, bool block, int timeout_ms)
{
    Py_buffer view;
    struct iovec iov;
    const char *s = NULL;
    Py_ssize_t n = 0;
    bool viewed = false;
    int rc;

    if (PyUnicode_Check(data)) {
        if ((s = PyUnicode_AsUTF8AndSize(data, &n)) == NULL)
            return -1;
    } else {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Format(PyExc_TypeError,
                         "a streamed body takes bytes-like objects or str, not %.100s",
                         Py_TYPE(data)->tp_name);
            return -1;
        }
        s = view.buf;
        n = view.len;
        viewed = true;
    }
    iov.iov_base = (void *)s;
    iov.iov_len = (size_t)n;
    Py_BEGIN_ALLOW_THREADS for (;;)
    {
        rc = px_http_stream_write(st, &iov, 1, 0);
        if (rc != -EAGAIN || !block)
            break;
        rc = px_http_stream_wait(st, timeout_ms);
        if (rc < 0)
            break;
    }
    Py_END_ALLOW_THREADS if (viewed) PyBuffer_Release(&view);
    return rc < 0 ? raise_stream_error(rc, "write") : 0;
}

/* ---- HttpStream ------------------------------------------------------------- */

static PyObject *stream_write(stream_obj_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "block", "timeout", NULL};
    PyObject *data, *timeout = Py_None;
    int block = 1, ms;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$pO:write", kwlist, &data, &block, &timeout) ||
        timeout_ms_of(timeout, &ms) < 0)
        return NULL;
    if (write_data(self->st, data, block != 0, ms) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *stream_end(stream_obj_t *self, PyObject *unused)
{
    int rc;

    (void)unused;
    Py_BEGIN_ALLOW_THREADS rc = px_http_stream_end(self->st);
    Py_END_ALLOW_THREADS if (rc < 0) return raise_stream_error(rc, "end"), NULL;
    Py_RETURN_NONE;
}

static PyObject *stream_close(stream_obj_t *self, PyObject *unused)
{
    (void)unused;
    if (!px_http_stream_closed(self->st)) {
        Py_BEGIN_ALLOW_THREADS px_http_stream_end(self->st);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *stream_abort(stream_obj_t *self, PyObject *unused)
{
    (void)unused;
    Py_BEGIN_ALLOW_THREADS px_http_stream_abort(self->st);
    Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

static PyObject *stream_fail(stream_obj_t *self, PyObject *unused)
{
    (void)unused;
    Py_BEGIN_ALLOW_THREADS px_http_stream_fail(self->st);
    Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

static PyObject *stream_wait_writable(stream_obj_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    int ms, rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:wait_writable", kwlist, &timeout) ||
        timeout_ms_of(timeout, &ms) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS rc = px_http_stream_wait(self->st, ms);
    Py_END_ALLOW_THREADS if (rc == -ETIMEDOUT || rc == -EPIPE) return PyBool_FromLong(0);
    if (rc < 0)
        return raise_stream_error(rc, "wait_writable"), NULL;
    return PyBool_FromLong(1);
}

static PyObject *stream_heartbeat(stream_obj_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"interval", "data", NULL};
    double interval;
    Py_buffer data = {0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "d|y*:heartbeat", kwlist, &interval, &data))
        return NULL;
    rc = px_http_stream_heartbeat(self->st, interval <= 0 ? 0 : (unsigned)(interval * 1000 + 0.5),
                                  data.buf ? data.buf : ": \n\n", data.buf ? (size_t)data.len : 3);
    if (data.obj)
        PyBuffer_Release(&data);
    if (rc == -EINVAL) {
        PyErr_SetString(PyExc_ValueError, "heartbeat: only for a body of unknown length");
        return NULL;
    }
    if (rc < 0)
        return raise_stream_error(rc, "heartbeat"), NULL;
    Py_RETURN_NONE;
}

static PyObject *stream_enter(stream_obj_t *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self);
}

/* A with block: ended when it completes, aborted when it raises. */
static PyObject *stream_exit(stream_obj_t *self, PyObject *args)
{
    PyObject *type = PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None;
    PyObject *r = type != Py_None ? stream_abort(self, NULL) : stream_close(self, NULL);

    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static PyObject *stream_get_closed(stream_obj_t *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(px_http_stream_closed(self->st));
}

static PyObject *stream_get_written(stream_obj_t *self, void *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLongLong(px_http_stream_written(self->st));
}

static void stream_dealloc(stream_obj_t *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    if (self->st != NULL)
        px_http_stream_release(self->st); /* unfinished: aborted */
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef stream_methods[] = {
    {"write", (PyCFunction)(void (*)(void))stream_write, METH_VARARGS | METH_KEYWORDS,
     "write(data, *, block=True, timeout=None): append to the body (bytes-like or str); over "
     "the high-water mark it waits (or raises BlockingIOError with block=False); "
     "BrokenPipeError once the stream is over (the client went away)"},
    {"end", (PyCFunction)stream_end, METH_NOARGS,
     "end(): the body is complete; ValueError when short of the announced length"},
    {"close", (PyCFunction)stream_close, METH_NOARGS, "close(): end() unless already over"},
    {"abort", (PyCFunction)stream_abort, METH_NOARGS,
     "abort(): close the connection now, the response incomplete"},
    {"fail", (PyCFunction)stream_fail, METH_NOARGS,
     "fail(): the body cannot be completed: the connection closes after what was written, "
     "without what would end the body (the client sees it truncated)"},
    {"wait_writable", (PyCFunction)(void (*)(void))stream_wait_writable,
     METH_VARARGS | METH_KEYWORDS,
     "wait_writable(timeout=None) -> bool: wait until a write would be taken; False when the "
     "stream is over or the time ran out"},
    {"heartbeat", (PyCFunction)(void (*)(void))stream_heartbeat, METH_VARARGS | METH_KEYWORDS,
     "heartbeat(interval, data=b': \\n\\n'): send data whenever nothing was written for interval "
     "seconds (0 stops it)"},
    {"__enter__", (PyCFunction)stream_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)stream_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stream_getset[] = {
    {"closed", (getter)stream_get_closed, NULL,
     "True once the stream is over: ended, aborted, or the client went away", NULL},
    {"written", (getter)stream_get_written, NULL, "body bytes written so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot stream_slots[] = {
    {Py_tp_dealloc, stream_dealloc},
    {Py_tp_methods, stream_methods},
    {Py_tp_getset, stream_getset},
    {Py_tp_doc, "A streamed HTTP response body that any thread may write to "
                "(pyparallel.http.stream())."},
    {0, NULL},
};

PyType_Spec px_py_http_stream_type_spec = {
    .name = "pyparallel._core.HttpStream",
    .basicsize = sizeof(stream_obj_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = stream_slots,
};

/* Start the stream of x (the thread must own the worker). */
static int start(px_http_exchange_t *x, int status, const char *ctype, const char *extra,
                 size_t extra_len, int64_t length, px_http_stream_t **out)
{
    px_http_stream_config_t cfg = {
        .status = status,
        .content_type = ctype,
        .extra = extra,
        .extra_len = extra_len,
        .length = length,
    };
    int rc = px_http_stream_start(x, &cfg, out);

    if (rc == -EINVAL)
        PyErr_SetString(PyExc_ValueError, "a streamed response with a field that could break "
                                          "the framing (see the log)");
    else if (rc < 0)
        raise_stream_error(rc == -ENOTCONN ? -EPIPE : rc, "stream");
    return rc < 0 ? -1 : 0;
}

/* http_stream(request, status, content_type, headers, length) */
static PyObject *http_stream(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"request", "status", "content_type", "headers", "length", NULL};
    px_module_state_t *st = PyModule_GetState(module);
    PyObject *req, *headers = Py_None, *ctype_o = Py_None, *length_o = Py_None;
    px_http_exchange_t *x = current_x;
    const char *ctype = NULL;
    long long length = PX_HTTP_LENGTH_UNKNOWN;
    char *extra = NULL;
    size_t extra_len = 0;
    int status = 200, rc;
    stream_obj_t *obj;
    bool entered;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|iOOO:http_stream", kwlist, &req, &status,
                                     &ctype_o, &headers, &length_o))
        return NULL;
    if (x == NULL || req != current_req) {
        PyErr_SetString(PyExc_RuntimeError,
                        "stream(request): only inside the handler of request, on its thread");
        return NULL;
    }
    if (status < 200 || status > 999) {
        PyErr_Format(PyExc_ValueError, "invalid HTTP status %d", status);
        return NULL;
    }
    if (length_o != Py_None && ((length = PyLong_AsLongLong(length_o)) < 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "length must be >= 0 or None");
        return NULL;
    }
    if (ctype_o != Py_None && (ctype = PyUnicode_AsUTF8(ctype_o)) == NULL)
        return NULL;
    if (px_py_http_header_lines(headers, &extra, &extra_len) < 0)
        return NULL;
    obj = PyObject_New(stream_obj_t, st->http_stream_type);
    if (obj == NULL) {
        PyMem_RawFree(extra);
        return NULL;
    }
    obj->st = NULL;
    entered = px_py_engine_enter(px_conn_worker(x->conn));
    rc = start(x, status, ctype, extra, extra_len, length, &obj->st);
    px_py_engine_leave(px_conn_worker(x->conn), entered);
    PyMem_RawFree(extra);
    if (rc < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    return (PyObject *)obj;
}

PyMethodDef px_py_http_stream_methods[] = {
    {"http_stream", (PyCFunction)(void (*)(void))http_stream, METH_VARARGS | METH_KEYWORDS,
     "http_stream(request, status=200, content_type=None, headers=None, length=None) -> "
     "HttpStream: start the response of request (inside its handler) with a body written "
     "later, by any thread; see pyparallel.http.stream"},
    {NULL, NULL, 0, NULL},
};

/* ---- iterators returned by handlers -------------------------------------------- */

static void call_close(PyObject *iterable)
{
    PyObject *r;

    if (!PyObject_HasAttrString(iterable, "close"))
        return;
    r = PyObject_CallMethod(iterable, "close", NULL);
    if (r == NULL)
        px_py_display_exception(PyErr_GetRaisedException());
    Py_XDECREF(r);
}

int px_py_http_stream_iter(px_http_exchange_t *x, int status, const char *ctype, const char *extra,
                           size_t extra_len, int64_t length, PyObject *iterable)
{
    px_worker_t *w = px_conn_worker(x->conn);
    px_http_stream_t *st;
    PyObject *it = NULL, *item;
    bool released, ok = true;
    int rc, errors = 0; /* counted once the worker is ours again (stats are its own) */

    if (start(x, status, ctype, extra, extra_len, length, &st) < 0) {
        call_close(iterable);
        return -1;
    }
    /* HEAD and bodiless statuses: nothing to take from it (it may not end) */
    if (!x->head && status != 204 && status != 304)
        it = PyObject_GetIter(iterable);
    released = px_py_release(w);
    while (it != NULL && (item = PyIter_Next(it)) != NULL) {
        rc = write_data(st, item, true, -1);
        Py_DECREF(item);
        if (rc < 0) {
            if (PyErr_ExceptionMatches(PyExc_BrokenPipeError)) {
                PyErr_Clear(); /* the client went away: close() tells the iterator */
            } else {
                px_py_display_exception(PyErr_GetRaisedException());
                errors++;
            }
            ok = false;
            break;
        }
    }
    if (PyErr_Occurred()) { /* the iterator raised: the client sees a cut body */
        px_py_display_exception(PyErr_GetRaisedException());
        errors++;
        ok = false;
    }
    Py_BEGIN_ALLOW_THREADS if (ok) px_http_stream_end(st); /* a length not met is logged */
    else px_http_stream_fail(st); /* what was produced goes, then the close */
    Py_END_ALLOW_THREADS call_close(iterable);
    Py_XDECREF(it);
    px_py_reacquire(w, released);
    if (errors > 0)
        PX_STAT_ADD(px_worker_stats(w), errors, (uint64_t)errors);
    px_http_stream_release(st);
    return 0;
}
