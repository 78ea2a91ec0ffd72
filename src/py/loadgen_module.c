/*
 * pyparallel._loadgen: the load generator (px/loadgen.h) for Python.
 *
 * run() blocks with the thread state detached while the generator's own engine
 * works; it wakes every 50 ms to let Python handle signals. Ctrl-C stops the
 * run early and still returns its results, marked interrupted. No Python code
 * runs on the generator's threads.
 */
#include "binding.h" /* Python.h and the 3.11 shims */

#include <errno.h>
#include <string.h>

#include "px/loadgen.h"

/* The percentiles of the summary (wrk2's). */
static const double summary_levels[] = {50, 75, 90, 99, 99.9, 99.99, 99.999, 100};

/* The one place where a -errno of the generator becomes an exception. */
static PyObject *raise_errno(int err, const char *what)
{
    if (err == -EINVAL)
        return PyErr_Format(PyExc_ValueError, "invalid load generator setting (%s)", what);
    if (err == -ENOENT)
        return PyErr_Format(PyExc_OSError, "cannot resolve the host (%s)", what);
    errno = -err;
    return PyErr_SetFromErrnoWithFilename(PyExc_OSError, what);
}

/* Add key: value (stolen) to d; -1 on error. */
static int put(PyObject *d, const char *key, PyObject *value)
{
    int rc;

    if (value == NULL)
        return -1;
    rc = PyDict_SetItemString(d, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *u64(uint64_t v)
{
    return PyLong_FromUnsignedLongLong(v);
}

static PyObject *latency_dict(const px_lg_t *lg, const px_lg_latency_t *h, unsigned ticks_per_half)
{
    PyObject *d = PyDict_New(), *summary = NULL, *spectrum = NULL;
    px_lg_point_t *rows = NULL;
    size_t n, i;

    if (d == NULL)
        return NULL;
    if (put(d, "count", u64(h->count)) < 0 || put(d, "min", u64(h->min)) < 0 ||
        put(d, "max", u64(h->max)) < 0 || put(d, "mean", PyFloat_FromDouble(h->mean)) < 0 ||
        put(d, "stdev", PyFloat_FromDouble(h->stdev)) < 0)
        goto fail;
    summary = PyList_New(0);
    if (summary == NULL)
        goto fail;
    for (i = 0; h->count && i < PX_ARRAY_SIZE(summary_levels); i++) {
        PyObject *row = Py_BuildValue("(dK)", summary_levels[i],
                                      (unsigned long long)px_lg_latency_at(lg, summary_levels[i]));
        if (row == NULL || PyList_Append(summary, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
    }
    n = px_lg_latency_spectrum(lg, ticks_per_half, NULL, 0);
    rows = PyMem_RawMalloc((n ? n : 1) * sizeof(*rows));
    spectrum = PyList_New((Py_ssize_t)n);
    if (rows == NULL || spectrum == NULL)
        goto fail;
    px_lg_latency_spectrum(lg, ticks_per_half, rows, n);
    for (i = 0; i < n; i++) {
        PyObject *row = Py_BuildValue("(dKK)", rows[i].percentile,
                                      (unsigned long long)rows[i].value,
                                      (unsigned long long)rows[i].total_count);
        if (row == NULL)
            goto fail;
        PyList_SET_ITEM(spectrum, (Py_ssize_t)i, row);
    }
    PyMem_RawFree(rows);
    rows = NULL;
    if (put(d, "percentiles", summary) < 0) {
        summary = NULL;
        goto fail;
    }
    if (put(d, "spectrum", spectrum) < 0) {
        summary = spectrum = NULL;
        goto fail;
    }
    return d;
fail:
    PyMem_RawFree(rows);
    Py_XDECREF(summary);
    Py_XDECREF(spectrum);
    Py_DECREF(d);
    return NULL;
}

static PyObject *result_dict(const px_lg_t *lg, const px_lg_result_t *r, unsigned ticks_per_half)
{
    PyObject *d = PyDict_New(), *errors = PyDict_New();

    if (d == NULL || errors == NULL)
        goto fail;
    if (put(errors, "connect", u64(r->err_connect)) < 0 ||
        put(errors, "read", u64(r->err_read)) < 0 || put(errors, "write", u64(r->err_write)) < 0 ||
        put(errors, "timeout", u64(r->err_timeout)) < 0 ||
        put(errors, "parse", u64(r->err_parse)) < 0)
        goto fail;
    if (put(d, "scheduled", u64(r->scheduled)) < 0 || put(d, "sent", u64(r->sent)) < 0 ||
        put(d, "responses", u64(r->responses)) < 0 ||
        put(d, "non_2xx_3xx", u64(r->non_2xx_3xx)) < 0 || put(d, "errors", Py_NewRef(errors)) < 0 ||
        put(d, "cancelled", u64(r->cancelled)) < 0 || put(d, "connects", u64(r->connects)) < 0 ||
        put(d, "connect_errors", u64(r->connect_errors)) < 0 ||
        put(d, "protocol_errors", u64(r->protocol_errors)) < 0 ||
        put(d, "bytes_read", u64(r->bytes_read)) < 0 ||
        put(d, "elapsed", PyFloat_FromDouble((double)r->elapsed_ns / 1e9)) < 0 ||
        put(d, "send_lag_max_us", PyFloat_FromDouble((double)r->send_lag_max_ns / 1e3)) < 0 ||
        put(d, "send_lag_mean_us", PyFloat_FromDouble(r->send_lag_mean_ns / 1e3)) < 0 ||
        put(d, "connections", PyLong_FromUnsignedLong(r->connections)) < 0 ||
        put(d, "workers", PyLong_FromLong(r->workers)) < 0 ||
        put(d, "backend", PyUnicode_FromString(r->backend)) < 0 ||
        put(d, "interrupted", PyBool_FromLong(r->interrupted)) < 0 ||
        put(d, "latency_us", latency_dict(lg, &r->latency, ticks_per_half)) < 0)
        goto fail;
    Py_DECREF(errors);
    return d;
fail:
    Py_XDECREF(errors);
    Py_XDECREF(d);
    return NULL;
}

static int parse_backend(const char *name, px_backend_kind_t *out)
{
    if (strcmp(name, "auto") == 0)
        *out = PX_BACKEND_AUTO;
    else if (strcmp(name, "uring") == 0 || strcmp(name, "io_uring") == 0)
        *out = PX_BACKEND_URING;
    else if (strcmp(name, "epoll") == 0)
        *out = PX_BACKEND_EPOLL;
    else {
        PyErr_Format(PyExc_ValueError, "backend must be 'auto', 'uring' or 'epoll', not '%s'",
                     name);
        return -1;
    }
    return 0;
}

/* Wait for the run to end, handling signals between short waits. On an
 * exception other than KeyboardInterrupt the run is stopped and the exception
 * left set (-1); Ctrl-C only stops it. */
static int drive(px_lg_t *lg)
{
    PyObject *pending = NULL;
    int rc;

    for (;;) {
        Py_BEGIN_ALLOW_THREADS rc = px_lg_wait(lg, 50);
        Py_END_ALLOW_THREADS if (rc != 0) break;
        if (pending == NULL && PyErr_CheckSignals() < 0) {
            px_lg_stop(lg);
            if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
                PyErr_Clear();
            else
                pending = PyErr_GetRaisedException();
        }
    }
    if (pending != NULL) {
        PyErr_SetRaisedException(pending);
        return -1;
    }
    if (rc < 0) {
        raise_errno(rc, "wait");
        return -1;
    }
    return 0;
}

static PyObject *loadgen_run(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"host",     "port",        "request",        "rate",
                             "duration", "connections", "timeout",        "workers",
                             "backend",  "head",        "ticks_per_half", NULL};
    px_lg_config_t cfg;
    const char *backend = "auto";
    Py_buffer request;
    double timeout = 2.0;
    int head = 0, ticks = 5;
    unsigned connections;
    px_lg_result_t *res = NULL;
    px_lg_t *lg = NULL;
    PyObject *out = NULL;
    int rc;

    (void)module;
    px_lg_config_default(&cfg);
    connections = cfg.connections;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "siy*|$ddIdispi:run", kwlist, &cfg.host, &cfg.port,
                                     &request, &cfg.rate, &cfg.duration, &connections, &timeout,
                                     &cfg.workers, &backend, &head, &ticks))
        return NULL;
    cfg.request = request.buf;
    cfg.request_len = (size_t)request.len;
    cfg.connections = connections;
    cfg.head = head;
    if (parse_backend(backend, &cfg.backend) < 0)
        goto done;
    if (!(timeout > 0 && timeout < 86400) || ticks < 1 || ticks > 1000) {
        PyErr_SetString(PyExc_ValueError,
                        "timeout must be in (0, 86400) seconds, ticks_per_half in 1..1000");
        goto done;
    }
    cfg.timeout_ms = (unsigned)(timeout * 1000 + 0.5);
    if (cfg.timeout_ms == 0)
        cfg.timeout_ms = 1;
    res = PyMem_RawMalloc(sizeof(*res));
    if (res == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS rc = px_lg_create(&cfg, &lg);
    if (rc == 0)
        rc = px_lg_start(lg);
    Py_END_ALLOW_THREADS if (rc < 0)
    {
        raise_errno(rc, rc == -ENOENT ? cfg.host : "start");
        goto done;
    }
    if (drive(lg) < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS rc = px_lg_finish(lg, res);
    Py_END_ALLOW_THREADS if (rc < 0)
    {
        raise_errno(rc, "finish");
        goto done;
    }
    out = result_dict(lg, res, (unsigned)ticks);
done:
    if (lg != NULL) {
        Py_BEGIN_ALLOW_THREADS px_lg_destroy(lg);
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(res);
    PyBuffer_Release(&request);
    return out;
}

static PyMethodDef loadgen_methods[] = {
    {"run", (PyCFunction)(void (*)(void))loadgen_run, METH_VARARGS | METH_KEYWORDS,
     "run(host, port, request, *, rate, duration, connections=10, timeout=2.0, workers=1,\n"
     "    backend='auto', head=False, ticks_per_half=5) -> dict\n\n"
     "Send `request` (bytes) to host:port at `rate` requests per second for `duration`\n"
     "seconds over `connections` keep-alive connections; return the counts and the\n"
     "latency distribution in microseconds, measured from each request's scheduled time."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot loadgen_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_GIL_DISABLED
    /* Audited: no module state; each run owns everything it touches. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef loadgen_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyparallel._loadgen",
    .m_doc = "The load generator of pyparallel-bench.",
    .m_size = 0,
    .m_methods = loadgen_methods,
    .m_slots = loadgen_slots,
};

PyMODINIT_FUNC PyInit__loadgen(void)
{
    return PyModuleDef_Init(&loadgen_def);
}
