/*
 * Protocol dispatch: the engine's handler calls turned into calls of a
 * PyParallel-style protocol object, one instance (and one Transport) per
 * connection. Runs on the worker that owns the connection.
 *
 * The protocol's methods run with the worker released (px_py_release): if one
 * blocks, a spare thread serves the worker's other connections meanwhile.
 * Everything else here (sending a result, reporting, stats) runs owned.
 */
#include "binding.h"
#include "transport.h"

#include <structmember.h>

static PyObject *lookup(PyObject *cls, const char *name)
{
    PyObject *v = PyObject_GetAttrString(cls, name);
    if (v == NULL)
        PyErr_Clear();
    return v;
}

static bool has_attr(PyObject *cls, const char *name)
{
    PyObject *v = lookup(cls, name);
    bool has = v != NULL && v != Py_None;
    Py_XDECREF(v);
    return has;
}

static bool truthy_attr(PyObject *cls, const char *name)
{
    PyObject *v = lookup(cls, name);
    int t = v ? PyObject_IsTrue(v) : 0;
    Py_XDECREF(v);
    if (t < 0) {
        PyErr_Clear();
        t = 0;
    }
    return t > 0;
}

/* Seconds (number or timedelta) as milliseconds; 0 when absent. */
static int seconds_attr(PyObject *cls, const char *name, unsigned *ms)
{
    PyObject *v = lookup(cls, name);
    double s;

    *ms = 0;
    if (v == NULL || v == Py_None) {
        Py_XDECREF(v);
        return 0;
    }
    if (PyObject_HasAttrString(v, "total_seconds")) {
        PyObject *t = PyObject_CallMethod(v, "total_seconds", NULL);
        Py_DECREF(v);
        if (t == NULL)
            return -1;
        v = t;
    }
    s = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (s < 0 || s > 86400.0 * 365) {
        PyErr_Format(PyExc_ValueError, "protocol attribute %s out of range", name);
        return -1;
    }
    *ms = (unsigned)(s * 1000.0 + 0.5);
    if (s > 0 && *ms == 0)
        *ms = 1;
    return 0;
}

static int on_open(px_conn_t *c);
static int on_data(px_conn_t *c, const char *data, size_t len);
static void on_drain(px_conn_t *c);
static void on_close(px_conn_t *c, int err);
static void on_eof(px_conn_t *c, int err);
static void on_send_shut(px_conn_t *c);
static void on_connect_failed(void *udata, int err);

/* Read the protocol attributes of cls (a class, or the class of a factory's
 * instance) into spec: which callbacks exist, line mode, rate limit, idle
 * timeout, socket behaviour. 0, or -1 with an exception set. */
int px_py_proto_spec_fill(px_py_proto_spec_t *spec, PyObject *cls, unsigned *sock_flags,
                          unsigned *timeout_ms)
{
    unsigned max_line = 0;

    spec->initial_bytes = lookup(cls, "initial_bytes_to_send");
    if (spec->initial_bytes == Py_None)
        Py_CLEAR(spec->initial_bytes);
    spec->next_bytes = lookup(cls, "next_bytes_to_send");
    if (spec->next_bytes == Py_None)
        Py_CLEAR(spec->next_bytes);
    spec->has_made = has_attr(cls, "connection_made");
    spec->has_data = has_attr(cls, "data_received");
    spec->has_lines = has_attr(cls, "lines_received");
    spec->has_complete = has_attr(cls, "send_complete");
    spec->has_lost = has_attr(cls, "connection_lost");
    spec->has_handler = has_attr(cls, "exception_handler");
    spec->has_failed = has_attr(cls, "connection_failed");
    spec->has_created = has_attr(cls, "client_created");
    spec->has_closed = has_attr(cls, "connection_closed");
    spec->has_send_failed = has_attr(cls, "send_failed");
    spec->has_recv_failed = has_attr(cls, "recv_failed");
    spec->has_recv_shutdown = has_attr(cls, "recv_shutdown");
    spec->has_send_shutdown = has_attr(cls, "send_shutdown");
    spec->no_output_backpressure = has_attr(cls, "output_backpressure") &&
                                   !truthy_attr(cls, "output_backpressure");
    spec->line_mode = truthy_attr(cls, "line_mode") || truthy_attr(cls, "lines_mode");
    if (spec->line_mode && !spec->has_lines) {
        PyErr_SetString(PyExc_TypeError, "a protocol with line_mode needs lines_received()");
        return -1;
    }
    if (seconds_attr(cls, "rate_limit", &spec->rate_limit_ms) < 0 ||
        seconds_attr(cls, "timeout", timeout_ms) < 0)
        return -1;
    {
        PyObject *v = lookup(cls, "max_line_length");
        if (v && v != Py_None) {
            long n = PyLong_AsLong(v);
            if (n <= 0) {
                Py_DECREF(v);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "max_line_length must be positive");
                return -1;
            }
            max_line = (unsigned)n;
        }
        Py_XDECREF(v);
    }
    spec->max_line_length = max_line ? max_line : 65536;
    *sock_flags = PX_SOCK_NODELAY;
    if (truthy_attr(cls, "throughput"))
        *sock_flags = PX_SOCK_THROUGHPUT;
    if (truthy_attr(cls, "concurrency"))
        *sock_flags = PX_SOCK_SMALL;
    if (truthy_attr(cls, "low_latency"))
        *sock_flags = PX_SOCK_NODELAY;
    spec->handler.on_open = on_open;
    spec->handler.on_data = on_data;
    /* A factory's instances decide per connection (their class's spec, met
     * later): its endpoint gets on_drain, and the callbacks check t->spec. */
    spec->handler.on_drain = spec->has_complete || spec->is_factory ? on_drain : NULL;
    spec->handler.on_close = on_close;
    /* Always set: a factory's instances decide per connection. */
    spec->handler.on_eof = on_eof;
    spec->handler.on_send_shut = on_send_shut;
    spec->handler.on_connect_failed = on_connect_failed;
    spec->handler.on_connect_error = px_py_on_connect_error;
    return 0;
}

/* A class is a type; anything else callable is a factory, called once per
 * connection: what it returns decides the callbacks (factory.c). Socket
 * behaviour and the idle timeout of a factory's endpoint come from the
 * factory object's own attributes (a factory class may set them); the
 * instance's class may still set a timeout, applied per connection. */
px_py_proto_spec_t *px_py_proto_spec_new(PyObject *engine, PyObject *cls, unsigned *sock_flags,
                                         unsigned *timeout_ms)
{
    px_py_proto_spec_t *spec = PyMem_Calloc(1, sizeof(*spec));

    if (spec == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    if (!PyType_Check(cls) && !PyCallable_Check(cls)) {
        PyErr_SetString(PyExc_TypeError,
                        "protocol must be a class (or a callable returning a protocol instance)");
        goto fail;
    }
    spec->cls = Py_NewRef(cls);
    spec->engine = engine; /* borrowed: the engine owns and outlives its specs */
    spec->is_factory = !PyType_Check(cls);
    if (px_py_proto_spec_fill(spec, cls, sock_flags, timeout_ms) < 0)
        goto fail;
    return spec;
fail:
    px_py_proto_spec_free(spec);
    return NULL;
}

void px_py_proto_spec_free(px_py_proto_spec_t *spec)
{
    if (spec == NULL)
        return;
    px_py_factory_specs_free(spec);
    Py_XDECREF(spec->cls);
    Py_XDECREF(spec->initial_bytes);
    Py_XDECREF(spec->next_bytes);
    PyMem_Free(spec);
}

/* What no exception_handler took: to stderr with its traceback, as the HTTP
 * server logs a handler's exception; the connection is closed by the caller,
 * and the server goes on serving the others. */
static void log_unhandled(PyObject *proto, PyObject *cls, const char *syscall, PyObject *exc)
{
    PyObject *who = proto ? (PyObject *)Py_TYPE(proto) : cls;
    PyObject *name = who ? PyObject_GetAttrString(who, "__qualname__") : NULL;

    if (name == NULL)
        PyErr_Clear();
    PySys_FormatStderr("pyparallel: %S.%s raised and no exception_handler took it: the "
                       "connection is closed (run(raise_errors=True) re-raises instead)\n",
                       name ? name : Py_None, syscall);
    Py_XDECREF(name);
    px_py_display_exception(exc);
}

void px_py_report(px_py_proto_spec_t *spec, PyObject *transport, const char *syscall)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *proto = transport ? ((px_py_transport_t *)transport)->protocol : NULL;
    PyObject *engine = spec ? spec->engine : NULL;
    px_worker_t *w = px_worker_current();

    if (w)
        PX_STAT_ADD(px_worker_stats(w), errors, 1);
    if (exc == NULL)
        return;
    if (spec && spec->has_handler && proto) {
        PyObject *info = Py_BuildValue("(OOO)", (PyObject *)Py_TYPE(exc), exc,
                                       ((PyBaseExceptionObject *)exc)->traceback
                                           ? ((PyBaseExceptionObject *)exc)->traceback
                                           : Py_None);
        PyObject *r = NULL;
        if (info != NULL) {
            bool released = w ? px_py_release(w) : false;
            r = PyObject_CallMethod(proto, "exception_handler", "OsO", transport, syscall, info);
            px_py_reacquire(w, released);
        }
        Py_XDECREF(info);
        if (r != NULL) {
            Py_DECREF(r);
            Py_DECREF(exc);
            return;
        }
        /* The handler itself failed: that one is reported, chained. */
        PyObject *exc2 = PyErr_GetRaisedException();
        PyException_SetContext(exc2, exc);
        exc = exc2;
        syscall = "exception_handler";
    }
    if (strcmp(syscall, "connect") == 0 || engine == NULL) {
        px_py_post_exception(engine, exc);
        return;
    }
    if (w)
        PX_STAT_ADD(px_worker_stats(w), unhandled_errors, 1);
    /* One peer's input must not stop the server: by default log, and the
     * caller closes that connection. */
    if (px_py_engine_raise_errors(engine))
        px_py_post_exception(engine, exc);
    else
        log_unhandled(proto, spec ? spec->cls : NULL, syscall, exc);
}

static px_py_transport_t *transport_of(px_conn_t *c)
{
    return px_conn_udata(c);
}

/* Send the value a callback returned. 0, or -1 with an exception set. A
 * connection that is closing takes nothing more: the value is dropped (while
 * the callback blocked, the engine may have closed it: shutdown, timeout). */
static int send_result(px_py_transport_t *t, PyObject *r)
{
    px_module_state_t *st = PyType_GetModuleState(Py_TYPE(t));

    if (r == Py_None || t->conn == NULL || px_conn_closing(t->conn) || px_handle_closed(t->handle))
        return 0;
    if (px_py_aio_awaitable(r)) /* an async def callback: its result is sent when done */
        return px_py_aio_drive_protocol(st, (PyObject *)t, r);
    /* Behind what other threads posted and the worker has not applied yet. */
    if (px_handle_pending(t->handle) && !px_py_sendable_has_file(st, r))
        return px_py_send_posted(st, t->handle, r, true) < 0 ? -1 : 0;
    return px_py_send(st, t->conn, r);
}

/* bytes-like or a callable producing them (a method gets the protocol bound). */
static PyObject *produce(px_py_transport_t *t, const char *attr)
{
    PyObject *v = PyObject_GetAttrString(t->protocol, attr);
    if (v != NULL && PyCallable_Check(v)) {
        bool released = px_py_release(t->worker);
        PyObject *r = PyObject_CallNoArgs(v);
        px_py_reacquire(t->worker, released);
        Py_DECREF(v);
        return r;
    }
    return v;
}

static int call_and_send(px_py_transport_t *t, const char *method, PyObject *arg)
{
    bool released = px_py_release(t->worker);
    PyObject *r = arg ? PyObject_CallMethod(t->protocol, method, "OO", (PyObject *)t, arg)
                      : PyObject_CallMethod(t->protocol, method, "O", (PyObject *)t);
    int rc;

    px_py_reacquire(t->worker, released);
    if (r == NULL)
        return -1;
    rc = send_result(t, r);
    Py_DECREF(r);
    return rc;
}

/* A callback whose result is not sent (there is nothing to answer). */
static int call_only(px_py_transport_t *t, const char *method, PyObject *arg)
{
    bool released = px_py_release(t->worker);
    PyObject *r = arg ? PyObject_CallMethod(t->protocol, method, "OO", (PyObject *)t, arg)
                      : PyObject_CallMethod(t->protocol, method, "O", (PyObject *)t);

    px_py_reacquire(t->worker, released);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* The exception a failed connection's callbacks get for -errno err: one
 * object for the failure, made once and kept on t (send_failed or recv_failed
 * and then connection_lost get the same). A new reference. */
static PyObject *lost_error(px_py_transport_t *t, int err)
{
    PyObject *exc;

    if (t->failure != NULL)
        return Py_NewRef(t->failure);
    exc = px_py_errno_error(px_py_engine_state(t->spec->engine), PyExc_ConnectionError, err, NULL);
    if (exc != NULL) {
        t->failure = Py_NewRef(exc);
        return exc;
    }
    /* No memory for it: the callback still runs (with None), and the
     * failure is not left set under the call. */
    PyErr_WriteUnraisable(NULL);
    return Py_NewRef(Py_None);
}

static int on_open(px_conn_t *c)
{
    px_py_proto_spec_t *spec = px_conn_server_udata(c);
    px_worker_t *w = px_conn_worker(c);
    px_py_transport_t *t;
    PyObject *proto;
    const char *where = "connection_made";
    bool released;

    px_py_attach(w);
    released = px_py_release(w);
    proto = PyObject_CallNoArgs(spec->cls);
    px_py_reacquire(w, released);
    if (proto != NULL && spec->is_factory) {
        px_py_proto_spec_t *made = px_py_factory_spec(spec, proto);
        if (made == NULL)
            Py_CLEAR(proto);
        else if (made->idle_timeout_ms)
            px_conn_set_idle_timeout(c, made->idle_timeout_ms);
        spec = made ? made : spec;
    }
    if (proto == NULL) {
        px_py_report(spec, NULL, "connection_made");
        return -ECONNABORTED; /* reported: closing it reports nothing more */
    }
    t = px_py_transport_new(c, spec, proto);
    Py_DECREF(proto);
    if (t == NULL) {
        px_py_report(spec, NULL, "connection_made");
        return -ECONNABORTED;
    }
    px_conn_set_udata(c, t); /* the connection holds the reference */
    if (spec->has_recv_shutdown)
        px_conn_set_half_close(c, true);
    if (spec->no_output_backpressure)
        px_conn_set_output_backpressure(c, false);
    px_py_transport_enter(t);
    if (spec->has_created && call_only(t, "client_created", NULL) < 0) {
        where = "client_created";
        goto error;
    }
    if (spec->has_made && call_and_send(t, "connection_made", NULL) < 0)
        goto error;
    if (spec->initial_bytes) {
        PyObject *b = produce(t, "initial_bytes_to_send");
        if (b == NULL || send_result(t, b) < 0) {
            Py_XDECREF(b);
            goto error;
        }
        Py_DECREF(b);
    }
    px_py_transport_leave(t);
    return 0;
error:
    px_py_report(spec, (PyObject *)t, where);
    px_py_transport_leave(t);
    return -ECONNABORTED;
}

/* Split complete lines out of the connection's line buffer. */
static int deliver_lines(px_py_transport_t *t, const char *data, size_t len)
{
    px_py_proto_spec_t *spec = t->spec;
    PyObject *lines = NULL;
    const char *buf, *start, *nl, *end;
    int rc = -1;

    if (px_py_transport_linebuf_append(t, data, len) < 0)
        return -1;
    buf = t->linebuf;
    end = buf + t->linebuf_len;
    lines = PyList_New(0);
    if (lines == NULL)
        return -1;
    for (start = buf; (nl = memchr(start, '\n', (size_t)(end - start))) != NULL; start = nl + 1) {
        const char *stop = (nl > start && nl[-1] == '\r') ? nl - 1 : nl;
        PyObject *line;
        if ((size_t)(stop - start) > spec->max_line_length) {
            PyErr_Format(PyExc_ValueError, "line longer than max_line_length (%zu bytes)",
                         spec->max_line_length);
            goto out;
        }
        line = PyBytes_FromStringAndSize(start, stop - start);
        if (line == NULL || PyList_Append(lines, line) < 0) {
            Py_XDECREF(line);
            goto out;
        }
        Py_DECREF(line);
    }
    px_py_transport_linebuf_consume(t, (size_t)(start - buf));
    if (t->linebuf_len > spec->max_line_length) {
        PyErr_Format(PyExc_ValueError, "line longer than max_line_length (%zu bytes)",
                     spec->max_line_length);
        goto out;
    }
    rc = PyList_GET_SIZE(lines) ? call_and_send(t, "lines_received", lines) : 0;
out:
    Py_DECREF(lines);
    return rc;
}

static int on_data(px_conn_t *c, const char *data, size_t len)
{
    px_py_transport_t *t = transport_of(c);
    px_py_proto_spec_t *spec = t->spec;
    int rc = 0;

    px_py_attach(px_conn_worker(c));
    px_py_transport_enter(t);
    if (spec->next_bytes) {
        PyObject *b = produce(t, "next_bytes_to_send");
        rc = b ? send_result(t, b) : -1;
        Py_XDECREF(b);
    } else if (spec->line_mode) {
        rc = deliver_lines(t, data, len);
    } else if (spec->has_data) {
        PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
        rc = bytes ? call_and_send(t, "data_received", bytes) : -1;
        Py_XDECREF(bytes);
    }
    if (rc < 0)
        px_py_report(spec, (PyObject *)t, "data_received");
    else if (spec->rate_limit_ms)
        px_conn_pause_for(c, spec->rate_limit_ms);
    px_py_transport_leave(t);
    return rc < 0 ? -ECONNABORTED : 0;
}

static void on_drain(px_conn_t *c)
{
    px_py_transport_t *t = transport_of(c);
    PyObject *id;

    if (t == NULL || !t->spec->has_complete) /* a factory's instance without it */
        return;
    px_py_attach(px_conn_worker(c));
    px_py_transport_enter(t);
    id = PyLong_FromUnsignedLongLong(++t->send_id);
    if (id == NULL || call_and_send(t, "send_complete", id) < 0) {
        px_py_report(t->spec, (PyObject *)t, "send_complete");
        px_conn_close(c);
    }
    Py_XDECREF(id);
    px_py_transport_leave(t);
}

/* A receive failed: recv_failed(exc); the engine closes the connection next. */
static void receive_failed(px_py_transport_t *t, int err)
{
    PyObject *exc = lost_error(t, err);

    if (call_only(t, "recv_failed", exc) < 0)
        px_py_report(t->spec, (PyObject *)t, "recv_failed");
    Py_DECREF(exc);
}

/* The peer's side of the stream ended. A receive failed (err < 0):
 * recv_failed(transport, exc), then the engine closes the connection. The
 * peer shut its sending side (err 0): recv_shutdown(transport), whose result
 * is sent; the connection stays open for sending (half-close, set at on_open)
 * until the protocol closes it or shuts its own side. A protocol without them
 * is not called: the engine closes the connection. */
static void on_eof(px_conn_t *c, int err)
{
    px_py_transport_t *t = transport_of(c);

    if (t == NULL || !(err < 0 ? t->spec->has_recv_failed : t->spec->has_recv_shutdown))
        return;
    px_py_attach(px_conn_worker(c));
    px_py_transport_enter(t);
    if (err < 0) {
        receive_failed(t, err);
    } else if (call_and_send(t, "recv_shutdown", NULL) < 0) {
        px_py_report(t->spec, (PyObject *)t, "recv_shutdown");
        px_conn_close(c);
    }
    px_py_transport_leave(t);
}

/* Our sending side is shut (shutdown_send, once what was queued before has
 * left): send_shutdown(transport). Nothing can be sent any more, so what it
 * returns is ignored. */
static void on_send_shut(px_conn_t *c)
{
    px_py_transport_t *t = transport_of(c);
    PyObject *r;
    bool released;

    if (t == NULL || !t->spec->has_send_shutdown)
        return;
    px_py_attach(px_conn_worker(c));
    px_py_transport_enter(t);
    released = px_py_release(t->worker);
    r = PyObject_CallMethod(t->protocol, "send_shutdown", "O", (PyObject *)t);
    px_py_reacquire(t->worker, released);
    if (r == NULL) {
        px_py_report(t->spec, (PyObject *)t, "send_shutdown");
        px_conn_close(c);
    }
    Py_XDECREF(r);
    px_py_transport_leave(t);
}

static void on_connect_failed(void *udata, int err)
{
    px_py_proto_spec_t *spec = udata;

    px_py_attach(px_worker_current());
    px_py_client_done(spec->engine);
    if (err < 0 && err != -ECONNABORTED) { /* ECONNABORTED: on_open reported it */
        PyObject *exc = px_py_errno_error(px_py_engine_state(spec->engine), PyExc_ConnectionError,
                                          err, NULL);
        if (exc != NULL)
            PyErr_SetRaisedException(exc);
        px_py_report(spec, NULL, "connect");
    }
    px_py_client_spec_done(spec);
}

static void on_close(px_conn_t *c, int err)
{
    px_py_proto_spec_t *spec;
    px_py_transport_t *t = transport_of(c);
    bool failed;

    if (t == NULL) { /* on_open failed, or a client never connected */
        if (px_conn_is_client(c))
            on_connect_failed(px_conn_server_udata(c), err);
        return;
    }
    spec = t->spec;
    px_py_attach(px_conn_worker(c));
    px_py_transport_enter(t);
    failed = err < 0 && err != -ECONNABORTED; /* ECONNABORTED: closed by this side */
    if (failed && spec->has_send_failed && px_conn_send_failed(c)) {
        PyObject *exc = lost_error(t, err);
        if (call_only(t, "send_failed", exc) < 0)
            px_py_report(spec, (PyObject *)t, "send_failed");
        Py_DECREF(exc);
    }
    if (!failed && spec->has_closed && call_only(t, "connection_closed", NULL) < 0)
        px_py_report(spec, (PyObject *)t, "connection_closed");
    if (spec->has_lost) {
        PyObject *exc = failed ? lost_error(t, err) : Py_NewRef(Py_None), *r;
        bool released;
        released = px_py_release(t->worker);
        r = PyObject_CallMethod(t->protocol, "connection_lost", "OO", (PyObject *)t, exc);
        px_py_reacquire(t->worker, released);
        Py_DECREF(exc);
        if (r == NULL)
            px_py_report(spec, (PyObject *)t, "connection_lost");
        Py_XDECREF(r);
    }
    px_py_transport_leave(t);
    if (px_conn_is_client(c))
        px_py_client_done(spec->engine);
    px_py_transport_detach(t);
    px_conn_set_udata(c, NULL);
    Py_DECREF(t);
    if (px_conn_is_client(c))
        px_py_client_spec_done(px_conn_server_udata(c));
}
