/*
 * A JSON encoder that writes into a reusable C buffer: dict, list, tuple, str,
 * int, float, bool and None (compact separators, UTF-8 output, no NaN or
 * Infinity), with an optional default(obj) hook for anything else.
 */
#include "binding.h"

#include <math.h>

#define MAX_DEPTH 512

static int reserve(px_py_jbuf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    char *p = PyMem_RawRealloc(b->data, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static int put(px_py_jbuf_t *b, const char *s, size_t n)
{
    if (reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static const char hexdigits[] = "0123456789abcdef";

static int put_string(px_py_jbuf_t *b, PyObject *s)
{
    Py_ssize_t len, i, start = 0;
    const char *u = PyUnicode_AsUTF8AndSize(s, &len);

    if (u == NULL)
        return -1;
    /* worst case every byte becomes \u00XX */
    if (reserve(b, (size_t)len * 6 + 2) < 0)
        return -1;
    b->data[b->len++] = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        const char *esc = NULL;
        char ubuf[6];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        memcpy(b->data + b->len, u + start, (size_t)(i - start));
        b->len += (size_t)(i - start);
        start = i + 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            ubuf[0] = '\\';
            ubuf[1] = 'u';
            ubuf[2] = '0';
            ubuf[3] = '0';
            ubuf[4] = hexdigits[c >> 4];
            ubuf[5] = hexdigits[c & 15];
            memcpy(b->data + b->len, ubuf, 6);
            b->len += 6;
            continue;
        }
        memcpy(b->data + b->len, esc, 2);
        b->len += 2;
    }
    memcpy(b->data + b->len, u + start, (size_t)(len - start));
    b->len += (size_t)(len - start);
    b->data[b->len++] = '"';
    return 0;
}

static int put_repr(px_py_jbuf_t *b, PyObject *o, bool is_float)
{
    if (is_float) {
        double d = PyFloat_AS_DOUBLE(o);
        char *s;
        int rc;
        if (!isfinite(d)) {
            PyErr_SetString(PyExc_ValueError, "NaN and Infinity are not JSON");
            return -1;
        }
        s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (s == NULL)
            return -1;
        rc = put(b, s, strlen(s));
        PyMem_Free(s);
        return rc;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (!overflow) {
        char tmp[24];
        int n = snprintf(tmp, sizeof(tmp), "%lld", v);
        return put(b, tmp, (size_t)n);
    }
    PyObject *str = PyObject_Str(o); /* big ints */
    if (str == NULL)
        return -1;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(str, &n);
    int rc = u ? put(b, u, (size_t)n) : -1;
    Py_DECREF(str);
    return rc;
}

static int encode(px_py_jbuf_t *b, PyObject *o, PyObject *dflt, int depth);

static int put_key(px_py_jbuf_t *b, PyObject *k)
{
    if (PyUnicode_Check(k))
        return put_string(b, k);
    if (k == Py_True)
        return put(b, "\"true\"", 6);
    if (k == Py_False)
        return put(b, "\"false\"", 7);
    if (k == Py_None)
        return put(b, "\"null\"", 6);
    if (PyLong_Check(k) || PyFloat_Check(k)) {
        if (put(b, "\"", 1) < 0 || put_repr(b, k, PyFloat_Check(k)) < 0)
            return -1;
        return put(b, "\"", 1);
    }
    PyErr_Format(PyExc_TypeError,
                 "JSON object keys must be str, int, float, bool or None, "
                 "not %.100s",
                 Py_TYPE(k)->tp_name);
    return -1;
}

static int encode_dict(px_py_jbuf_t *b, PyObject *o, PyObject *dflt, int depth)
{
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    bool first = true;
    int rc = 0;

    if (put(b, "{", 1) < 0)
        return -1;
    Py_BEGIN_CRITICAL_SECTION(o);
    while (PyDict_Next(o, &pos, &k, &v)) {
        Py_INCREF(k);
        Py_INCREF(v);
        rc = (!first && put(b, ",", 1) < 0) || put_key(b, k) < 0 || put(b, ":", 1) < 0 ||
                     encode(b, v, dflt, depth + 1) < 0
                 ? -1
                 : 0;
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0)
            break;
        first = false;
    }
    Py_END_CRITICAL_SECTION();
    return rc < 0 ? -1 : put(b, "}", 1);
}

static int encode_seq(px_py_jbuf_t *b, PyObject *o, PyObject *dflt, int depth)
{
    PyObject *seq = PySequence_Fast(o, "JSON array");
    Py_ssize_t i, n;
    int rc = 0;

    if (seq == NULL || put(b, "[", 1) < 0) {
        Py_XDECREF(seq);
        return -1;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    for (i = 0; i < n && rc == 0; i++) {
        if (i && put(b, ",", 1) < 0)
            rc = -1;
        else
            rc = encode(b, PySequence_Fast_GET_ITEM(seq, i), dflt, depth + 1);
    }
    Py_DECREF(seq);
    return rc < 0 ? -1 : put(b, "]", 1);
}

static int encode(px_py_jbuf_t *b, PyObject *o, PyObject *dflt, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_RecursionError, "JSON value nested too deeply (or circular)");
        return -1;
    }
    if (PyUnicode_Check(o))
        return put_string(b, o);
    if (o == Py_None)
        return put(b, "null", 4);
    if (o == Py_True)
        return put(b, "true", 4);
    if (o == Py_False)
        return put(b, "false", 5);
    if (PyLong_Check(o))
        return put_repr(b, o, false);
    if (PyFloat_Check(o))
        return put_repr(b, o, true);
    if (PyDict_Check(o))
        return encode_dict(b, o, dflt, depth);
    if (PyList_Check(o) || PyTuple_Check(o))
        return encode_seq(b, o, dflt, depth);
    if (dflt != NULL && dflt != Py_None) {
        PyObject *r = PyObject_CallOneArg(dflt, o);
        int rc;
        if (r == NULL)
            return -1;
        rc = encode(b, r, dflt, depth + 1);
        Py_DECREF(r);
        return rc;
    }
    PyErr_Format(PyExc_TypeError, "Object of type %.100s is not JSON serializable",
                 Py_TYPE(o)->tp_name);
    return -1;
}

int px_py_json_encode(px_py_jbuf_t *b, PyObject *obj, PyObject *dflt)
{
    size_t start = b->len;
    int rc = encode(b, obj, dflt, 0);
    if (rc < 0)
        b->len = start;
    return rc;
}

void px_py_jbuf_free(px_py_jbuf_t *b)
{
    PyMem_RawFree(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

PyObject *px_py_json_dumps(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"obj", "default", NULL};
    PyObject *obj, *dflt = Py_None, *out;
    px_py_jbuf_t b = {0};

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$O:json_dumps", kwlist, &obj, &dflt))
        return NULL;
    if (px_py_json_encode(&b, obj, dflt) < 0) {
        px_py_jbuf_free(&b);
        return NULL;
    }
    out = PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len);
    px_py_jbuf_free(&b);
    return out;
}
