/*
 * What a handler returns, turned into a response: bytes, str, JSON values,
 * sendfile() bodies and Response objects with their status and headers.
 */
#include "http.h"

#include "px/http_response.h"
#include "px/http_stream.h"

#include <fcntl.h>
#include <unistd.h>

static int respond_buffer(px_http_exchange_t *x, int status, const char *ctype, const char *extra,
                          size_t extra_len, PyObject *body)
{
    Py_buffer view;
    int rc;

    if (PyUnicode_Check(body)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(body, &len);
        if (s == NULL)
            return -1;
        return px_http_respond(x, status, ctype, extra, extra_len, s, (size_t)len);
    }
    if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0)
        return -1;
    rc = px_http_respond(x, status, ctype, extra, extra_len, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return rc;
}

/* Per thread (the thread that converts a result, on either side of a
 * hand-off): JSON bodies and header lines. */
static _Thread_local px_py_jbuf_t scratch;

void px_py_http_thread_exit(void)
{
    px_py_jbuf_free(&scratch);
}

static const char TEXT[] = "text/plain; charset=utf-8";
static const char HTML[] = "text/html; charset=utf-8";
static const char JSON[] = "application/json";

static int respond_sendfile(px_http_exchange_t *x, int status, const char *ctype, const char *extra,
                            size_t extra_len, PyObject *body)
{
    PyObject *path = PyObject_GetAttrString(body, "path");
    PyObject *off = PyObject_GetAttrString(body, "offset");
    PyObject *cnt = PyObject_GetAttrString(body, "count");
    PyObject *enc = NULL;
    long long o = off ? PyLong_AsLongLong(off) : -1;
    long long n = cnt && cnt != Py_None ? PyLong_AsLongLong(cnt) : -1;
    int fd, rc = -1;

    if (path && o >= 0 && n >= 0 && PyUnicode_FSConverter(path, &enc)) {
        Py_BEGIN_ALLOW_THREADS fd = open(PyBytes_AS_STRING(enc), O_RDONLY | O_CLOEXEC);
        Py_END_ALLOW_THREADS if (fd < 0) PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        else if ((rc = px_http_respond_file(x, status, ctype, extra, extra_len, fd, (off_t)o,
                                            (size_t)n)) < 0 &&
                 rc != -EINVAL) /* -EINVAL: refused fields, logged by the engine */
            PyErr_SetString(PyExc_ConnectionError, "connection closed");
    } else if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "an HTTP sendfile() body needs offset and count");
    }
    Py_XDECREF(path);
    Py_XDECREF(off);
    Py_XDECREF(cnt);
    Py_XDECREF(enc);
    return rc;
}

/* Answer with body converted by its type; ctype overrides the type's default. */
static int respond_body(px_py_http_app_t *a, px_http_exchange_t *x, int status, const char *ctype,
                        const char *extra, size_t extra_len, PyObject *body)
{
    px_module_state_t *st = px_py_engine_state(a->engine);

    if (PyBytes_Check(body) || PyByteArray_Check(body) || PyMemoryView_Check(body))
        return respond_buffer(x, status, ctype ? ctype : TEXT, extra, extra_len, body);
    if (PyUnicode_Check(body))
        return respond_buffer(x, status, ctype ? ctype : HTML, extra, extra_len, body);
    if (Py_IS_TYPE(body, st->sendfile_type))
        return respond_sendfile(x, status, ctype ? ctype : "application/octet-stream", extra,
                                extra_len, body);
    {
        size_t mark = scratch.len;
        int rc;
        if (px_py_json_encode(&scratch, body, a->json_default) < 0)
            return -1;
        rc = px_http_respond(x, status, ctype ? ctype : JSON, extra, extra_len, scratch.data + mark,
                             scratch.len - mark);
        scratch.len = mark;
        return rc;
    }
}

/* Append "name: value\r\n" to scratch after checking both (the engine checks
 * again; this says which header and why in the handler's traceback). */
static int append_header(PyObject *k, PyObject *v)
{
    Py_ssize_t kl, vl;
    PyObject *vs = PyUnicode_Check(v) ? Py_NewRef(v) : PyObject_Str(v);
    const char *ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &kl) : NULL;
    const char *vc = vs && ks ? PyUnicode_AsUTF8AndSize(vs, &vl) : NULL;
    size_t need, bad;
    int rc = -1;

    if (ks == NULL || vc == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "response header names must be str, not %.100s",
                         Py_TYPE(k)->tp_name);
        goto out;
    }
    if (!px_http_token_ok(ks, (size_t)kl)) {
        PyErr_Format(PyExc_ValueError, "response header name %R is not a token", k);
        goto out;
    }
    if (!px_http_field_value_ok(vc, (size_t)vl, &bad)) {
        PyErr_Format(PyExc_ValueError,
                     "response header %R: control byte 0x%02x (CR, LF, NUL...) in its value at "
                     "offset %zd",
                     k, (unsigned)(unsigned char)vc[bad], (Py_ssize_t)bad);
        goto out;
    }
    need = (size_t)kl + (size_t)vl + 4;
    if (scratch.len + need > scratch.cap) {
        size_t cap = PX_MAX(scratch.cap * 2, scratch.len + need + 256);
        char *p = PyMem_RawRealloc(scratch.data, cap);
        if (p == NULL) {
            PyErr_NoMemory();
            goto out;
        }
        scratch.data = p;
        scratch.cap = cap;
    }
    memcpy(scratch.data + scratch.len, ks, (size_t)kl);
    scratch.len += (size_t)kl;
    memcpy(scratch.data + scratch.len, ": ", 2);
    scratch.len += 2;
    memcpy(scratch.data + scratch.len, vc, (size_t)vl);
    scratch.len += (size_t)vl;
    memcpy(scratch.data + scratch.len, "\r\n", 2);
    scratch.len += 2;
    rc = 0;
out:
    Py_XDECREF(vs);
    return rc;
}

/* headers: a mapping, or an iterable of (name, value) pairs (a name may
 * repeat: Set-Cookie). */
static int append_headers(PyObject *headers)
{
    PyObject *items, *it, *pair;
    int rc = 0;

    if (headers == Py_None)
        return 0;
    if (PyDict_Check(headers)) {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(headers, &pos, &k, &v))
            if (append_header(k, v) < 0)
                return -1;
        return 0;
    }
    items = PyMapping_Check(headers) && PyObject_HasAttrString(headers, "items")
                ? PyObject_CallMethod(headers, "items", NULL)
                : Py_NewRef(headers);
    it = items ? PyObject_GetIter(items) : NULL;
    Py_XDECREF(items);
    if (it == NULL)
        return -1;
    while (rc == 0 && (pair = PyIter_Next(it)) != NULL) {
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "response headers: a dict or (name, value) pairs");
            rc = -1;
        } else {
            rc = append_header(PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1));
        }
        Py_DECREF(pair);
    }
    Py_DECREF(it);
    return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

int px_py_http_header_lines(PyObject *headers, char **out, size_t *len)
{
    size_t mark = scratch.len;

    *out = NULL;
    *len = 0;
    if (append_headers(headers) < 0) {
        scratch.len = mark;
        return -1;
    }
    *len = scratch.len - mark;
    if (*len > 0) {
        *out = PyMem_RawMalloc(*len);
        if (*out == NULL) {
            scratch.len = mark;
            PyErr_NoMemory();
            return -1;
        }
        memcpy(*out, scratch.data + mark, *len);
    }
    scratch.len = mark;
    return 0;
}

/* The length a streamed Response announces (its `length`, None: unknown). */
static int stream_length(PyObject *r, int64_t *out)
{
    PyObject *o = PyObject_GetAttrString(r, "length");
    long long n;

    *out = PX_HTTP_LENGTH_UNKNOWN;
    if (o == NULL) {
        PyErr_Clear(); /* a Response without one */
        return 0;
    }
    if (o != Py_None) {
        n = PyLong_AsLongLong(o);
        if (n < 0) {
            Py_DECREF(o);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a response length must be >= 0 or None");
            return -1;
        }
        *out = n;
    }
    Py_DECREF(o);
    return 0;
}

/* A body sent as it is produced: an iterator (a generator), not bytes, str,
 * JSON values or a file. */
static bool streamed_body(PyObject *body)
{
    return PyIter_Check(body) && !PyBytes_Check(body) && !PyUnicode_Check(body);
}

/* A Response's content type as UTF-8 (NULL for None), checked whole: a NUL
 * would cut it short for the engine's own check of a C string. */
static int content_type_of(PyObject *o, const char **out)
{
    Py_ssize_t len;
    size_t bad;
    const char *s;

    *out = NULL;
    if (o == Py_None)
        return 0;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "content_type must be str or None, not %.100s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    if ((s = PyUnicode_AsUTF8AndSize(o, &len)) == NULL)
        return -1;
    if (!px_http_field_value_ok(s, (size_t)len, &bad)) {
        PyErr_Format(PyExc_ValueError,
                     "content_type %R: control byte 0x%02x (CR, LF, NUL...) at offset %zd", o,
                     (unsigned)(unsigned char)s[bad], (Py_ssize_t)bad);
        return -1;
    }
    *out = s;
    return 0;
}

/* A Response: status, content_type, headers (dict or pairs), body. */
static int respond_response(px_py_http_app_t *a, px_http_exchange_t *x, PyObject *r)
{
    PyObject *status_o = PyObject_GetAttrString(r, "status");
    PyObject *ctype_o = PyObject_GetAttrString(r, "content_type");
    PyObject *headers = PyObject_GetAttrString(r, "headers");
    PyObject *body = PyObject_GetAttrString(r, "body");
    const char *ctype = NULL;
    int status = -1, rc = -1;

    scratch.len = 0;
    if (status_o == NULL || ctype_o == NULL || headers == NULL || body == NULL)
        goto out;
    status = (int)PyLong_AsLong(status_o);
    if (status < 200 || status > 999) { /* 1xx are interim: never a final answer */
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "invalid HTTP status %d", status);
        goto out;
    }
    if (content_type_of(ctype_o, &ctype) < 0 || append_headers(headers) < 0)
        goto out;
    {
        /* the header lines stay at the front of scratch while the body is encoded after them */
        size_t extra_len = scratch.len;
        char *extra_copy = extra_len ? PyMem_RawMalloc(extra_len) : NULL;
        if (extra_len && extra_copy == NULL) {
            PyErr_NoMemory();
            goto out;
        }
        int64_t length;
        if (extra_len)
            memcpy(extra_copy, scratch.data, extra_len);
        scratch.len = 0;
        if (streamed_body(body))
            rc = stream_length(r, &length) < 0
                     ? -1
                     : px_py_http_stream_iter(x, status, ctype ? ctype : TEXT, extra_copy,
                                              extra_len, length, body);
        else
            rc = body == Py_None ? px_http_respond(x, status, ctype, extra_copy, extra_len, NULL, 0)
                                 : respond_body(a, x, status, ctype, extra_copy, extra_len, body);
        PyMem_RawFree(extra_copy);
    }
out:
    scratch.len = 0;
    Py_XDECREF(status_o);
    Py_XDECREF(ctype_o);
    Py_XDECREF(headers);
    Py_XDECREF(body);
    return rc < 0 ? -1 : 0;
}

int px_py_http_send_result(px_py_http_app_t *a, px_http_exchange_t *x, PyObject *result)
{
    if (x->stream != NULL || x->ws != NULL)
        return 0; /* the handler started a stream or a WebSocket: that is the answer */
    if (streamed_body(result))
        return px_py_http_stream_iter(x, 200, TEXT, NULL, 0, PX_HTTP_LENGTH_UNKNOWN, result);
    if (a->response_type && PyObject_TypeCheck(result, (PyTypeObject *)a->response_type))
        return respond_response(a, x, result);
    return respond_body(a, x, 200, NULL, NULL, 0, result) < 0 ? -1 : 0;
}
