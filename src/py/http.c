/*
 * HTTP in the binding: Request objects (fields built lazily from one copy of the
 * request head), the call into the Python application, and the conversion of
 * its return value into a response.
 */
#include "binding.h"

#include "px/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct px_request {
    PyObject_HEAD
    PyObject *head;   /* bytes: the request head as received */
    PyObject *body;   /* bytes */
    Py_ssize_t method[2], path[2], query[2], target[2];
    int minor_version;
    bool keep_alive;
    Py_ssize_t nheaders;
    Py_ssize_t *hdr;  /* 4 per header: name off/len, value off/len */
    PyObject *headers_cache;
    PyObject *args_cache;
    px_conn_t *conn;  /* while its handler runs; NULL after */
} px_request_t;

/* Exact-path routes looked up in C: handler(request) is called directly. */
typedef struct exact_route {
    char *path;
    size_t len;
    unsigned methods; /* METHOD_* bits */
    PyObject *handler;
} exact_route_t;

enum {
    METHOD_GET = 1, METHOD_HEAD = 2, METHOD_POST = 4, METHOD_PUT = 8,
    METHOD_DELETE = 16, METHOD_PATCH = 32, METHOD_OPTIONS = 64,
};

typedef struct http_app {
    PyObject *app;    /* callable(request) -> result: routes the rest */
    exact_route_t *routes;
    size_t nroutes;
    PyObject *response_type; /* results of this class carry status and headers */
    PyObject *json_default;  /* default= hook of the JSON encoder, or NULL */
    PyObject *engine; /* borrowed */
    char *server_name; /* owned: the server's Server header points here */
    px_http_server_t *srv;
    struct http_app *next;
} http_app_t;

static PyTypeObject *request_type;
/* Set once by the first listen_http() (main thread), read by handlers after. */
static PyObject *http_error_type; /* HttpError: a status for the client, not a 500 */
static PyObject *json_loads;       /* json.loads, for Request.json() */
static PyObject *parse_qsl;        /* urllib.parse.parse_qsl, for Request.args */

static PyObject *slice(px_request_t *r, const Py_ssize_t *span)
{
    return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(r->head) + span[0], span[1], "strict");
}

static void span_of(const char *base, px_view_t v, Py_ssize_t *span)
{
    span[0] = v.base ? (Py_ssize_t)(v.base - base) : 0;
    span[1] = (Py_ssize_t)v.len;
}

static px_request_t *request_new(const px_http_exchange_t *x)
{
    const px_http_request_t *req = x->req;
    const char *base = req->method.base;
    size_t head_len = 0, i;
    px_request_t *r;

    /* The head spans from the method to the end of the last header value. */
    for (i = 0; i < req->num_headers; i++) {
        size_t end = (size_t)(req->headers[i].value.base + req->headers[i].value.len - base);
        head_len = PX_MAX(head_len, end);
    }
    head_len = PX_MAX(head_len, (size_t)(req->target.base + req->target.len - base));
    r = PyObject_GC_New(px_request_t, request_type);
    if (r == NULL)
        return NULL;
    r->head = PyBytes_FromStringAndSize(base, (Py_ssize_t)head_len);
    r->body = PyBytes_FromStringAndSize(x->body, (Py_ssize_t)x->body_len);
    r->hdr = PyMem_Malloc(sizeof(Py_ssize_t) * 4 * (req->num_headers + 1));
    r->headers_cache = NULL;
    r->args_cache = NULL;
    r->conn = NULL;
    r->nheaders = (Py_ssize_t)req->num_headers;
    if (r->head == NULL || r->body == NULL || r->hdr == NULL) {
        PyObject_GC_Track(r);
        Py_DECREF(r);
        return NULL;
    }
    span_of(base, req->method, r->method);
    span_of(base, req->path, r->path);
    span_of(base, req->query, r->query);
    span_of(base, req->target, r->target);
    if (req->path.base < base || req->path.base > base + head_len) { /* static "/" */
        r->path[0] = r->target[0];
        r->path[1] = 0;
    }
    for (i = 0; i < req->num_headers; i++) {
        span_of(base, req->headers[i].name, &r->hdr[4 * i]);
        span_of(base, req->headers[i].value, &r->hdr[4 * i + 2]);
    }
    r->minor_version = req->minor_version;
    r->keep_alive = req->keep_alive;
    PyObject_GC_Track(r);
    return r;
}

static PyObject *req_method(PyObject *s, void *c) { (void)c; return slice((px_request_t *)s, ((px_request_t *)s)->method); }
static PyObject *req_query(PyObject *s, void *c) { (void)c; return slice((px_request_t *)s, ((px_request_t *)s)->query); }
static PyObject *req_target(PyObject *s, void *c) { (void)c; return slice((px_request_t *)s, ((px_request_t *)s)->target); }
static PyObject *req_body(PyObject *s, void *c) { (void)c; return Py_NewRef(((px_request_t *)s)->body); }
static PyObject *req_keep_alive(PyObject *s, void *c) { (void)c; return PyBool_FromLong(((px_request_t *)s)->keep_alive); }

static PyObject *req_path(PyObject *s, void *c)
{
    px_request_t *r = (px_request_t *)s;
    (void)c;
    if (r->path[1] == 0)
        return PyUnicode_FromString("/");
    return slice(r, r->path);
}

static PyObject *req_version(PyObject *s, void *c)
{
    (void)c;
    return PyUnicode_FromFormat("HTTP/1.%d", ((px_request_t *)s)->minor_version);
}

/* headers: a dict with lower-cased names; repeated headers joined by ", ". */
static PyObject *req_headers(PyObject *s, void *c)
{
    px_request_t *r = (px_request_t *)s;
    Py_ssize_t i;
    (void)c;

    if (r->headers_cache)
        return Py_NewRef(r->headers_cache);
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (i = 0; i < r->nheaders; i++) {
        PyObject *name = slice(r, &r->hdr[4 * i]), *lower, *value, *old;
        if (name == NULL)
            goto fail;
        lower = PyObject_CallMethod(name, "lower", NULL);
        Py_DECREF(name);
        value = slice(r, &r->hdr[4 * i + 2]);
        if (lower == NULL || value == NULL) {
            Py_XDECREF(lower);
            Py_XDECREF(value);
            goto fail;
        }
        old = PyDict_GetItemWithError(d, lower); /* borrowed */
        if (old) {
            PyObject *joined = PyUnicode_FromFormat("%U, %U", old, value);
            Py_DECREF(value);
            value = joined;
        }
        if (value == NULL || PyDict_SetItem(d, lower, value) < 0) {
            Py_DECREF(lower);
            Py_XDECREF(value);
            goto fail;
        }
        Py_DECREF(lower);
        Py_DECREF(value);
    }
    r->headers_cache = Py_NewRef(d);
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static int req_traverse(PyObject *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(((px_request_t *)s)->headers_cache);
    Py_VISIT(((px_request_t *)s)->args_cache);
    return 0;
}

static int req_clear(PyObject *s)
{
    px_request_t *r = (px_request_t *)s;
    Py_CLEAR(r->head);
    Py_CLEAR(r->body);
    Py_CLEAR(r->headers_cache);
    Py_CLEAR(r->args_cache);
    return 0;
}

static void req_dealloc(PyObject *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    req_clear(s);
    PyMem_Free(((px_request_t *)s)->hdr);
    tp->tp_free(s);
    Py_DECREF(tp);
}

/* The query as a dict: first value of each name, blank values kept. */
static PyObject *req_args(PyObject *s, void *c)
{
    px_request_t *r = (px_request_t *)s;
    PyObject *query, *pairs, *d;
    (void)c;
    if (r->args_cache)
        return Py_NewRef(r->args_cache);
    query = slice(r, r->query);
    if (query == NULL)
        return NULL;
    pairs = PyObject_CallFunction(parse_qsl, "OO", query, Py_True);
    Py_DECREF(query);
    if (pairs == NULL)
        return NULL;
    d = PyDict_New();
    for (Py_ssize_t i = 0; d && i < PyList_GET_SIZE(pairs); i++) {
        PyObject *kv = PyList_GET_ITEM(pairs, i);
        int seen = PyDict_Contains(d, PyTuple_GET_ITEM(kv, 0));
        if (seen < 0 || (!seen && PyDict_SetItem(d, PyTuple_GET_ITEM(kv, 0),
                                                 PyTuple_GET_ITEM(kv, 1)) < 0))
            Py_CLEAR(d);
    }
    Py_DECREF(pairs);
    if (d != NULL)
        r->args_cache = Py_NewRef(d);
    return d;
}

/* The peer's (host, port), known while the handler runs; None after. */
static PyObject *req_remote_addr(PyObject *s, void *c)
{
    px_request_t *r = (px_request_t *)s;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    const void *addr;
    int port;
    (void)c;
    if (r->conn == NULL || getpeername(px_conn_fd(r->conn), (struct sockaddr *)&ss, &len) < 0)
        Py_RETURN_NONE;
    if (ss.ss_family == AF_INET) {
        addr = &((struct sockaddr_in *)&ss)->sin_addr;
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        Py_RETURN_NONE;
    }
    if (inet_ntop(ss.ss_family, addr, host, sizeof(host)) == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(si)", host, port);
}

/* Request.header(name, default=None): one header, by any spelling of its name. */
static PyObject *req_header(PyObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *headers, *lower, *value;
    if (nargs < 1 || nargs > 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "header(name: str, default=None)");
        return NULL;
    }
    headers = req_headers(s, NULL);
    if (headers == NULL)
        return NULL;
    lower = PyObject_CallMethod(args[0], "lower", NULL);
    if (lower == NULL) {
        Py_DECREF(headers);
        return NULL;
    }
    if (PyDict_GetItemRef(headers, lower, &value) == 0)
        value = Py_NewRef(nargs == 2 ? args[1] : Py_None); /* (-1 leaves value NULL) */
    Py_DECREF(lower);
    Py_DECREF(headers);
    return value;
}

/* Request.json(): the body parsed; a body that is not JSON is the client's
 * error (HttpError 400), not the handler's. */
static PyObject *req_json(PyObject *s, PyObject *unused)
{
    PyObject *value;
    (void)unused;
    value = PyObject_CallOneArg(json_loads, ((px_request_t *)s)->body);
    if (value == NULL && http_error_type && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyObject *cause = PyErr_GetRaisedException();
        PyObject *err = PyObject_CallFunction(http_error_type, "is", 400,
                                              "400 Bad Request: the body is not valid JSON");
        if (err != NULL) {
            PyException_SetCause(err, cause);
            PyErr_SetObject(http_error_type, err);
            Py_DECREF(err);
        } else {
            Py_DECREF(cause);
        }
    }
    return value;
}

static PyMethodDef req_methods[] = {
    {"header", (PyCFunction)(void (*)(void))req_header, METH_FASTCALL,
     "header(name, default=None): a header's value, the name in any case"},
    {"json", req_json, METH_NOARGS,
     "the body parsed as JSON; HttpError(400) when it is not JSON"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef req_getset[] = {
    {"args", req_args, NULL, "query parameters: {name: first value}", NULL},
    {"remote_addr", req_remote_addr, NULL, "the client's (host, port) while the handler runs", NULL},
    {"method", req_method, NULL, "request method", NULL},
    {"path", req_path, NULL, "path, not decoded, without the query", NULL},
    {"query", req_query, NULL, "query string, without '?'", NULL},
    {"target", req_target, NULL, "request target as sent", NULL},
    {"body", req_body, NULL, "decoded body bytes", NULL},
    {"headers", req_headers, NULL, "dict of lower-cased header names", NULL},
    {"version", req_version, NULL, "'HTTP/1.0' or 'HTTP/1.1'", NULL},
    {"keep_alive", req_keep_alive, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot req_slots[] = {
    {Py_tp_doc, "An HTTP request; fields are built when first read."},
    {Py_tp_getset, req_getset},
    {Py_tp_methods, req_methods},
    {Py_tp_traverse, req_traverse},
    {Py_tp_clear, req_clear},
    {Py_tp_dealloc, req_dealloc},
    {0, NULL},
};

PyType_Spec px_py_request_type_spec = {
    .name = "pyparallel._core.Request",
    .basicsize = sizeof(px_request_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_BASETYPE,
    .slots = req_slots,
};

void px_py_set_request_type(PyTypeObject *tp) { request_type = tp; }

/* ---- calling the application ---------------------------------------------- */

static void log_traceback(void)
{
    /* A handler that raised: its traceback goes to stderr, the client gets 500. */
    PyObject *exc = PyErr_GetRaisedException();
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_DisplayException(exc);
#else
    PyErr_Display((PyObject *)Py_TYPE(exc), exc, PyException_GetTraceback(exc));
#endif
    Py_DECREF(exc);
}

static int respond_buffer(px_http_exchange_t *x, int status, const char *ctype,
                          const char *extra, size_t extra_len, PyObject *body)
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

static int respond_sendfile(px_http_exchange_t *x, int status, const char *ctype,
                            const char *extra, size_t extra_len, PyObject *body)
{
    PyObject *path = PyObject_GetAttrString(body, "path");
    PyObject *off = PyObject_GetAttrString(body, "offset");
    PyObject *cnt = PyObject_GetAttrString(body, "count");
    PyObject *enc = NULL;
    long long o = off ? PyLong_AsLongLong(off) : -1;
    long long n = cnt && cnt != Py_None ? PyLong_AsLongLong(cnt) : -1;
    int fd, rc = -1;

    if (path && o >= 0 && n >= 0 && PyUnicode_FSConverter(path, &enc)) {
        Py_BEGIN_ALLOW_THREADS
        fd = open(PyBytes_AS_STRING(enc), O_RDONLY | O_CLOEXEC);
        Py_END_ALLOW_THREADS
        if (fd < 0)
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        else if (px_http_respond_file(x, status, ctype, extra, extra_len, fd, (off_t)o,
                                      (size_t)n) < 0)
            PyErr_SetString(PyExc_ConnectionError, "connection closed");
        else
            rc = 0;
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
static int respond_body(http_app_t *a, px_http_exchange_t *x, int status, const char *ctype,
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
        rc = px_http_respond(x, status, ctype ? ctype : JSON, extra, extra_len,
                             scratch.data + mark, scratch.len - mark);
        scratch.len = mark;
        return rc;
    }
}

/* A Response: status, content_type, headers (dict), body. */
static int respond_response(http_app_t *a, px_http_exchange_t *x, PyObject *r)
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
                    char *p = PyMem_RawRealloc(scratch.data, PX_MAX(scratch.cap * 2, scratch.len + need + 256));
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
                    PyErr_SetString(PyExc_ValueError, "header names and values may not contain CR or LF");
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

static int send_result(http_app_t *a, px_http_exchange_t *x, PyObject *result)
{
    if (a->response_type && PyObject_TypeCheck(result, (PyTypeObject *)a->response_type))
        return respond_response(a, x, result);
    return respond_body(a, x, 200, NULL, NULL, 0, result) < 0 ? -1 : 0;
}

static unsigned method_bit(px_view_t m)
{
    static const struct { const char *name; size_t len; unsigned bit; } table[] = {
        {"GET", 3, METHOD_GET}, {"HEAD", 4, METHOD_HEAD}, {"POST", 4, METHOD_POST},
        {"PUT", 3, METHOD_PUT}, {"DELETE", 6, METHOD_DELETE}, {"PATCH", 5, METHOD_PATCH},
        {"OPTIONS", 7, METHOD_OPTIONS},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(table); i++)
        if (m.len == table[i].len && memcmp(m.base, table[i].name, m.len) == 0)
            return table[i].bit;
    return 0;
}

/* The handler of an exact route that takes this request as it is (no query
 * arguments to pass), or NULL to let the application route it. */
static PyObject *fast_route(http_app_t *a, const px_http_request_t *req)
{
    unsigned bit;

    if (req->query.len != 0 || a->nroutes == 0)
        return NULL;
    bit = method_bit(req->method);
    for (size_t i = 0; i < a->nroutes; i++) {
        exact_route_t *r = &a->routes[i];
        if (r->len == req->path.len && memcmp(r->path, req->path.base, r->len) == 0)
            return (r->methods & bit) ? r->handler : NULL;
    }
    return NULL;
}

/* The application runs with the worker released (a spare serves the other
 * connections if it blocks); its result is converted and queued owned. The
 * request was copied out of the receive buffer before. */
static void app_call(px_http_exchange_t *x, void *udata)
{
    http_app_t *a = udata;
    px_worker_t *w = px_conn_worker(x->conn);
    px_request_t *req;
    PyObject *result = NULL, *handler;

    px_py_attach(w);
    handler = fast_route(a, x->req);
    req = request_new(x);
    if (req != NULL) {
        bool released;
        req->conn = x->conn;
        released = px_py_release(w);
        result = PyObject_CallOneArg(handler ? handler : a->app, (PyObject *)req);
        if (result == NULL && http_error_type && PyErr_ExceptionMatches(http_error_type)) {
            PyObject *exc = PyErr_GetRaisedException();
            result = PyObject_CallMethod(a->app, "_http_error", "OO", req, exc);
            Py_DECREF(exc);
        }
        px_py_reacquire(w, released);
        req->conn = NULL;
        Py_DECREF(req);
    }
    if (px_conn_closing(x->conn)) {
        /* Closed while the handler blocked (shutdown, deadline): nobody to answer. */
        if (result == NULL) {
            PX_STAT_ADD(px_worker_stats(w), errors, 1);
            log_traceback();
        }
        x->responded = true;
    } else if (result == NULL || send_result(a, x, result) < 0) {
        PX_STAT_ADD(px_worker_stats(w), errors, 1);
        if (PyErr_Occurred())
            log_traceback();
        x->responded = false; /* the engine answers 500 */
        x->keep_alive = false;
    }
    Py_XDECREF(result);
}

/* routes: {path: (handler, (method, ...))} */
static int add_exact_routes(http_app_t *a, PyObject *routes)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0, n;

    if (!PyDict_Check(routes)) {
        PyErr_SetString(PyExc_TypeError, "routes must be a dict");
        return -1;
    }
    n = PyDict_Size(routes);
    a->routes = PyMem_RawCalloc((size_t)n + 1, sizeof(*a->routes));
    if (a->routes == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (PyDict_Next(routes, &pos, &key, &value)) {
        exact_route_t *r = &a->routes[a->nroutes];
        Py_ssize_t len, i;
        const char *path = PyUnicode_AsUTF8AndSize(key, &len);
        PyObject *methods;

        if (path == NULL || !PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "routes: {path: (handler, methods)}");
            return -1;
        }
        methods = PyTuple_GET_ITEM(value, 1);
        r->methods = 0;
        for (i = 0; i < PySequence_Size(methods); i++) {
            PyObject *m = PySequence_GetItem(methods, i);
            Py_ssize_t ml;
            const char *ms = m ? PyUnicode_AsUTF8AndSize(m, &ml) : NULL;
            if (ms == NULL) {
                Py_XDECREF(m);
                return -1;
            }
            r->methods |= method_bit((px_view_t){ms, (size_t)ml});
            Py_DECREF(m);
        }
        r->path = PyMem_RawMalloc((size_t)len + 1);
        if (r->path == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(r->path, path, (size_t)len + 1);
        r->len = (size_t)len;
        r->handler = Py_NewRef(PyTuple_GET_ITEM(value, 0));
        a->nroutes++;
    }
    return 0;
}

/* What Request methods call, fixed by the first server (they live as long as
 * the process). */
static int request_helpers_init(PyObject *error_type)
{
    if (json_loads == NULL) {
        PyObject *json = PyImport_ImportModule("json");
        PyObject *parse = PyImport_ImportModule("urllib.parse");
        if (json == NULL || parse == NULL) {
            Py_XDECREF(json);
            Py_XDECREF(parse);
            return -1;
        }
        json_loads = PyObject_GetAttrString(json, "loads");
        parse_qsl = PyObject_GetAttrString(parse, "parse_qsl");
        Py_DECREF(json);
        Py_DECREF(parse);
        if (json_loads == NULL || parse_qsl == NULL)
            return -1;
    }
    if (http_error_type == NULL && error_type && error_type != Py_None)
        http_error_type = Py_NewRef(error_type);
    return 0;
}

/* Engine.listen_http(host, port, app, static_routes, limits...) */
PyObject *px_py_listen_http(px_engine_t *e, PyObject *engine, PyObject *args, PyObject *kwds,
                            void **owned)
{
    static char *kwlist[] = {"host", "port", "app", "static", "keepalive_timeout",
                             "head_timeout", "body_timeout", "max_body", "max_headers",
                             "max_request_line", "max_header_bytes", "server_name",
                             "response_type", "json_default", "routes", "fd", "error_type", NULL};
    const char *host, *server_name = "pyparallel";
    int port, rc;
    PyObject *app, *routes = Py_None, *response_type = NULL, *json_default = NULL;
    PyObject *exact = NULL, *error_type = NULL;
    int listen_fd = -1;
    double ka = 60, head_t = 10, body_t = 30;
    unsigned long long max_body = 1 << 20;
    Py_ssize_t max_headers = 100, max_line = 8192, max_head = 16384;
    px_http_config_t cfg;
    http_app_t *a;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "siO|OdddKnnns$OOOiO:listen_http", kwlist,
                                     &host, &port, &app, &routes, &ka, &head_t, &body_t,
                                     &max_body, &max_headers, &max_line, &max_head,
                                     &server_name, &response_type, &json_default, &exact,
                                     &listen_fd, &error_type))
        return NULL;
    if (request_helpers_init(error_type) < 0)
        return NULL;
    px_http_config_default(&cfg);
    cfg.keepalive_timeout_ms = (unsigned)(ka * 1000);
    cfg.head_timeout_ms = (unsigned)(head_t * 1000);
    cfg.body_timeout_ms = (unsigned)(body_t * 1000);
    cfg.limits.max_body = max_body;
    cfg.limits.max_headers = (size_t)max_headers;
    cfg.limits.max_request_line = (size_t)max_line;
    cfg.limits.max_header_bytes = (size_t)max_head;
    a = PyMem_RawCalloc(1, sizeof(*a));
    if (a == NULL)
        return PyErr_NoMemory();
    a->app = Py_NewRef(app);
    a->engine = engine;
    /* The server keeps the pointer: the application record owns the copy. */
    a->server_name = PyMem_RawMalloc(strlen(server_name) + 1);
    if (a->server_name == NULL) {
        px_py_http_app_free(a);
        return PyErr_NoMemory();
    }
    strcpy(a->server_name, server_name);
    cfg.server_name = a->server_name;
    if (response_type && response_type != Py_None) {
        if (!PyType_Check(response_type)) {
            px_py_http_app_free(a);
            PyErr_SetString(PyExc_TypeError, "response_type must be a class");
            return NULL;
        }
        a->response_type = Py_NewRef(response_type);
    }
    if (json_default && json_default != Py_None)
        a->json_default = Py_NewRef(json_default);
    if (exact && exact != Py_None && add_exact_routes(a, exact) < 0) {
        px_py_http_app_free(a);
        return NULL;
    }
    rc = px_http_server_new(&cfg, app_call, a, &a->srv);
    if (rc < 0)
        goto fail;
    if (routes != Py_None) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(routes, &pos, &key, &value)) {
            const char *path = PyUnicode_AsUTF8(key), *ctype;
            char *body;
            Py_ssize_t len;
            if (path == NULL || !PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2 ||
                (ctype = PyUnicode_AsUTF8(PyTuple_GET_ITEM(value, 0))) == NULL ||
                PyBytes_AsStringAndSize(PyTuple_GET_ITEM(value, 1), &body, &len) < 0) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "static routes: {path: (content_type, bytes)}");
                rc = -1;
                goto fail;
            }
            rc = px_http_route_static(a->srv, path, ctype, body, (size_t)len);
            if (rc < 0)
                goto fail;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    rc = px_http_listen(e, a->srv, host, port, listen_fd);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        goto fail;
    *owned = a;
    return PyLong_FromLong(rc);
fail:
    if (rc < 0 && !PyErr_Occurred())
        px_py_raise_errno(px_py_engine_state(engine), rc, "listen_http");
    px_py_http_app_free(a);
    return NULL;
}

void px_py_http_app_free(void *p)
{
    http_app_t *a = p;
    px_http_server_free(a->srv);
    PyMem_RawFree(a->server_name); /* after the server that points to it */
    Py_XDECREF(a->app);
    Py_XDECREF(a->response_type);
    Py_XDECREF(a->json_default);
    for (size_t i = 0; i < a->nroutes; i++) {
        PyMem_RawFree(a->routes[i].path);
        Py_XDECREF(a->routes[i].handler);
    }
    PyMem_RawFree(a->routes);
    PyMem_RawFree(a);
}

int px_py_http_app_traverse(void *p, visitproc visit, void *arg)
{
    http_app_t *a = p;
    Py_VISIT(a->app);
    Py_VISIT(a->response_type);
    Py_VISIT(a->json_default);
    for (size_t i = 0; i < a->nroutes; i++)
        Py_VISIT(a->routes[i].handler);
    return 0;
}

void px_py_http_app_clear(void *p)
{
    http_app_t *a = p;
    Py_CLEAR(a->app);
    Py_CLEAR(a->response_type);
    Py_CLEAR(a->json_default);
    for (size_t i = 0; i < a->nroutes; i++)
        Py_CLEAR(a->routes[i].handler);
}
