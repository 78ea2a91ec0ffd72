/*
 * What a handler returns, turned into a response: bytes, str, JSON values,
 * sendfile() bodies and Response objects with their status and headers.
 */
#include "http.h"

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
        else if (px_http_respond_file(x, status, ctype, extra, extra_len, fd, (off_t)o, (size_t)n) <
                 0) PyErr_SetString(PyExc_ConnectionError, "connection closed");
        else rc = 0;
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

/* A Response: status, content_type, headers (dict), body. */
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
    if (ctype_o != Py_None && (ctype = PyUnicode_AsUTF8(ctype_o)) == NULL)
        goto out;
    if (headers != Py_None && PyDict_Check(headers)) {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (PyDict_Next(headers, &pos, &k, &v)) {
            Py_ssize_t kl, vl;
            const char *ks = PyUnicode_AsUTF8AndSize(k, &kl);
            PyObject *vs = PyObject_Str(v);
            const char *vc = vs ? PyUnicode_AsUTF8AndSize(vs, &vl) : NULL;
            bool bad = ks == NULL || vc == NULL || strpbrk(ks, "\r\n:") || strpbrk(vc, "\r\n");
            if (!bad) {
                size_t need = (size_t)kl + (size_t)vl + 4;
                if (scratch.len + need > scratch.cap) {
                    char *p = PyMem_RawRealloc(scratch.data,
                                               PX_MAX(scratch.cap * 2, scratch.len + need + 256));
                    if (p == NULL) {
                        Py_XDECREF(vs);
                        PyErr_NoMemory();
                        goto out;
                    }
                    scratch.data = p;
                    scratch.cap = PX_MAX(scratch.cap * 2, scratch.len + need + 256);
                }
                memcpy(scratch.data + scratch.len, ks, (size_t)kl);
                scratch.len += (size_t)kl;
                memcpy(scratch.data + scratch.len, ": ", 2);
                scratch.len += 2;
                memcpy(scratch.data + scratch.len, vc, (size_t)vl);
                scratch.len += (size_t)vl;
                memcpy(scratch.data + scratch.len, "\r\n", 2);
                scratch.len += 2;
            }
            Py_XDECREF(vs);
            if (bad) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError,
                                    "header names and values may not contain CR or LF");
                goto out;
            }
        }
    }
    {
        /* the header lines stay at the front of scratch while the body is encoded after them */
        size_t extra_len = scratch.len;
        char *extra_copy = extra_len ? PyMem_RawMalloc(extra_len) : NULL;
        if (extra_len && extra_copy == NULL) {
            PyErr_NoMemory();
            goto out;
        }
        if (extra_len)
            memcpy(extra_copy, scratch.data, extra_len);
        scratch.len = 0;
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
    if (a->response_type && PyObject_TypeCheck(result, (PyTypeObject *)a->response_type))
        return respond_response(a, x, result);
    return respond_body(a, x, 200, NULL, NULL, 0, result) < 0 ? -1 : 0;
}
