/*
 * Clients that never connected: the engine's report (every address tried,
 * or the lookup that failed) becomes the exception Python code would expect
 * (socket.gaierror, ConnectionRefusedError, TimeoutError, or an OSError
 * naming each attempt's error, as asyncio does), delivered where nothing
 * waits for it: the protocol's connection_failed(exc), else its
 * exception_handler(None, "connect", exc_info), else run() in the main
 * thread. The protocol instance is made for that call (a factory is called),
 * as it would have been for the connection.
 *
 * Also the options of Engine.connect (timeout, attempt delay, worker).
 *
 * A client's spec is its own (a proxy makes clients without end), freed
 * once its connection closed or never came to be (px_py_client_spec_done).
 */
#include "binding.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>

/* "('addr', port)" of ss, as asyncio names an address. */
static PyObject *addr_text(const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 1] = "?";
    int port = 0;

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    }
    return PyUnicode_FromFormat("('%s', %d)", host, port);
}

/* OSError('Multiple exceptions: [Errno a] text ('addr', port), ...'). */
static PyObject *multiple(const px_connect_error_t *ce)
{
    PyObject *parts = PyList_New(0), *sep = NULL, *joined = NULL, *exc = NULL;

    if (parts == NULL)
        return NULL;
    for (unsigned i = 0; i < ce->count; i++) {
        PyObject *addr = addr_text(&ce->addrs[i]), *one;
        if (addr == NULL)
            goto out;
        one = PyUnicode_FromFormat("[Errno %d] %s %U", -ce->errs[i], strerror(-ce->errs[i]), addr);
        Py_DECREF(addr);
        if (one == NULL || PyList_Append(parts, one) < 0) {
            Py_XDECREF(one);
            goto out;
        }
        Py_DECREF(one);
    }
    sep = PyUnicode_FromString(", ");
    joined = sep ? PyUnicode_Join(sep, parts) : NULL;
    if (joined != NULL)
        exc = PyObject_CallFunction(PyExc_OSError, "N",
                                    PyUnicode_FromFormat("Multiple exceptions: %U", joined));
out:
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    Py_DECREF(parts);
    return exc;
}

static PyObject *gaierror_new(int gai_err)
{
    PyObject *socket = PyImport_ImportModule("socket"), *type, *exc;

    if (socket == NULL)
        return NULL;
    type = PyObject_GetAttrString(socket, "gaierror");
    Py_DECREF(socket);
    if (type == NULL)
        return NULL;
    exc = PyObject_CallFunction(type, "is", gai_err, gai_strerror(gai_err));
    Py_DECREF(type);
    return exc;
}

/* The exception for ce (new reference), or NULL with an exception set. */
static PyObject *connect_exception(px_module_state_t *st, const px_connect_error_t *ce)
{
    unsigned i;

    if (ce->gai_err == EAI_SYSTEM)
        return px_py_errno_error(st, NULL, -ce->sys_err, NULL);
    if (ce->gai_err)
        return gaierror_new(ce->gai_err);
    for (i = 1; i < ce->count && ce->errs[i] == ce->errs[0]; i++) {
    }
    if (ce->err == -ETIMEDOUT || ce->count == 0 || i == ce->count)
        return px_py_errno_error(st, NULL, ce->err, NULL);
    return multiple(ce);
}

/* Call instance.name(*args); report what it raised. */
static void call_protocol(px_py_proto_spec_t *spec, PyObject *instance, const char *name,
                          PyObject *args)
{
    px_worker_t *w = px_worker_current();
    PyObject *method = PyObject_GetAttrString(instance, name), *r = NULL;

    if (method != NULL) {
        bool released = w ? px_py_release(w) : false;
        r = PyObject_Call(method, args, NULL);
        px_py_reacquire(w, released);
        Py_DECREF(method);
    }
    if (r == NULL)
        px_py_report(spec, NULL, name);
    Py_XDECREF(r);
}

static void deliver(px_py_proto_spec_t *spec, PyObject *exc)
{
    px_worker_t *w = px_worker_current();
    px_py_proto_spec_t *made = spec;
    PyObject *instance = NULL, *args = NULL;

    if (spec->is_factory || spec->has_failed || spec->has_handler) {
        bool released = w ? px_py_release(w) : false;
        instance = PyObject_CallNoArgs(spec->cls);
        px_py_reacquire(w, released);
        if (instance != NULL && spec->is_factory &&
            (made = px_py_factory_spec(spec, instance)) == NULL)
            Py_CLEAR(instance);
        if (instance == NULL) { /* that failure is reported, chained to the cause */
            PyObject *exc2 = PyErr_GetRaisedException();
            PyException_SetContext(exc2, exc);
            PyErr_SetRaisedException(exc2);
            px_py_report(spec, NULL, "connection_failed");
            return;
        }
    }
    if (made->has_failed) {
        args = PyTuple_Pack(1, exc);
        if (args != NULL)
            call_protocol(made, instance, "connection_failed", args);
    } else if (made->has_handler) {
        PyObject *tb = PyException_GetTraceback(exc);
        args = Py_BuildValue("(Os(OOO))", Py_None, "connect", (PyObject *)Py_TYPE(exc), exc,
                             tb ? tb : Py_None);
        Py_XDECREF(tb);
        if (args != NULL)
            call_protocol(made, instance, "exception_handler", args);
    } else {
        PyErr_SetRaisedException(Py_NewRef(exc));
        px_py_report(made, NULL, "connect");
    }
    if (args == NULL && PyErr_Occurred())
        px_py_report(made, NULL, "connect");
    Py_XDECREF(args);
    Py_XDECREF(instance);
    Py_DECREF(exc);
}

void px_py_on_connect_error(void *udata, const px_connect_error_t *ce)
{
    px_py_proto_spec_t *spec = udata;
    PyObject *exc;

    px_py_attach(px_worker_current());
    px_py_client_done(spec->engine);
    if (ce->err == -ECANCELED) { /* the engine shuts down: nobody waits for it */
        px_py_client_spec_done(spec);
        return;
    }
    exc = connect_exception(px_py_engine_state(spec->engine), ce);
    if (exc == NULL)
        px_py_report(spec, NULL, "connect");
    else
        deliver(spec, exc);
    px_py_client_spec_done(spec);
}

/* Seconds (None: default) as milliseconds, at least 1; -1 with ValueError. */
static long connect_ms(PyObject *v, const char *name)
{
    double sec;

    if (v == NULL || v == Py_None)
        return 0;
    sec = PyFloat_AsDouble(v);
    if (sec == -1.0 && PyErr_Occurred())
        return -1;
    if (!(sec > 0 && sec <= 86400.0)) {
        PyErr_Format(PyExc_ValueError, "%s must be between 0 (excluded) and 86400 seconds", name);
        return -1;
    }
    return sec * 1000.0 < 1 ? 1 : (long)(sec * 1000.0);
}

/* The worker a client asks for: NULL (round robin) for None or "any", the
 * calling worker for "caller", worker i for an int. -1 with an exception. */
static int connect_worker(px_engine_t *e, PyObject *v, px_worker_t **w)
{
    *w = NULL;
    if (v == NULL || v == Py_None)
        return 0;
    if (PyUnicode_Check(v) && PyUnicode_CompareWithASCIIString(v, "any") == 0)
        return 0;
    if (PyUnicode_Check(v) && PyUnicode_CompareWithASCIIString(v, "caller") == 0) {
        *w = px_worker_current();
        if (*w == NULL || px_worker_engine(*w) != e) {
            PyErr_SetString(PyExc_ValueError,
                            "worker='caller' needs a caller on one of the engine's workers "
                            "(a protocol, work or timer callback)");
            return -1;
        }
        return 0;
    }
    if (PyLong_Check(v)) {
        long i = PyLong_AsLong(v);
        if (i < 0 || i >= px_engine_worker_count(e)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "worker must be between 0 and %d",
                             px_engine_worker_count(e) - 1);
            return -1;
        }
        *w = px_engine_worker(e, (int)i);
        return 0;
    }
    PyErr_SetString(PyExc_ValueError, "worker must be 'any', 'caller' or a worker index");
    return -1;
}

int px_py_connect_options(px_engine_t *e, PyObject *timeout, PyObject *delay, PyObject *worker,
                          px_endpoint_config_t *ep, px_worker_t **w)
{
    long timeout_ms = connect_ms(timeout, "timeout"), delay_ms;

    if (timeout_ms < 0 || (delay_ms = connect_ms(delay, "attempt_delay")) < 0 ||
        connect_worker(e, worker, w) < 0)
        return -1;
    ep->connect_timeout_ms = (unsigned)timeout_ms;
    ep->connect_delay_ms = (unsigned)delay_ms;
    return 0;
}
