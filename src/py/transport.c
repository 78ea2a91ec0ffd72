/* Transport objects: what protocol callbacks use to talk to their connection.
 *
 * Protocol methods run with their worker released (hand-off), so every method
 * here that touches the connection takes the worker back first (waiting, with
 * the thread state detached, if a spare has it) and releases it again after.
 *
 * Any other thread (another worker's callbacks, the main thread, a plain
 * thread) goes through the connection's handle (px/handle.h): its calls are
 * posted to the owning worker, in order per calling thread, and never touch
 * the px_conn_t, which may be gone by then. While such calls wait, the
 * owner's own calls are posted behind them: a call that happens after
 * another (by program order or synchronisation) is applied after it.
 * The current transport is a thread-local: it follows the thread that runs
 * the callback, which is the right one on both sides of a hand-off. */
#include "transport.h"
#include "stm.h"
#include "px/clock.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

static _Thread_local PyObject *current_transport;

PyObject *px_py_current_transport(void)
{
    return current_transport;
}

void px_py_transport_enter(px_py_transport_t *t)
{
    t->saved_current = current_transport;
    current_transport = (PyObject *)t;
}

void px_py_transport_leave(px_py_transport_t *t)
{
    current_transport = t->saved_current;
    t->saved_current = NULL;
}

px_py_transport_t *px_py_transport_new(px_conn_t *c, px_py_proto_spec_t *spec, PyObject *protocol)
{
    px_module_state_t *st = px_py_engine_state(spec->engine);
    px_py_transport_t *t = PyObject_GC_New(px_py_transport_t, st->transport_type);

    if (t == NULL)
        return NULL;
    t->handle = px_conn_handle(c);
    if (t->handle == NULL) {
        PyObject_GC_Del(t);
        Py_DECREF(st->transport_type);
        PyErr_NoMemory();
        return NULL;
    }
    t->fd = px_conn_fd(c);
    t->conn = c;
    t->worker = px_conn_worker(c);
    t->worker_index = px_worker_index(t->worker);
    t->spec = spec;
    t->protocol = Py_NewRef(protocol);
    t->id = px_conn_id(c);
    t->send_id = 0;
    t->linebuf = NULL;
    t->linebuf_len = t->linebuf_cap = 0;
    t->saved_current = NULL;
    t->failure = NULL;
    PyObject_GC_Track(t);
    return t;
}

void px_py_transport_detach(px_py_transport_t *t)
{
    t->conn = NULL;
    PyMem_Free(t->linebuf);
    t->linebuf = NULL;
    t->linebuf_len = t->linebuf_cap = 0;
}

int px_py_transport_linebuf_append(px_py_transport_t *t, const char *data, size_t len)
{
    if (t->linebuf_len + len > t->linebuf_cap) {
        size_t cap = PX_MAX(t->linebuf_cap * 2, t->linebuf_len + len);
        char *p = PyMem_Realloc(t->linebuf, cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->linebuf = p;
        t->linebuf_cap = cap;
    }
    memcpy(t->linebuf + t->linebuf_len, data, len);
    t->linebuf_len += len;
    return 0;
}

void px_py_transport_linebuf_consume(px_py_transport_t *t, size_t n)
{
    memmove(t->linebuf, t->linebuf + n, t->linebuf_len - n);
    t->linebuf_len -= n;
}

static bool on_own_worker(px_py_transport_t *t)
{
    return px_worker_current() == t->worker;
}

/* The connection, if it takes calls; else NULL with an exception. On the
 * owning worker, between px_py_engine_enter and px_py_engine_leave. */
static px_conn_t *usable_conn(px_py_transport_t *t)
{
    if (t->conn == NULL || px_conn_closing(t->conn) || px_handle_closed(t->handle)) {
        PyErr_SetString(PyExc_ConnectionError, "transport is closed");
        return NULL;
    }
    return t->conn;
}

enum op {
    OP_SEND,
    OP_CLOSE,
    OP_ABORT,
    OP_PAUSE,
    OP_RESUME,
    OP_SHUTDOWN_SEND
};

/* From a thread that does not own the connection, or from the owner while
 * other threads' calls wait on the worker (owner: a send is always taken):
 * posted. */
static PyObject *control_posted(PyObject *self, enum op op, PyObject *data, bool owner)
{
    px_py_transport_t *t = (px_py_transport_t *)self;
    int rc = 0;

    switch (op) {
    case OP_SEND:
        if (px_handle_closed(t->handle))
            break; /* raised below */
        rc = px_py_send_posted(PyType_GetModuleState(Py_TYPE(self)), t->handle, data, owner);
        return rc < 0 ? NULL : PyBool_FromLong(rc);
    case OP_CLOSE: rc = px_handle_close(t->handle); break;
    case OP_ABORT: rc = px_handle_abort(t->handle); break;
    case OP_PAUSE: rc = px_handle_pause(t->handle); break;
    case OP_RESUME: rc = px_handle_resume(t->handle); break;
    case OP_SHUTDOWN_SEND: rc = px_handle_shutdown_send(t->handle); break;
    }
    if ((op == OP_SEND && px_handle_closed(t->handle)) || rc == -ENOTCONN || rc == -ESHUTDOWN) {
        PyErr_SetString(PyExc_ConnectionError, "transport is closed");
        return NULL;
    }
    if (rc < 0)
        return px_py_raise_errno(PyType_GetModuleState(Py_TYPE(self)), rc, "transport");
    Py_RETURN_NONE;
}

/* On the owning worker: calls other threads posted and the worker has not
 * applied yet come first, so this one is posted behind them. A sendfile()
 * cannot travel: it is sent directly. */
static bool owner_must_post(px_py_transport_t *t, enum op op, PyObject *data)
{
    return px_handle_pending(t->handle) &&
           (op != OP_SEND || !px_py_sendable_has_file(PyType_GetModuleState(Py_TYPE(t)), data));
}

/* Close and abort of a closed transport do nothing; the rest raise. A send
 * returns True when the data was taken: always on the owning worker; from
 * another thread False when the connection's output (posted bytes included)
 * is over the high-water mark, and nothing was taken. */
static PyObject *control(PyObject *self, enum op op, PyObject *data)
{
    px_py_transport_t *t = (px_py_transport_t *)self;
    bool entered;
    PyObject *result = op == OP_SEND ? Py_True : Py_None;
    px_conn_t *c;

    if (!on_own_worker(t))
        return control_posted(self, op, data, false);
    if (op == OP_SEND && px_handle_send_shut(t->handle) && !px_handle_closed(t->handle)) {
        /* A shutdown another thread asked for may still wait on the worker: a
         * file, sent directly, would overtake it. Refused as after it. */
        PyErr_SetString(PyExc_BrokenPipeError, "transport is shut for sending (shutdown_send)");
        return NULL;
    }
    if (owner_must_post(t, op, data) && !px_handle_closed(t->handle))
        return control_posted(self, op, data, true);
    entered = px_py_engine_enter(t->worker);
    if ((op == OP_CLOSE || op == OP_SHUTDOWN_SEND) && px_handle_closed(t->handle))
        goto out; /* a close from another thread is on its way */
    if ((op == OP_CLOSE || op == OP_ABORT || op == OP_SHUTDOWN_SEND) &&
        (t->conn == NULL || px_conn_closing(t->conn)))
        goto out;
    c = usable_conn(t);
    if (c == NULL) {
        result = NULL;
        goto out;
    }
    switch (op) {
    case OP_SEND:
        if (px_py_send(PyType_GetModuleState(Py_TYPE(self)), c, data) < 0)
            result = NULL;
        break;
    case OP_CLOSE: px_conn_close(c); break;
    case OP_ABORT: px_conn_abort(c); break;
    case OP_PAUSE: px_conn_pause(c); break;
    case OP_RESUME: px_conn_resume(c); break;
    case OP_SHUTDOWN_SEND: px_conn_shutdown_send(c); break;
    }
out:
    px_py_engine_leave(t->worker, entered);
    return Py_XNewRef(result);
}

/* From another thread, over the high-water mark: retry every millisecond,
 * detached, until taken or `wait` seconds passed. True/False, or NULL. */
static PyObject *send_waiting(PyObject *self, PyObject *data, double wait)
{
    struct timespec ms = {0, 1000000};
    PyObject *r = control(self, OP_SEND, data);
    uint64_t end;

    if (r != Py_False || wait <= 0)
        return r; /* taken, or no wait: no clock read (a fan-out sends this a lot) */
    end = px_now_ns() + (uint64_t)(wait * 1e9);
    while (r == Py_False && px_now_ns() < end) {
        PyThreadState *ts;

        Py_DECREF(r);
        ts = PyEval_SaveThread();
        nanosleep(&ms, NULL);
        PyEval_RestoreThread(ts);
        if (PyErr_CheckSignals() < 0)
            return NULL;
        r = control(self, OP_SEND, data);
    }
    return r;
}

/* send(data, /, wait=None), parsed by hand through the vectorcall protocol: a
 * fan-out calls it once per receiver, and a parsed argument tuple cost about a
 * tenth of each call. */
static PyObject *transport_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *data, *wait_obj = Py_None;
    double wait = 0;

    if (nargs < 1 || nargs + nkw > 2) {
        PyErr_Format(PyExc_TypeError, "send() takes data and an optional wait (%zd given)",
                     nargs + nkw);
        return NULL;
    }
    data = args[0];
    if (nargs == 2)
        wait_obj = args[1];
    if (nkw == 1) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, 0);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, "wait") != 0) {
            PyErr_Format(PyExc_TypeError, "send() got an unexpected keyword argument '%S'", name);
            return NULL;
        }
        wait_obj = args[1];
    }
    if (wait_obj != Py_None) {
        wait = PyFloat_AsDouble(wait_obj);
        if (wait == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(wait >= 0 && wait <= 86400.0 * 365)) {
            PyErr_SetString(PyExc_ValueError, "wait must be a number of seconds (0 to a year)");
            return NULL;
        }
    }
    if (px_py_stm_refuse(PyType_GetModuleState(Py_TYPE(self)), "Transport.send()") < 0)
        return NULL;
    return send_waiting(self, data, wait);
}

static PyObject *transport_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (px_py_stm_refuse(PyType_GetModuleState(Py_TYPE(self)), "Transport.close()") < 0)
        return NULL;
    return control(self, OP_CLOSE, NULL);
}

static PyObject *transport_abort(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (px_py_stm_refuse(PyType_GetModuleState(Py_TYPE(self)), "Transport.abort()") < 0)
        return NULL;
    return control(self, OP_ABORT, NULL);
}

static PyObject *transport_shutdown_send(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (px_py_stm_refuse(PyType_GetModuleState(Py_TYPE(self)), "Transport.shutdown_send()") < 0)
        return NULL;
    return control(self, OP_SHUTDOWN_SEND, NULL);
}

static PyObject *transport_pause(PyObject *self, PyObject *unused)
{
    (void)unused;
    return control(self, OP_PAUSE, NULL);
}

static PyObject *transport_resume(PyObject *self, PyObject *unused)
{
    (void)unused;
    return control(self, OP_RESUME, NULL);
}

/* A Unix domain socket's address as Python's socket module gives it: the
 * path (str), an abstract name (bytes, from its leading NUL), or '' unnamed. */
static PyObject *local_address(const struct sockaddr_un *a, socklen_t len)
{
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? (size_t)len - offsetof(struct sockaddr_un, sun_path)
                   : 0;

    if (n > sizeof(a->sun_path))
        n = sizeof(a->sun_path);
    if (n > 0 && a->sun_path[0] == '\0')
        return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)n);
    return PyUnicode_DecodeFSDefaultAndSize(a->sun_path, (Py_ssize_t)strnlen(a->sun_path, n));
}

static PyObject *sockaddr_to_tuple(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        return Py_BuildValue("(siII)", host, ntohs(a->sin6_port), ntohl(a->sin6_flowinfo),
                             a->sin6_scope_id);
    }
    if (ss->ss_family == AF_UNIX)
        return local_address((const struct sockaddr_un *)ss, len);
    Py_RETURN_NONE;
}

static PyObject *address(px_py_transport_t *t, bool peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = t->fd;
    bool is_open;
    int rc;

    /* The owner knows the socket is open until the connection is freed
     * (connection_lost still sees it); elsewhere only until it closes. */
    if (on_own_worker(t)) {
        bool entered = px_py_engine_enter(t->worker);
        is_open = t->conn != NULL;
        px_py_engine_leave(t->worker, entered);
    } else {
        is_open = !px_handle_closed(t->handle);
    }
    if (!is_open)
        Py_RETURN_NONE;
    /* The descriptor is the connection's until it is freed, which happens on
     * its worker after on_close; a transport used elsewhere may race that, as
     * it always could. */
    rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
              : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        Py_RETURN_NONE;
    return sockaddr_to_tuple(&ss, len);
}

static PyObject *transport_get_extra_info(PyObject *self, PyObject *args)
{
    px_py_transport_t *t = (px_py_transport_t *)self;
    const char *name;
    PyObject *dflt = Py_None;

    if (!PyArg_ParseTuple(args, "s|O:get_extra_info", &name, &dflt))
        return NULL;
    if (strcmp(name, "peername") == 0)
        return address(t, true);
    if (strcmp(name, "sockname") == 0)
        return address(t, false);
    return Py_NewRef(dflt);
}

static PyObject *get_peername(PyObject *self, void *c)
{
    (void)c;
    return address((px_py_transport_t *)self, true);
}
static PyObject *get_sockname(PyObject *self, void *c)
{
    (void)c;
    return address((px_py_transport_t *)self, false);
}
static PyObject *get_id(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(((px_py_transport_t *)self)->id);
}
static PyObject *get_protocol(PyObject *self, void *c)
{
    (void)c;
    return Py_NewRef(((px_py_transport_t *)self)->protocol);
}

/* From any thread: the handle's view (a close posted counts as closed). */
static PyObject *get_closed(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(px_handle_closed(((px_py_transport_t *)self)->handle));
}

/* Bytes queued and not yet sent, posted ones included; from any thread (the
 * figure the owning worker last published). */
static PyObject *get_unsent(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromSize_t(px_handle_queued(((px_py_transport_t *)self)->handle));
}

static PyObject *get_worker(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(((px_py_transport_t *)self)->worker_index);
}

static PyObject *transport_repr(PyObject *self)
{
    px_py_transport_t *t = (px_py_transport_t *)self;
    return PyUnicode_FromFormat("<Transport id=%llu worker=%d%s>", (unsigned long long)t->id,
                                t->worker_index, px_handle_closed(t->handle) ? " closed" : "");
}

static int transport_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((px_py_transport_t *)self)->protocol);
    Py_VISIT(((px_py_transport_t *)self)->failure);
    return 0;
}

static int transport_clear(PyObject *self)
{
    Py_CLEAR(((px_py_transport_t *)self)->protocol);
    Py_CLEAR(((px_py_transport_t *)self)->failure);
    return 0;
}

static void transport_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    transport_clear(self);
    PyMem_Free(((px_py_transport_t *)self)->linebuf);
    px_handle_release(((px_py_transport_t *)self)->handle);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef transport_methods[] = {
    {"send", (PyCFunction)(void (*)(void))transport_send, METH_FASTCALL | METH_KEYWORDS,
     "send(data, wait=None): queue data (any sendable) for sending; any thread. True when "
     "taken. From a thread other than the connection's worker: False (nothing taken) while "
     "its output, posted bytes included, is over the high-water mark; wait=seconds retries "
     "that long first."},
    {"write", (PyCFunction)(void (*)(void))transport_send, METH_FASTCALL | METH_KEYWORDS,
     "Alias of send()."},
    {"close", transport_close, METH_NOARGS, "Close after queued data has been sent."},
    {"abort", transport_abort, METH_NOARGS, "Close now, dropping unsent data."},
    {"shutdown_send", transport_shutdown_send, METH_NOARGS,
     "Shut the sending side (TCP half-close) once queued data has been sent; any thread. "
     "Receiving goes on; send_shutdown(transport) runs when done; later sends raise "
     "BrokenPipeError. The connection closes once the peer has shut its side too. Does "
     "nothing when closed or already shut."},
    {"pause_reading", transport_pause, METH_NOARGS, "Stop receiving data."},
    {"resume_reading", transport_resume, METH_NOARGS, "Receive data again."},
    {"get_extra_info", transport_get_extra_info, METH_VARARGS, "peername or sockname."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef transport_getset[] = {
    {"peername", get_peername, NULL, "(host, port) of the peer", NULL},
    {"sockname", get_sockname, NULL, "(host, port) of this end", NULL},
    {"id", get_id, NULL, "connection id, unique in the process", NULL},
    {"protocol", get_protocol, NULL, "the protocol instance", NULL},
    {"closed", get_closed, NULL, "True once closing or closed", NULL},
    {"unsent", get_unsent, NULL, "bytes queued (or posted from other threads) and not yet sent",
     NULL},
    {"worker", get_worker, NULL, "index of the worker that owns the connection", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot transport_slots[] = {
    {Py_tp_doc, "A connection, as protocol callbacks see it."},
    {Py_tp_methods, transport_methods},
    {Py_tp_getset, transport_getset},
    {Py_tp_repr, transport_repr},
    {Py_tp_traverse, transport_traverse},
    {Py_tp_clear, transport_clear},
    {Py_tp_dealloc, transport_dealloc},
    {0, NULL},
};

PyType_Spec px_py_transport_type_spec = {
    .name = "pyparallel._core.Transport",
    .basicsize = sizeof(px_py_transport_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = transport_slots,
};
