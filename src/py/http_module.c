/*
 * Module functions of HTTP that the Python layer uses instead of repeating
 * the engine: the strict path decoder of the directory server and the
 * engine's HTTP defaults.
 */
#include "http.h"
#include "wsgi.h"

#include "px/http_path.h"

/* http_path_decode(path: bytes) -> bytes; ValueError when the path is refused. */
static PyObject *http_path_decode(PyObject *module, PyObject *arg)
{
    Py_buffer in;
    PyObject *out = NULL;
    char small[512], *buf;
    int n;

    (void)module;
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    /* the decoded path is never longer than the input, plus "/" and a NUL */
    buf = (size_t)in.len + 2 <= sizeof(small) ? small : PyMem_Malloc((size_t)in.len + 2);
    if (buf == NULL) {
        PyBuffer_Release(&in);
        return PyErr_NoMemory();
    }
    n = px_http_path_decode(in.buf, (size_t)in.len, buf, (size_t)in.len + 2);
    if (n >= 0)
        out = PyBytes_FromStringAndSize(buf, n);
    else if (n == -EINVAL)
        PyErr_SetString(PyExc_ValueError, "a malformed escape, a NUL or a backslash, a '..' "
                                          "segment or no leading '/' in the path");
    else
        px_py_raise_errno(PyModule_GetState(module), n, "http_path_decode");
    if (buf != small)
        PyMem_Free(buf);
    PyBuffer_Release(&in);
    return out;
}

/* http_defaults() -> dict: listen_http's keyword defaults (seconds for the
 * timeouts), from px_http_config_default. */
static PyObject *http_defaults(PyObject *module, PyObject *unused)
{
    px_http_config_t cfg;

    (void)module;
    (void)unused;
    px_http_config_default(&cfg);
    return Py_BuildValue("{sdsdsdsKsnsnsnss}", "keepalive_timeout",
                         cfg.keepalive_timeout_ms / 1000.0, "head_timeout",
                         cfg.head_timeout_ms / 1000.0, "body_timeout", cfg.body_timeout_ms / 1000.0,
                         "max_body", (unsigned long long)cfg.limits.max_body, "max_headers",
                         (Py_ssize_t)cfg.limits.max_headers, "max_request_line",
                         (Py_ssize_t)cfg.limits.max_request_line, "max_header_bytes",
                         (Py_ssize_t)cfg.limits.max_header_bytes, "server_name", cfg.server_name);
}

PyMethodDef px_py_http_methods[] = {
    {"http_path_decode", http_path_decode, METH_O,
     "http_path_decode(path: bytes) -> bytes: percent-decode and normalise a request "
     "path for use under a document root; ValueError when it is refused"},
    {"http_defaults", http_defaults, METH_NOARGS,
     "http_defaults() -> dict: the engine's HTTP limits, timeouts (s) and server name"},
    {"wsgi_access_log_take", px_py_wsgi_log_take, METH_NOARGS,
     "wsgi_access_log_take() -> (bytes, dropped): the access log lines buffered since the "
     "last call, and how many lines were dropped"},
    {NULL, NULL, 0, NULL},
};
