/*
 * ASGI in the binding: an app's http.response.start message read into what
 * the engine's response takes, once per request on the hot path
 * (python/pyparallel/asgi/_cycle.py). The server frames the body and the
 * connection itself, so the app's framing headers are taken out.
 */
#include "binding.h"

#include <string.h>

/* Headers the server sets itself: the app's are dropped (lower case). */
static const char *const hop_by_hop[] = {
    "transfer-encoding", "connection", "keep-alive", "trailer", "upgrade", "te", "proxy-connection",
};

static bool is_hop_by_hop(const char *name, Py_ssize_t len)
{
    for (size_t i = 0; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
        if ((size_t)len == strlen(hop_by_hop[i]) && memcmp(name, hop_by_hop[i], (size_t)len) == 0)
            return true;
    return false;
}

/* bytes(obj): a new reference; TypeError for what bytes() refuses. */
static PyObject *as_bytes(PyObject *obj)
{
    if (PyBytes_CheckExact(obj))
        return Py_NewRef(obj);
    return PyBytes_FromObject(obj);
}

static PyObject *status_key, *headers_key; /* interned at first use */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The Content-Length value: its digits, surrounding whitespace allowed, as
 * an int; ValueError otherwise. */
static PyObject *content_length(PyObject *value)
{
    const char *p = PyBytes_AS_STRING(value);
    Py_ssize_t start = 0, end = PyBytes_GET_SIZE(value);
    bool digits_only = true;
    PyObject *digits, *n;

    while (start < end && is_space(p[start]))
        start++;
    while (end > start && is_space(p[end - 1]))
        end--;
    for (Py_ssize_t i = start; i < end; i++)
        digits_only = digits_only && p[i] >= '0' && p[i] <= '9';
    if (!digits_only || end == start) {
        PyObject *text = PyBytes_FromStringAndSize(p + start, end - start);

        if (text != NULL)
            PyErr_Format(PyExc_ValueError, "http.response.start: Content-Length %R is not a length",
                         text);
        Py_XDECREF(text);
        return NULL;
    }
    digits = PyUnicode_FromStringAndSize(p + start, end - start);
    if (digits == NULL)
        return NULL;
    n = PyLong_FromUnicodeObject(digits, 10);
    Py_DECREF(digits);
    return n;
}

/* One (name, value) header into ctype, length or pairs. 0, or -1 with an
 * exception. */
static int take_header(PyObject *item, PyObject *pairs, PyObject **ctype, PyObject **length)
{
    PyObject *seq = PySequence_Fast(item,
                                    "http.response.start: a header must be a (name, value) pair");
    PyObject *name = NULL, *value = NULL, *lower = NULL, *pair = NULL;
    const char *n;
    Py_ssize_t n_len;
    int rc = -1;

    if (seq == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != 2) {
        PyErr_SetString(PyExc_ValueError,
                        "http.response.start: a header must be a (name, value) pair");
        goto out;
    }
    if ((name = as_bytes(PySequence_Fast_GET_ITEM(seq, 0))) == NULL ||
        (value = as_bytes(PySequence_Fast_GET_ITEM(seq, 1))) == NULL)
        goto out;
    lower = px_py_lower_bytes(PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name));
    if (lower == NULL)
        goto out;
    n = PyBytes_AS_STRING(lower);
    n_len = PyBytes_GET_SIZE(lower);
    if (n_len == 14 && memcmp(n, "content-length", 14) == 0) {
        PyObject *parsed = content_length(value);

        if (parsed == NULL)
            goto out;
        Py_XSETREF(*length, parsed);
    } else if (n_len == 12 && memcmp(n, "content-type", 12) == 0) {
        PyObject *text = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value),
                                                NULL);
        if (text == NULL)
            goto out;
        Py_XSETREF(*ctype, text);
    } else if (!is_hop_by_hop(n, n_len)) {
        PyObject *k = PyUnicode_DecodeLatin1(n, n_len, NULL);
        PyObject *v = k ? PyUnicode_DecodeLatin1(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value),
                                                 NULL)
                        : NULL;

        pair = v ? PyTuple_Pack(2, k, v) : NULL;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (pair == NULL || PyList_Append(pairs, pair) < 0)
            goto out;
    }
    rc = 0;
out:
    Py_DECREF(seq);
    Py_XDECREF(name);
    Py_XDECREF(value);
    Py_XDECREF(lower);
    Py_XDECREF(pair);
    return rc;
}

/* asgi_response_head(message) -> (status, [(name, value)...], content_type,
 * content_length): status an int in 100..999 (ValueError otherwise), header
 * names lower-cased, names and values latin-1 text, the framing headers
 * (Transfer-Encoding, Connection, ...) left out; content_type and
 * content_length None when the app gave none. */
static PyObject *asgi_response_head(PyObject *module, PyObject *message)
{
    PyObject *status, *headers, *iter = NULL, *item, *pairs = NULL;
    PyObject *ctype = NULL, *length = NULL, *out = NULL;
    int overflow = 0;
    long code;

    (void)module;
    /* Racing first calls intern the same strings: one reference kept extra. */
    if (status_key == NULL && (status_key = PyUnicode_InternFromString("status")) == NULL)
        return NULL;
    if (headers_key == NULL && (headers_key = PyUnicode_InternFromString("headers")) == NULL)
        return NULL;
    if ((status = PyObject_GetItem(message, status_key)) == NULL)
        return NULL;
    code = PyLong_Check(status) ? PyLong_AsLongAndOverflow(status, &overflow) : 0;
    if (code == -1 && PyErr_Occurred())
        goto out;
    if (!PyLong_Check(status) || overflow || code < 100 || code > 999) {
        PyErr_Format(PyExc_ValueError, "http.response.start: invalid status %R", status);
        goto out;
    }
    headers = PyObject_GetItem(message, headers_key);
    if (headers == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            goto out;
        PyErr_Clear();
        headers = PyTuple_New(0);
        if (headers == NULL)
            goto out;
    }
    iter = PyObject_GetIter(headers);
    Py_DECREF(headers);
    if (iter == NULL || (pairs = PyList_New(0)) == NULL)
        goto out;
    while ((item = PyIter_Next(iter)) != NULL) {
        int rc = take_header(item, pairs, &ctype, &length);

        Py_DECREF(item);
        if (rc < 0)
            goto out;
    }
    if (PyErr_Occurred())
        goto out;
    out = PyTuple_Pack(4, status, pairs, ctype ? ctype : Py_None, length ? length : Py_None);
out:
    Py_DECREF(status);
    Py_XDECREF(iter);
    Py_XDECREF(pairs);
    Py_XDECREF(ctype);
    Py_XDECREF(length);
    return out;
}

PyMethodDef px_py_asgi_response_methods[] = {
    {"asgi_response_head", asgi_response_head, METH_O,
     "(status, header pairs, content type, Content-Length) of an http.response.start "
     "message, the server's own framing headers taken out"},
    {NULL, NULL, 0, NULL},
};
