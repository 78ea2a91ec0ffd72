/*
 * The objects a WSGI application is handed besides the environ's strings:
 * wsgi.input over the request body, and start_response with the write()
 * callable it returns, which keep the response (status, headers, body bytes
 * written) for wsgi_call.c.
 */
#include "wsgi.h"

#include <errno.h>
#include <stddef.h>
#include <strings.h>
#include <structmember.h>

#include "px/http_response.h"
#include "px/http_stream.h"

/* ---- wsgi.input ------------------------------------------------------------- */

typedef struct wsgi_input {
    PyObject_HEAD PyObject *body; /* bytes: the body, or what was read of it and not taken */
    Py_ssize_t pos;
    Py_ssize_t len;        /* bytes of body filled: past them is room for the next reads */
    px_http_exchange_t *x; /* a body still arriving: read from here while the app runs */
    bool eof;
} wsgi_input_t;

/* Read-ahead of a streamed body: what one read asks the engine for. */
#define INPUT_READ ((Py_ssize_t)64 << 10)

PyObject *px_py_wsgi_input_new(px_py_wsgi_t *g, const char *body, size_t len)
{
    wsgi_input_t *in = PyObject_New(wsgi_input_t, (PyTypeObject *)g->input_type);

    if (in == NULL)
        return NULL;
    in->pos = 0;
    in->x = NULL;
    in->eof = true;
    in->len = (Py_ssize_t)len;
    in->body = PyBytes_FromStringAndSize(body, (Py_ssize_t)len);
    if (in->body == NULL) {
        Py_DECREF(in);
        return NULL;
    }
    return (PyObject *)in;
}

PyObject *px_py_wsgi_input_stream(px_py_wsgi_t *g, px_http_exchange_t *x)
{
    wsgi_input_t *in = (wsgi_input_t *)px_py_wsgi_input_new(g, NULL, 0);

    if (in != NULL) {
        in->x = x;
        in->eof = false;
    }
    return (PyObject *)in;
}

void px_py_wsgi_input_done(PyObject *input)
{
    ((wsgi_input_t *)input)->x = NULL; /* the exchange ends with the app call */
    ((wsgi_input_t *)input)->eof = true;
}

static void input_dealloc(PyObject *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    Py_XDECREF(((wsgi_input_t *)s)->body);
    PyObject_Free(s);
    Py_DECREF(tp);
}

/* A size argument: None or negative means "all". */
static int size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *out)
{
    *out = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "expected at most one argument (size)");
        return -1;
    }
    if (nargs == 1 && args[0] != Py_None) {
        *out = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
        if (*out == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static Py_ssize_t left(wsgi_input_t *in)
{
    return in->len - in->pos;
}

/* Bytes of the body still to come, as far as its Content-Length tells:
 * PY_SSIZE_T_MAX when it is chunked (unknown). */
static Py_ssize_t to_come(wsgi_input_t *in)
{
    int64_t length = in->x->req->content_length;

    return length < 0 ? PY_SSIZE_T_MAX : (Py_ssize_t)((uint64_t)length - in->x->body_read);
}

/* Room for `want` more bytes after those not taken: a new buffer when
 * short, twice what it keeps (no more than a read needs when it asks for
 * more than `want`, nor than the body can still bring), so that a large
 * read or a long line copies each byte a bounded number of times, not once
 * per step, and a read of a whole Content-Length body ends in a buffer of
 * its exact size, handed over without a last copy. */
static int make_room(wsgi_input_t *in, Py_ssize_t want, Py_ssize_t need)
{
    Py_ssize_t have = left(in), size, most = to_come(in);
    PyObject *grown;

    if (PyBytes_GET_SIZE(in->body) - in->len >= want)
        return 0;
    size = have > PY_SSIZE_T_MAX / 2 ? have : 2 * have;
    if (need - have > want && size > need)
        size = need;
    if (most < PY_SSIZE_T_MAX - have && size > have + most)
        size = have + most;
    if (size < have + want)
        size = have + want;
    grown = PyBytes_FromStringAndSize(NULL, size);
    if (grown == NULL)
        return -1;
    memcpy(PyBytes_AS_STRING(grown), PyBytes_AS_STRING(in->body) + in->pos, (size_t)have);
    Py_SETREF(in->body, grown);
    in->pos = 0;
    in->len = have;
    return 0;
}

/* Read from a body still arriving until `need` bytes are here or it ends:
 * blocks with the thread state detached (the engine sends 100 Continue at
 * the first read). 0, or -1 with OSError (the client went away, a body
 * malformed or over max_body: the connection closes). */
static int fill(wsgi_input_t *in, Py_ssize_t need)
{
    while (left(in) < need && !in->eof && in->x != NULL) {
        Py_ssize_t have = left(in);
        Py_ssize_t want = need - have < INPUT_READ ? INPUT_READ
                                                   : PX_MIN(need - have, INPUT_READ * 16);
        ssize_t n;

        want = PX_MIN(want, to_come(in)); /* 0 at the end: the read says so */

        if (make_room(in, want, need) < 0)
            return -1;
        Py_BEGIN_ALLOW_THREADS n = px_http_body_read(in->x, PyBytes_AS_STRING(in->body) + in->len,
                                                     (size_t)want, -1);
        Py_END_ALLOW_THREADS if (n < 0)
        {
            in->eof = true;
            errno = (int)-n;
            PyErr_SetFromErrno(n == -ECONNRESET ? PyExc_ConnectionResetError : PyExc_OSError);
            return -1;
        }
        if (n == 0)
            in->eof = true;
        in->len += n;
    }
    return 0;
}

/* The next n bytes (the rest when n < 0 or beyond it). */
static PyObject *take(wsgi_input_t *in, Py_ssize_t n)
{
    PyObject *out;

    if (n < 0 || n > left(in))
        n = left(in);
    if (in->pos == 0 && n == in->len && in->eof && n < PyBytes_GET_SIZE(in->body) &&
        Py_REFCNT(in->body) == 1) { /* the rest of a body of unknown length: trimmed in place */
        if (_PyBytes_Resize(&in->body, n) < 0) {
            in->body = PyBytes_FromStringAndSize(NULL, 0); /* the resize let go of it */
            in->pos = in->len = 0;
            return NULL;
        }
    }
    if (in->pos == 0 && n == PyBytes_GET_SIZE(in->body)) { /* all filled, shared: never refilled */
        out = Py_NewRef(in->body);
    } else {
        out = PyBytes_FromStringAndSize(PyBytes_AS_STRING(in->body) + in->pos, n);
    }
    if (out != NULL)
        in->pos += n;
    return out;
}

static PyObject *input_read(PyObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n;
    if (size_arg(args, nargs, &n) < 0 || fill((wsgi_input_t *)s, n < 0 ? PY_SSIZE_T_MAX : n) < 0)
        return NULL;
    return take((wsgi_input_t *)s, n);
}

static PyObject *readline(wsgi_input_t *in, Py_ssize_t limit)
{
    Py_ssize_t searched = 0;

    for (;;) {
        const char *p = PyBytes_AS_STRING(in->body) + in->pos;
        Py_ssize_t n = left(in);
        const char *nl;

        if (limit >= 0 && limit < n)
            n = limit;
        nl = memchr(p + searched, '\n', (size_t)(n - searched));
        if (nl != NULL || in->eof || in->x == NULL || (limit >= 0 && n >= limit))
            return take(in, nl ? (Py_ssize_t)(nl - p) + 1 : n);
        searched = n;
        if (fill(in, left(in) + 1) < 0)
            return NULL;
    }
}

static PyObject *input_readline(PyObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n;
    return size_arg(args, nargs, &n) < 0 ? NULL : readline((wsgi_input_t *)s, n);
}

/* readlines(hint): lines until their total reaches hint (all when hint <= 0). */
static PyObject *input_readlines(PyObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    wsgi_input_t *in = (wsgi_input_t *)s;
    Py_ssize_t hint, total = 0;
    PyObject *lines;

    if (size_arg(args, nargs, &hint) < 0 || (lines = PyList_New(0)) == NULL)
        return NULL;
    for (;;) {
        PyObject *line;
        if (fill(in, 1) < 0) {
            Py_DECREF(lines);
            return NULL;
        }
        if (left(in) == 0 || (hint > 0 && total >= hint))
            break;
        line = readline(in, -1);
        if (line == NULL || PyList_Append(lines, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(lines);
            return NULL;
        }
        total += PyBytes_GET_SIZE(line);
        Py_DECREF(line);
    }
    return lines;
}

static PyObject *input_next(PyObject *s)
{
    wsgi_input_t *in = (wsgi_input_t *)s;
    if (fill(in, 1) < 0)
        return NULL;
    return left(in) > 0 ? readline(in, -1) : NULL; /* NULL, no exception: the end */
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL,
     "read(size=-1) -> bytes: up to size bytes of the body; all that is left by default"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
     "readline(size=-1) -> bytes: the next line, with its b'\\n', at most size bytes"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines(hint=-1) -> list of lines"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot input_slots[] = {
    {Py_tp_doc, "wsgi.input: the request body (PEP 3333)"},
    {Py_tp_methods, input_methods},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, input_next},
    {Py_tp_dealloc, input_dealloc},
    {0, NULL},
};

PyType_Spec px_py_wsgi_input_spec = {
    .name = "pyparallel.wsgi.Input",
    .basicsize = sizeof(wsgi_input_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = input_slots,
};

/* ---- start_response and write() --------------------------------------------- */

static PyObject *start_vectorcall(PyObject *s, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames);

/* Each thread keeps the start_response of its last request when nothing
 * else holds it (nor its write()), to be the next request's: made and
 * freed once rather than per request. */
static _Thread_local struct {
    uint64_t app; /* the px_py_wsgi_t's id */
    px_py_start_response_t *start;
} spare;

static void start_reset(px_py_start_response_t *r)
{
    r->status = 0;
    Py_CLEAR(r->status_line);
    r->reason = NULL;
    Py_CLEAR(r->headers);
    r->length = -1;
    r->x = NULL;
    r->w = NULL;
    r->stream = NULL;
    r->streamed = r->gone = r->failed = false;
    r->sent = 0;
    r->head_sent = false;
    r->len = 0;
}

PyObject *px_py_wsgi_start_new(px_py_wsgi_t *g)
{
    px_py_start_response_t *r = spare.start;

    if (r != NULL && spare.app == g->id) {
        spare.start = NULL;
        return (PyObject *)r;
    }
    r = PyObject_New(px_py_start_response_t, (PyTypeObject *)g->start_type);
    if (r == NULL)
        return NULL;
    r->vectorcall = start_vectorcall;
    r->write_type = (PyTypeObject *)Py_NewRef(g->write_type);
    r->write = NULL;
    r->status_line = NULL;
    r->headers = NULL;
    r->buf = NULL;
    r->cap = 0;
    start_reset(r);
    return (PyObject *)r;
}

/* Let go of r: r and its write() as the thread's spare when nobody else
 * holds either (a start_response the app kept must stay as it was). */
static void start_drop(px_py_start_response_t *r)
{
    Py_CLEAR(r->write); /* r <-> write: broken */
    Py_DECREF(r);
}

void px_py_wsgi_start_done(px_py_wsgi_t *g, PyObject *start)
{
    px_py_start_response_t *r = (px_py_start_response_t *)start;
    Py_ssize_t ours = r->write != NULL ? 2 : 1; /* the caller's and the write()'s */

    if (Py_REFCNT(start) != ours || (r->write != NULL && Py_REFCNT(r->write) != 1) || r->streamed ||
        r->stream != NULL || r->cap > ((size_t)64 << 10)) {
        start_drop(r);
        return;
    }
    start_reset(r);
    if (spare.start != NULL)
        start_drop(spare.start);
    spare.app = g->id;
    spare.start = r;
}

void px_py_wsgi_start_thread_exit(void)
{
    if (spare.start != NULL)
        start_drop(spare.start);
    spare.start = NULL;
}

static void start_dealloc(PyObject *s)
{
    px_py_start_response_t *r = (px_py_start_response_t *)s;
    PyTypeObject *tp = Py_TYPE(s);

    Py_XDECREF(r->headers);
    Py_XDECREF(r->status_line);
    Py_XDECREF(r->write_type);
    PyMem_RawFree(r->buf);
    PyObject_Free(s);
    Py_DECREF(tp);
}

int px_py_wsgi_body_append(px_py_start_response_t *r, const char *data, size_t len)
{
    if (len > r->cap - r->len) {
        size_t cap = PX_MAX(r->cap * 2, r->len + len);
        char *p = PyMem_RawRealloc(r->buf, PX_MAX(cap, (size_t)4096));
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->buf = p;
        r->cap = PX_MAX(cap, (size_t)4096);
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    return 0;
}

/* The status line's code: three digits, then a space and a reason (or
 * nothing). Final statuses only: 1xx are the server's business. The reason
 * (latin-1, as PEP 3333 wants, sent as the app wrote it) in *reason, NULL
 * when there is none. */
static int parse_status(PyObject *status, const char **reason)
{
    Py_ssize_t len;
    const char *s;
    size_t bad;
    int code;

    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "WSGI status must be str, not %.100s",
                     Py_TYPE(status)->tp_name);
        return -1;
    }
    if (PyUnicode_KIND(status) != PyUnicode_1BYTE_KIND) {
        PyErr_Format(PyExc_ValueError, "WSGI status %R is not latin-1", status);
        return -1;
    }
    s = (const char *)PyUnicode_1BYTE_DATA(status);
    len = PyUnicode_GET_LENGTH(status);
    if (len < 3 || s[0] < '1' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
        s[2] > '9' || (len > 3 && s[3] != ' ')) {
        PyErr_Format(PyExc_ValueError, "WSGI status %R is not \"NNN Reason\"", status);
        return -1;
    }
    code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    if (code < 200) {
        PyErr_Format(PyExc_ValueError, "WSGI status %R: 1xx responses are the server's", status);
        return -1;
    }
    *reason = len > 4 ? s + 4 : NULL;
    if (*reason != NULL && !px_http_field_value_ok(*reason, (size_t)len - 4, &bad)) {
        PyErr_Format(PyExc_ValueError, "WSGI status %R: a control byte in the reason phrase",
                     status);
        return -1;
    }
    return code;
}

/* write(data), the callable start_response returns: a small object of its
 * own (not a bound builtin), kept with its start_response between requests. */
typedef struct wsgi_write {
    PyObject_HEAD vectorcallfunc vectorcall;
    px_py_start_response_t *r;
} wsgi_write_t;

static PyObject *write_vectorcall(PyObject *s, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    px_py_start_response_t *r = ((wsgi_write_t *)s)->r;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *data;
    Py_buffer view;
    int rc;

    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        PyErr_Format(PyExc_TypeError, "write() takes exactly one argument (%zd given)",
                     nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0));
        return NULL;
    }
    data = args[0];
    if (r->status == 0) {
        PyErr_SetString(PyExc_RuntimeError, "write() before start_response()");
        return NULL;
    }
    if (r->x == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "write() after the app returned");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    rc = 0;
    if (view.len > 0) {
        /* unbuffered, as PEP 3333 asks: the head and these bytes go now */
        if (!r->streamed && !r->gone)
            rc = px_py_wsgi_stream_begin(r);
        if (rc == 0 && r->stream != NULL)
            rc = px_py_wsgi_stream_send(r, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static void write_dealloc(PyObject *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    Py_DECREF(((wsgi_write_t *)s)->r);
    PyObject_Free(s);
    Py_DECREF(tp);
}

static PyMemberDef write_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(wsgi_write_t, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot write_slots[] = {
    {Py_tp_doc, "write(data: bytes): body bytes, before those of the iterable"},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, write_members},
    {Py_tp_dealloc, write_dealloc},
    {0, NULL},
};

PyType_Spec px_py_wsgi_write_spec = {
    .name = "pyparallel.wsgi.Write",
    .basicsize = sizeof(wsgi_write_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = write_slots,
};

/* r's write(): kept with r while the app runs (r is then reused with it),
 * made anew for a call after the app returned (not kept: it would hold r). */
static PyObject *start_write_callable(px_py_start_response_t *r)
{
    wsgi_write_t *w;

    if (r->write != NULL)
        return Py_NewRef(r->write);
    w = PyObject_New(wsgi_write_t, r->write_type);
    if (w == NULL)
        return NULL;
    w->vectorcall = write_vectorcall;
    w->r = (px_py_start_response_t *)Py_NewRef(r);
    if (r->x != NULL)
        r->write = Py_NewRef((PyObject *)w);
    return (PyObject *)w;
}

/* The Content-Length among headers, or -1 (none, or not a length: the head
 * is refused later with the reason). */
static long long app_length(PyObject *headers)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i), *name, *value;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyUnicode_Check(name = PyTuple_GET_ITEM(pair, 0)) ||
            !PyUnicode_Check(value = PyTuple_GET_ITEM(pair, 1)) ||
            PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND ||
            !px_py_wsgi_name_is((const char *)PyUnicode_1BYTE_DATA(name),
                                (size_t)PyUnicode_GET_LENGTH(name), "content-length", 14))
            continue;
        if (PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND)
            return -1;
        return px_py_wsgi_length((const char *)PyUnicode_1BYTE_DATA(value),
                                 (size_t)PyUnicode_GET_LENGTH(value));
    }
    return -1;
}

/* start_response(status, headers, exc_info=None) -> write; called by vector
 * (no argument tuple, no keyword parsing for the usual positional call). */
static PyObject *start_vectorcall(PyObject *s, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    static const char *const names[] = {"status", "response_headers", "exc_info"};
    px_py_start_response_t *r = (px_py_start_response_t *)s;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *argv[3] = {NULL, NULL, Py_None};
    PyObject *status, *headers, *exc_info;
    const char *reason;
    int code;

    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "start_response() takes at most 3 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        argv[i] = args[i];
    for (Py_ssize_t k = 0; kwnames != NULL && k < PyTuple_GET_SIZE(kwnames); k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        while (i < 3 && PyUnicode_CompareWithASCIIString(name, names[i]) != 0)
            i++;
        if (i == 3 || i < nargs) {
            PyErr_Format(PyExc_TypeError, "start_response() got %s argument %R",
                         i == 3 ? "an unexpected keyword" : "multiple values for", name);
            return NULL;
        }
        argv[i] = args[nargs + k];
    }
    if (argv[0] == NULL || argv[1] == NULL) {
        PyErr_Format(PyExc_TypeError, "start_response() missing required argument '%s'",
                     argv[0] == NULL ? names[0] : names[1]);
        return NULL;
    }
    status = argv[0];
    headers = argv[1];
    exc_info = argv[2];
    if (exc_info != Py_None) {
        if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
            PyErr_SetString(PyExc_TypeError, "exc_info: a (type, value, traceback) tuple");
            return NULL;
        }
        if (r->head_sent) {
            /* Too late to change the response: the app's error goes on up (PEP 3333). */
            PyObject *exc = PyTuple_GET_ITEM(exc_info, 1);
            PyObject *tb = PyTuple_GET_ITEM(exc_info, 2);
            if (tb != Py_None && PyTraceBack_Check(tb))
                PyException_SetTraceback(exc, tb);
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            return NULL;
        }
    } else if (r->status != 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response() called again without exc_info (PEP 3333)");
        return NULL;
    }
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "WSGI response headers must be a list, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return NULL;
    }
    if ((code = parse_status(status, &reason)) < 0)
        return NULL;
    r->status = code;
    Py_XSETREF(r->status_line, Py_NewRef(status));
    r->reason = reason;
    Py_XSETREF(r->headers, Py_NewRef(headers));
    r->length = app_length(headers);
    return start_write_callable(r);
}

static PyMemberDef start_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(px_py_start_response_t, vectorcall), READONLY,
     NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot start_slots[] = {
    {Py_tp_doc, "start_response(status, response_headers, exc_info=None) -> write"},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, start_members},
    {Py_tp_dealloc, start_dealloc},
    {0, NULL},
};

PyType_Spec px_py_wsgi_start_spec = {
    .name = "pyparallel.wsgi.StartResponse",
    .basicsize = sizeof(px_py_start_response_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = start_slots,
};
