/*
 * ASGI in the binding: what an ASGI scope is made of, read from the engine's
 * parsed request (headers as lower-case byte pairs in request order, the raw
 * path and query, the peer), and the request body read as it arrives. Both
 * only from inside the handler of the request, on its thread, where its
 * exchange is valid; python/pyparallel/asgi builds the scope and runs the app.
 */
#include "http.h"
#include "wsgi.h"

#include "px/http_stream.h"

#include <errno.h>
#include <sys/socket.h>

static px_http_exchange_t *exchange_of(PyObject *req)
{
    px_http_exchange_t *x = px_py_http_current(req);

    if (x == NULL)
        PyErr_SetString(PyExc_RuntimeError, "only inside the handler of request, on its thread");
    return x;
}

PyObject *px_py_lower_bytes(const char *s, size_t len)
{
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    char *p;

    if (b == NULL)
        return NULL;
    p = PyBytes_AS_STRING(b);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        p[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    return b;
}

static PyObject *headers_of(const px_http_request_t *r)
{
    PyObject *list = PyList_New((Py_ssize_t)r->num_headers);

    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < r->num_headers; i++) {
        const px_http_header_t *h = &r->headers[i];
        PyObject *name = px_py_lower_bytes(h->name.base, h->name.len);
        PyObject *value = name ? PyBytes_FromStringAndSize(h->value.base, (Py_ssize_t)h->value.len)
                               : NULL;
        PyObject *pair = value ? PyTuple_Pack(2, name, value) : NULL;

        Py_XDECREF(name);
        Py_XDECREF(value);
        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
}

/* asgi_request(request) -> (method, http_version, raw_path, query_string,
 * headers, client, has_body): client (host, port) or None; has_body false
 * when the request has no body to receive. */
static PyObject *asgi_request(PyObject *module, PyObject *req)
{
    px_http_exchange_t *x = exchange_of(req);
    const px_http_request_t *r;
    PyObject *headers, *client = Py_None;
    px_py_peer_t peer;
    bool has_body;

    (void)module;
    if (x == NULL)
        return NULL;
    r = x->req;
    headers = headers_of(r);
    if (headers == NULL)
        return NULL;
    px_py_wsgi_peer(x->conn, &peer);
    has_body = x->body_stream != NULL || x->body_len > 0;
    if (peer.host[0] != '\0')
        client = Py_BuildValue("(si)", peer.host, peer.port);
    else
        Py_INCREF(client);
    if (client == NULL) {
        Py_DECREF(headers);
        return NULL;
    }
    return Py_BuildValue("(s#sy#y#NNO)", r->method.base, (Py_ssize_t)r->method.len,
                         r->minor_version ? "1.1" : "1.0", r->path.base, (Py_ssize_t)r->path.len,
                         r->query.base, (Py_ssize_t)r->query.len, headers, client,
                         has_body ? Py_True : Py_False);
}

static PyObject *body_error(ssize_t rc)
{
    switch (rc) {
    case -ETIMEDOUT: return PyErr_Format(PyExc_TimeoutError, "request body: timed out");
    case -ECONNRESET:
        return PyErr_Format(PyExc_ConnectionResetError, "request body: the client went away");
    case -EFBIG: return PyErr_Format(PyExc_ValueError, "request body: over max_body");
    case -EBADMSG: return PyErr_Format(PyExc_ValueError, "request body: malformed chunked body");
    default: errno = (int)-rc; return PyErr_SetFromErrno(PyExc_OSError);
    }
}

/* asgi_body_read(request, size, timeout_ms) -> (bytes, more): up to size
 * bytes of the body, waiting for at least one (100 Continue sent at the
 * first call when asked for), b"" at its end; more false once the body has
 * ended and was read whole (an ASGI receive's more_body). */
static PyObject *asgi_body_read(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    px_http_exchange_t *x;
    Py_ssize_t size;
    int timeout_ms;
    PyThreadState *ts;
    PyObject *buf;
    ssize_t rc;
    bool more;

    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "asgi_body_read(request, size, timeout_ms)");
        return NULL;
    }
    if ((x = exchange_of(args[0])) == NULL)
        return NULL;
    size = PyLong_AsSsize_t(args[1]);
    timeout_ms = (int)PyLong_AsLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (size <= 0) {
        PyErr_SetString(PyExc_ValueError, "size must be > 0");
        return NULL;
    }
    buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL)
        return NULL;
    ts = PyEval_SaveThread();
    rc = px_http_body_read(x, PyBytes_AS_STRING(buf), (size_t)size, timeout_ms);
    PyEval_RestoreThread(ts);
    if (rc < 0) {
        Py_DECREF(buf);
        return body_error(rc);
    }
    if (rc != size && _PyBytes_Resize(&buf, (Py_ssize_t)rc) < 0)
        return NULL;
    more = rc > 0 && px_http_body_ready(x) != -1;
    if (!more)
        px_py_request_body_consumed(args[0]); /* its response may be deferred now */
    return Py_BuildValue("(NO)", buf, more ? Py_True : Py_False);
}

/* asgi_client_gone(request) -> bool: the client closed its side or the
 * connection is closing, as far as can be told without reading: a peek at
 * the socket finds its end (a request with a body still arriving is the
 * body reader's to tell). For a response not started yet. */
static PyObject *asgi_client_gone(PyObject *module, PyObject *req)
{
    px_http_exchange_t *x = exchange_of(req);
    char byte;
    ssize_t n;

    (void)module;
    if (x == NULL)
        return NULL;
    if (px_conn_closing(x->conn))
        Py_RETURN_TRUE;
    if (x->body_stream != NULL)
        Py_RETURN_FALSE;
    n = recv(px_conn_fd(x->conn), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

PyMethodDef px_py_asgi_methods[] = {
    {"asgi_request", asgi_request, METH_O,
     "(method, http_version, raw_path, query_string, headers, client, has_body) of the "
     "request whose handler runs on this thread"},
    {"asgi_body_read", (PyCFunction)(void (*)(void))asgi_body_read, METH_FASTCALL,
     "(bytes, more): up to size bytes of the request body as it arrives"},
    {"asgi_client_gone", asgi_client_gone, METH_O,
     "True when the client of the request whose handler runs here has gone"},
    {NULL, NULL, 0, NULL},
};
