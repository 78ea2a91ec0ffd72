/*
 * WebSocket connections in the binding (px/ws_server.h): the WebSocket type
 * that any thread may send on, made by ws_accept() inside a route handler,
 * and the calls of its callbacks: each complete message goes to on_message
 * on the connection's worker with the worker released (a blocking callback
 * is handed off like a handler), and on_close once at the end.
 *
 * The connection keeps its WebSocket object alive while it is open (a
 * reference the GC does not see), so that an application need not hold it.
 */
#include <stddef.h>

#include "http.h"

#include <structmember.h>

#include "px/handle.h"
#include "px/ws_server.h"

typedef struct {
    PyObject_HEAD px_ws_t *ws;
    px_worker_t *w;
    PyObject *on_message; /* callable(ws, message) -> None, str or bytes */
    PyObject *on_close;   /* callable(ws, code, reason), or NULL */
    PyObject *self_ref;   /* the connection's reference, until on_close */
    PyObject *path;       /* the request's path */
    PyObject *dict;       /* attributes the application keeps on it */
    _Atomic unsigned close_code;
    PyObject *close_reason; /* set once, at on_close */
} ws_obj_t;

static PyObject *raise_ws(int rc, const char *what)
{
    switch (rc) {
    case -ENOTCONN: PyErr_Format(PyExc_ConnectionError, "%s: the WebSocket is closed", what); break;
    case -ETIMEDOUT: PyErr_Format(PyExc_TimeoutError, "%s: timed out", what); break;
    case -EAGAIN: PyErr_Format(PyExc_BlockingIOError, "%s: over the high-water mark", what); break;
    case -EINVAL: PyErr_Format(PyExc_ValueError, "%s: invalid for a WebSocket", what); break;
    default: errno = -rc; PyErr_SetFromErrno(PyExc_OSError);
    }
    return NULL;
}

/* Send one message; waits while over the high-water mark unless the thread
 * owns the worker (whose output cannot move meanwhile: forced). 0 or -errno. */
static int send_raw(ws_obj_t *o, int opcode, const void *data, size_t len)
{
    int rc;

    Py_BEGIN_ALLOW_THREADS for (;;)
    {
        unsigned flags = px_worker_owned(o->w) ? PX_WS_SEND_FORCE : 0;
        rc = px_ws_send(o->ws, opcode, data, len, flags);
        if (rc != -EAGAIN)
            break;
        rc = px_ws_wait_writable(o->ws, -1);
        if (rc < 0)
            break;
    }
    Py_END_ALLOW_THREADS return rc;
}

/* str: a text message; bytes-like: binary. 0, or -1 with an exception. */
static int send_obj(ws_obj_t *o, PyObject *data, int want)
{
    Py_buffer view;
    const char *s;
    Py_ssize_t n;
    int rc;

    if (PyUnicode_Check(data) && want != PX_WS_BINARY) {
        if ((s = PyUnicode_AsUTF8AndSize(data, &n)) == NULL)
            return -1;
        rc = send_raw(o, PX_WS_TEXT, s, (size_t)n);
    } else if (!PyUnicode_Check(data) && want != PX_WS_TEXT &&
               PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) == 0) {
        rc = send_raw(o, PX_WS_BINARY, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    } else {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "a WebSocket sends %s, not %.100s",
                     want == PX_WS_TEXT     ? "str"
                     : want == PX_WS_BINARY ? "bytes-like objects"
                                            : "str or bytes-like objects",
                     Py_TYPE(data)->tp_name);
        return -1;
    }
    return rc < 0 ? (raise_ws(rc, "send"), -1) : 0;
}

static PyObject *ws_send(ws_obj_t *self, PyObject *data)
{
    return send_obj(self, data, 0) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *ws_send_text(ws_obj_t *self, PyObject *data)
{
    return send_obj(self, data, PX_WS_TEXT) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *ws_send_bytes(ws_obj_t *self, PyObject *data)
{
    return send_obj(self, data, PX_WS_BINARY) < 0 ? NULL : Py_NewRef(Py_None);
}

/* send_nowait(data): as send, but BlockingIOError instead of waiting over
 * the high-water mark (an event loop's sender awaits wait_writable elsewhere). */
static PyObject *ws_send_nowait(ws_obj_t *self, PyObject *data)
{
    Py_buffer view;
    const char *s;
    Py_ssize_t n;
    int rc;

    if (PyUnicode_Check(data)) {
        if ((s = PyUnicode_AsUTF8AndSize(data, &n)) == NULL)
            return NULL;
        rc = px_ws_send(self->ws, PX_WS_TEXT, s, (size_t)n, 0);
    } else if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) == 0) {
        rc = px_ws_send(self->ws, PX_WS_BINARY, view.buf, (size_t)view.len, 0);
        PyBuffer_Release(&view);
    } else {
        return NULL;
    }
    return rc < 0 ? raise_ws(rc, "send") : Py_NewRef(Py_None);
}

/* wait_writable(timeout=None): until a send would be taken; ConnectionError
 * once closed, TimeoutError. */
static PyObject *ws_wait_writable(ws_obj_t *self, PyObject *args)
{
    PyObject *timeout = Py_None;
    int ms = -1, rc;

    if (!PyArg_ParseTuple(args, "|O:wait_writable", &timeout))
        return NULL;
    if (timeout != Py_None) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        ms = t <= 0 ? 0 : t > 2e6 ? 2000000000 : (int)(t * 1000 + 0.5);
    }
    Py_BEGIN_ALLOW_THREADS rc = px_ws_wait_writable(self->ws, ms);
    Py_END_ALLOW_THREADS return rc < 0 ? raise_ws(rc, "wait_writable") : Py_NewRef(Py_None);
}

static PyObject *ws_ping(ws_obj_t *self, PyObject *args)
{
    Py_buffer data = {0};
    int rc;

    if (!PyArg_ParseTuple(args, "|y*:ping", &data))
        return NULL;
    if (data.len > PX_WS_MAX_CONTROL) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "ping: at most 125 bytes");
        return NULL;
    }
    rc = send_raw(self, PX_WS_PING, data.buf, data.buf ? (size_t)data.len : 0);
    if (data.obj)
        PyBuffer_Release(&data);
    return rc < 0 ? raise_ws(rc, "ping") : Py_NewRef(Py_None);
}

static PyObject *ws_close(ws_obj_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"code", "reason", NULL};
    unsigned code = PX_WS_CLOSE_NORMAL;
    const char *reason = "";
    Py_ssize_t n = 0;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Is#:close", kwlist, &code, &reason, &n))
        return NULL;
    if (n > PX_WS_MAX_CONTROL - 2) {
        PyErr_SetString(PyExc_ValueError, "close: a reason of at most 123 bytes");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS rc = px_ws_close(self->ws, code, reason, (size_t)n);
    Py_END_ALLOW_THREADS if (rc == -EINVAL)
    {
        PyErr_Format(PyExc_ValueError, "close: %u is not a code that may be sent", code);
        return NULL;
    }
    return rc < 0 ? raise_ws(rc, "close") : Py_NewRef(Py_None);
}

static PyObject *ws_get_closed(ws_obj_t *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(px_ws_closed(self->ws));
}

static PyObject *ws_get_subprotocol(ws_obj_t *self, void *unused)
{
    const char *p = px_ws_subprotocol(self->ws);

    (void)unused;
    return p ? PyUnicode_FromString(p) : Py_NewRef(Py_None);
}

static PyObject *ws_get_close_code(ws_obj_t *self, void *unused)
{
    unsigned code = atomic_load(&self->close_code);

    (void)unused;
    return code ? PyLong_FromUnsignedLong(code) : Py_NewRef(Py_None);
}

static PyObject *ws_get_close_reason(ws_obj_t *self, void *unused)
{
    (void)unused;
    return atomic_load(&self->close_code) && self->close_reason ? Py_NewRef(self->close_reason)
                                                                : Py_NewRef(Py_None);
}

static PyObject *ws_get_path(ws_obj_t *self, void *unused)
{
    (void)unused;
    return Py_NewRef(self->path ? self->path : Py_None);
}

static int ws_traverse(ws_obj_t *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->on_message);
    Py_VISIT(self->on_close);
    Py_VISIT(self->dict);
    /* self_ref is not visited: while the connection is open the object is
     * held from outside Python, and no collection may free it */
    return 0;
}

static int ws_clear(ws_obj_t *self)
{
    Py_CLEAR(self->on_message);
    Py_CLEAR(self->on_close);
    Py_CLEAR(self->dict);
    return 0;
}

static void ws_dealloc(ws_obj_t *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    ws_clear(self);
    Py_CLEAR(self->path);
    Py_CLEAR(self->close_reason);
    if (self->ws != NULL)
        px_ws_release(self->ws);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef ws_methods[] = {
    {"send", (PyCFunction)ws_send, METH_O,
     "send(data): a text message (str) or a binary one (bytes-like); waits while the client "
     "reads slower than it is sent to; ConnectionError once closed"},
    {"send_text", (PyCFunction)ws_send_text, METH_O, "send_text(str): a text message"},
    {"send_bytes", (PyCFunction)ws_send_bytes, METH_O, "send_bytes(data): a binary message"},
    {"send_nowait", (PyCFunction)ws_send_nowait, METH_O,
     "send_nowait(data): as send, but BlockingIOError over the high-water mark instead of "
     "waiting (nothing sent)"},
    {"wait_writable", (PyCFunction)ws_wait_writable, METH_VARARGS,
     "wait_writable(timeout=None): block until a send would be taken; ConnectionError once "
     "closed, TimeoutError"},
    {"ping", (PyCFunction)ws_ping, METH_VARARGS, "ping(data=b''): a ping (at most 125 bytes)"},
    {"close", (PyCFunction)(void (*)(void))ws_close, METH_VARARGS | METH_KEYWORDS,
     "close(code=1000, reason=''): start the close handshake (nothing when already closing)"},
    {NULL, NULL, 0, NULL},
};

/* A send would be taken now (or the WebSocket is closed: the send says
 * so): what an event loop polls instead of blocking in wait_writable. */
static PyObject *ws_get_writable(ws_obj_t *self, void *unused)
{
    px_handle_t *h = px_ws_handle(self->ws);

    (void)unused;
    return PyBool_FromLong(px_ws_closed(self->ws) || px_handle_queued(h) <= px_handle_low_water(h));
}

static PyObject *ws_get_compression(ws_obj_t *self, void *unused)
{
    (void)unused;
    return px_ws_deflating(self->ws) ? PyUnicode_FromString("deflate") : Py_NewRef(Py_None);
}

static PyGetSetDef ws_getset[] = {
    {"writable", (getter)ws_get_writable, NULL,
     "True when a send would be taken now, or once closed (a send then raises)", NULL},
    {"compression", (getter)ws_get_compression, NULL,
     "'deflate' when permessage-deflate was agreed, else None", NULL},
    {"closed", (getter)ws_get_closed, NULL, "True once closing or closed: sends fail", NULL},
    {"subprotocol", (getter)ws_get_subprotocol, NULL, "the subprotocol chosen, or None", NULL},
    {"close_code", (getter)ws_get_close_code, NULL,
     "once closed: the peer's close code (1005: none given), ours, or 1006 (no close frame)", NULL},
    {"close_reason", (getter)ws_get_close_reason, NULL, "once closed: the close reason", NULL},
    {"path", (getter)ws_get_path, NULL, "the path of the upgrade request", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef ws_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(ws_obj_t, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot ws_slots[] = {
    {Py_tp_dealloc, ws_dealloc},
    {Py_tp_traverse, ws_traverse},
    {Py_tp_clear, ws_clear},
    {Py_tp_methods, ws_methods},
    {Py_tp_getset, ws_getset},
    {Py_tp_members, ws_members},
    {Py_tp_doc, "A WebSocket connection (pyparallel.http.websocket routes): any thread may "
                "send, ping and close."},
    {0, NULL},
};

PyType_Spec px_py_websocket_type_spec = {
    .name = "pyparallel._core.WebSocket",
    .basicsize = sizeof(ws_obj_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_HAVE_GC,
    .slots = ws_slots,
};

/* ---- the engine's calls, on the worker -------------------------------------- */

static void report(ws_obj_t *o, const char *what)
{
    PyObject *exc = PyErr_GetRaisedException();

    (void)what;
    px_py_display_exception(exc);
    PX_STAT_ADD(px_worker_stats(o->w), errors, 1);
}

static void on_message(px_ws_t *ws, int opcode, const char *data, size_t len, void *arg)
{
    ws_obj_t *o = arg;
    PyObject *msg, *result = NULL;
    bool released;

    px_py_attach(o->w);
    msg = opcode == PX_WS_TEXT ? PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "strict")
                               : PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    if (msg != NULL && o->on_message != NULL) {
        released = px_py_release(o->w);
        result = PyObject_CallFunctionObjArgs(o->on_message, (PyObject *)o, msg, NULL);
        px_py_reacquire(o->w, released);
        /* the answer, sent owning the worker: straight onto the connection */
        if (result != NULL && result != Py_None && send_obj(o, result, 0) < 0) {
            if (PyErr_ExceptionMatches(PyExc_ConnectionError))
                PyErr_Clear(); /* closed meanwhile: nobody to answer */
            Py_CLEAR(result);
        }
    }
    Py_XDECREF(msg);
    if (result == NULL && PyErr_Occurred()) {
        report(o, "on_message");
        px_ws_close(ws, PX_WS_CLOSE_INTERNAL, "", 0); /* as a handler's 500 */
    }
    Py_XDECREF(result);
}

static void on_close(px_ws_t *ws, unsigned code, const char *reason, size_t len, void *arg)
{
    ws_obj_t *o = arg;
    PyObject *r;

    (void)ws;
    px_py_attach(o->w);
    o->close_reason = PyUnicode_DecodeUTF8(reason, (Py_ssize_t)len, "replace");
    if (o->close_reason == NULL)
        PyErr_Clear();
    atomic_store(&o->close_code, code);
    if (o->on_close != NULL) {
        bool released = px_py_release(o->w);
        r = PyObject_CallFunction(o->on_close, "OIO", (PyObject *)o, code,
                                  o->close_reason ? o->close_reason : Py_None);
        px_py_reacquire(o->w, released);
        if (r == NULL)
            report(o, "on_close");
        Py_XDECREF(r);
    }
    Py_CLEAR(o->self_ref); /* may free o */
}

static const px_ws_handler_t ws_handler = {on_message, on_close};

/* ---- module functions, inside a route handler ----------------------------- */

static px_http_exchange_t *exchange_of(PyObject *req)
{
    px_http_exchange_t *x = px_py_http_current(req);

    if (x == NULL)
        PyErr_SetString(
            PyExc_RuntimeError,
            "a WebSocket upgrade: only inside the handler of its request, on its thread");
    return x;
}

/* ws_refusal(request) -> None when request is a valid upgrade, else (status,
 * headers) to answer it with. */
static PyObject *ws_refusal(PyObject *module, PyObject *req)
{
    px_http_exchange_t *x = exchange_of(req);
    px_ws_handshake_t hs;

    (void)module;
    if (x == NULL)
        return NULL;
    if (px_ws_handshake_check(x->req, &hs) == 0)
        Py_RETURN_NONE;
    if (hs.status == 426)
        return Py_BuildValue("(i{ssss})", 426, "Sec-WebSocket-Version", "13", "Upgrade",
                             "websocket");
    if (hs.status == 405)
        return Py_BuildValue("(i{ss})", 405, "Allow", "GET");
    return Py_BuildValue("(i{})", hs.status);
}

static bool header_name_ok(const char *s, Py_ssize_t n)
{
    if (n == 0)
        return false;
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 127 || strchr("()<>@,;:\\\"/[]?={}", s[i]) != NULL)
            return false;
    return true;
}

/* The str or bytes o as a view (a str as UTF-8); -1 with TypeError. */
static int text_of(PyObject *o, const char **s, Py_ssize_t *n)
{
    if (PyBytes_Check(o)) {
        *s = PyBytes_AS_STRING(o);
        *n = PyBytes_GET_SIZE(o);
        return 0;
    }
    if (PyUnicode_Check(o))
        return (*s = PyUnicode_AsUTF8AndSize(o, n)) == NULL ? -1 : 0;
    PyErr_Format(PyExc_TypeError, "a header name or value must be str or bytes, not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* headers, an iterable of (name, value) pairs, as "Name: value\r\n" lines
 * in a new bytes object (NULL for None); NULL with ValueError for a name
 * that is not a token or a value with CR, LF or NUL. */
static PyObject *header_lines(PyObject *headers, bool *failed)
{
    PyObject *seq, *out = NULL, *parts = NULL;

    *failed = false;
    if (headers == Py_None)
        return NULL;
    seq = PySequence_Fast(headers, "headers must be a sequence of (name, value) pairs");
    if (seq == NULL || (parts = PyList_New(0)) == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i), *line;
        const char *name, *value;
        Py_ssize_t nlen, vlen;

        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "headers must be (name, value) pairs");
            goto fail;
        }
        if (text_of(PyTuple_GET_ITEM(pair, 0), &name, &nlen) < 0 ||
            text_of(PyTuple_GET_ITEM(pair, 1), &value, &vlen) < 0)
            goto fail;
        if (!header_name_ok(name, nlen) || memchr(value, '\r', (size_t)vlen) ||
            memchr(value, '\n', (size_t)vlen) || memchr(value, '\0', (size_t)vlen)) {
            PyErr_Format(PyExc_ValueError, "invalid header %.*s", (int)PX_MIN(nlen, 100), name);
            goto fail;
        }
        line = PyBytes_FromStringAndSize(NULL, nlen + vlen + 4);
        if (line != NULL) {
            char *p = PyBytes_AS_STRING(line);
            memcpy(p, name, (size_t)nlen);
            memcpy(p + nlen, ": ", 2);
            memcpy(p + nlen + 2, value, (size_t)vlen);
            memcpy(p + nlen + 2 + vlen, "\r\n", 2);
        }
        if (line == NULL || PyList_Append(parts, line) < 0) {
            Py_XDECREF(line);
            goto fail;
        }
        Py_DECREF(line);
    }
    {
        PyObject *empty = PyBytes_FromStringAndSize("", 0);
        out = empty ? PyObject_CallMethod(empty, "join", "O", parts) : NULL;
        Py_XDECREF(empty);
    }
fail:
    Py_XDECREF(seq);
    Py_XDECREF(parts);
    *failed = out == NULL;
    return out;
}

static unsigned ms_of(double seconds)
{
    return seconds <= 0 ? 0 : seconds > 2e6 ? 2000000000u : (unsigned)(seconds * 1000 + 0.5);
}

/* ws_accept(request, on_message, on_close=None, *, subprotocol=None,
 * max_message=0, max_frame=0, ping_interval=0.0, ping_timeout=0.0,
 * idle_timeout=0.0, close_timeout=0.0, headers=None, deflate=None) ->
 * WebSocket: headers, (name, value) pairs of str or bytes, go into the 101
 * answer; deflate: None (uncompressed), or (level, min_size, client_context,
 * window_bits) to take a permessage-deflate offer with */
static PyObject *ws_accept(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"request",
                             "on_message",
                             "on_close",
                             "subprotocol",
                             "max_message",
                             "max_frame",
                             "ping_interval",
                             "ping_timeout",
                             "idle_timeout",
                             "close_timeout",
                             "headers",
                             "deflate",
                             NULL};
    px_module_state_t *st = PyModule_GetState(module);
    PyObject *req, *on_msg, *on_cl = Py_None, *headers = Py_None, *deflate = Py_None, *lines;
    int level = 0, client_context = 0;
    unsigned long long min_size = 0;
    unsigned window_bits = 0;
    const char *proto = NULL;
    unsigned long long max_message = 0, max_frame = 0;
    double ping_interval = 0, ping_timeout = 0, idle = 0, close_t = 0;
    px_http_exchange_t *x;
    px_ws_config_t cfg;
    ws_obj_t *o;
    bool entered, failed;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O$zKKddddOO:ws_accept", kwlist, &req, &on_msg,
                                     &on_cl, &proto, &max_message, &max_frame, &ping_interval,
                                     &ping_timeout, &idle, &close_t, &headers, &deflate))
        return NULL;
    if (deflate != Py_None && !PyTuple_Check(deflate))
        return PyErr_Format(PyExc_TypeError, "deflate: None or a tuple, not %.100s",
                            Py_TYPE(deflate)->tp_name);
    if (deflate != Py_None && !PyArg_ParseTuple(deflate, "iKpI:deflate", &level, &min_size,
                                                &client_context, &window_bits))
        return NULL;
    if (deflate != Py_None &&
        (level < 0 || level > 9 || (window_bits != 0 && (window_bits < 9 || window_bits > 15))))
        return PyErr_Format(PyExc_ValueError,
                            "deflate: level 1..9 (0: default), window bits 9..15 (0: 15)");
    if ((x = exchange_of(req)) == NULL)
        return NULL;
    lines = header_lines(headers, &failed);
    if (failed)
        return NULL;
    o = PyObject_GC_New(ws_obj_t, st->websocket_type);
    if (o == NULL) {
        Py_XDECREF(lines);
        return NULL;
    }
    o->ws = NULL;
    o->w = px_conn_worker(x->conn);
    o->on_message = Py_NewRef(on_msg);
    o->on_close = on_cl == Py_None ? NULL : Py_NewRef(on_cl);
    o->self_ref = NULL;
    o->dict = NULL;
    o->close_reason = NULL;
    atomic_init(&o->close_code, 0);
    o->path = PyUnicode_DecodeUTF8(x->req->path.base, (Py_ssize_t)x->req->path.len, "replace");
    PyObject_GC_Track(o);
    if (o->path == NULL) {
        Py_XDECREF(lines);
        Py_DECREF(o);
        return NULL;
    }
    cfg = (px_ws_config_t){
        .max_message = max_message,
        .max_frame = max_frame,
        .ping_interval_ms = ms_of(ping_interval),
        .ping_timeout_ms = ms_of(ping_timeout),
        .idle_timeout_ms = ms_of(idle),
        .close_timeout_ms = ms_of(close_t),
        .subprotocol = proto,
        .headers = lines ? PyBytes_AS_STRING(lines) : NULL,
        .deflate = deflate != Py_None,
        .deflate_client_context = client_context != 0,
        .deflate_window_bits = window_bits,
        .deflate_level = level,
        .deflate_min_size = (size_t)min_size,
    };
    o->self_ref = Py_NewRef(o);
    entered = px_py_engine_enter(o->w);
    rc = px_ws_accept(x, &cfg, &ws_handler, o, &o->ws);
    px_py_engine_leave(o->w, entered);
    Py_XDECREF(lines);
    if (rc < 0) {
        Py_CLEAR(o->self_ref);
        Py_DECREF(o);
        if (rc == -EINVAL)
            return PyErr_Format(PyExc_ValueError, "not a valid WebSocket upgrade%s",
                                proto ? " (or an invalid subprotocol name)" : "");
        if (rc == -EALREADY)
            return PyErr_Format(PyExc_RuntimeError, "the request was answered already");
        return raise_ws(rc, "accept");
    }
    return (PyObject *)o;
}

PyMethodDef px_py_websocket_methods[] = {
    {"ws_refusal", (PyCFunction)ws_refusal, METH_O,
     "ws_refusal(request) -> None when request is a valid WebSocket upgrade, else (status, "
     "headers) to refuse it with"},
    {"ws_accept", (PyCFunction)(void (*)(void))ws_accept, METH_VARARGS | METH_KEYWORDS,
     "ws_accept(request, on_message, on_close=None, *, subprotocol=None, max_message=0, "
     "max_frame=0, ping_interval=0.0, ping_timeout=0.0, idle_timeout=0.0, close_timeout=0.0, "
     "headers=None, deflate=None) -> WebSocket: answer 101 and make the connection a WebSocket (inside the handler of "
     "request); see pyparallel.http.websocket"},
    {NULL, NULL, 0, NULL},
};
