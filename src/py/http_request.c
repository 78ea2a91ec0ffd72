/*
 * The Request type of HttpServer handlers: one copy of the request head, with
 * every field (method, path, headers, query arguments...) built when first
 * read.
 */
#include "http.h"

#include "px/http_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

typedef struct px_py_request {
    PyObject_HEAD PyObject *head; /* bytes: the request head as received */
    PyObject *body;               /* bytes */
    Py_ssize_t method[2], path[2], query[2], target[2];
    int minor_version;
    bool keep_alive;
    Py_ssize_t nheaders;
    Py_ssize_t *hdr; /* 4 per header: name off/len, value off/len */
    PyObject *headers_cache;
    PyObject *args_cache;
    px_conn_t *conn;       /* while its handler runs; NULL after */
    px_py_http_app_t *app; /* likewise */
    PyObject *transport;   /* the connection's context, once read */
    PyObject *remote;      /* remote_addr kept for after the handler (a deferral) */
    PyObject *range;       /* request.range once read or set */
    PyObject *response;    /* request.response once read or set */
    px_http_exchange_t *x; /* while its handler runs (a body still arriving is read
                              from it); NULL after */
    bool body_pending;     /* the body was streamed (stream_bodies), not read yet */
    bool body_reading;     /* a thread is reading it */
} px_py_request_t;

static PyObject *slice(px_py_request_t *r, const Py_ssize_t *span)
{
    return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(r->head) + span[0], span[1], "strict");
}

static void span_of(const char *base, px_view_t v, Py_ssize_t *span)
{
    span[0] = v.base ? (Py_ssize_t)(v.base - base) : 0;
    span[1] = (Py_ssize_t)v.len;
}

PyObject *px_py_request_new(px_module_state_t *st, const px_http_exchange_t *x)
{
    const px_http_request_t *req = x->req;
    const char *base = req->method.base;
    size_t head_len = 0, i;
    px_py_request_t *r;

    /* The head spans from the method to the end of the last header value. */
    for (i = 0; i < req->num_headers; i++) {
        size_t end = (size_t)(req->headers[i].value.base + req->headers[i].value.len - base);
        head_len = PX_MAX(head_len, end);
    }
    head_len = PX_MAX(head_len, (size_t)(req->target.base + req->target.len - base));
    r = PyObject_GC_New(px_py_request_t, st->request_type);
    if (r == NULL)
        return NULL;
    r->head = PyBytes_FromStringAndSize(base, (Py_ssize_t)head_len);
    r->body = PyBytes_FromStringAndSize(x->body, (Py_ssize_t)x->body_len);
    r->hdr = PyMem_Malloc(sizeof(Py_ssize_t) * 4 * (req->num_headers + 1));
    r->headers_cache = NULL;
    r->args_cache = NULL;
    r->conn = NULL;
    r->app = NULL;
    r->transport = NULL;
    r->remote = NULL;
    r->range = NULL;
    r->response = NULL;
    r->x = NULL;
    r->body_pending = x->body_stream != NULL;
    r->body_reading = false;
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
    return (PyObject *)r;
}

static PyObject *req_method(PyObject *s, void *c)
{
    (void)c;
    return slice((px_py_request_t *)s, ((px_py_request_t *)s)->method);
}
static PyObject *req_query(PyObject *s, void *c)
{
    (void)c;
    return slice((px_py_request_t *)s, ((px_py_request_t *)s)->query);
}
static PyObject *req_target(PyObject *s, void *c)
{
    (void)c;
    return slice((px_py_request_t *)s, ((px_py_request_t *)s)->target);
}
/* A body still arriving (stream_bodies) is read whole at its first use, by
 * the handler (blocking, thread state detached): as nginx's $request_body
 * once read, bounded by max_body like a buffered one. After the handler
 * returned the engine has dropped it: an error then, never a silent b"". */
static int body_fill(px_py_request_t *r)
{
    px_module_state_t *st;
    size_t len = 0, cap = 64 << 10;
    char *buf;
    ssize_t n = 0;

    if (!r->body_pending)
        return 0;
    if (r->x == NULL || r->body_reading) {
        PyErr_SetString(PyExc_RuntimeError,
                        r->x == NULL ? "Request.body: the body was streamed (stream_bodies) and "
                                       "is read only while the handler runs"
                                     : "Request.body: another thread is reading the body");
        return -1;
    }
    if ((buf = PyMem_RawMalloc(cap)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    r->body_reading = true;
    for (;;) {
        if (len == cap) {
            char *p = PyMem_RawRealloc(buf, cap * 2);
            if (p == NULL) {
                n = -ENOMEM;
                break;
            }
            buf = p;
            cap *= 2;
        }
        Py_BEGIN_ALLOW_THREADS n = px_http_body_read(r->x, buf + len, cap - len, -1);
        Py_END_ALLOW_THREADS if (n <= 0) break;
        len += (size_t)n;
    }
    r->body_reading = false;
    if (n == 0) {
        PyObject *body = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
        PyMem_RawFree(buf);
        if (body == NULL)
            return -1;
        Py_SETREF(r->body, body);
        r->body_pending = false;
        return 0;
    }
    PyMem_RawFree(buf);
    st = px_py_request_state((PyObject *)r);
    if ((n == -EFBIG || n == -EBADMSG) && st != NULL && st->http_error) {
        PyObject *err = n == -EFBIG ? PyObject_CallFunction(st->http_error, "is", 413,
                                                            "413 Content Too Large")
                                    : PyObject_CallFunction(st->http_error, "is", 400,
                                                            "400 Bad Request: a malformed body");
        if (err != NULL) {
            PyErr_SetObject(st->http_error, err);
            Py_DECREF(err);
        }
        return -1;
    }
    errno = (int)-n;
    PyErr_SetFromErrno(n == -ECONNRESET ? PyExc_ConnectionResetError : PyExc_OSError);
    return -1;
}

static PyObject *req_body(PyObject *s, void *c)
{
    (void)c;
    if (body_fill((px_py_request_t *)s) < 0)
        return NULL;
    return Py_NewRef(((px_py_request_t *)s)->body);
}
static PyObject *req_keep_alive(PyObject *s, void *c)
{
    (void)c;
    return PyBool_FromLong(((px_py_request_t *)s)->keep_alive);
}

static PyObject *req_path(PyObject *s, void *c)
{
    px_py_request_t *r = (px_py_request_t *)s;
    (void)c;
    if (r->path[1] == 0)
        return PyUnicode_FromString("/");
    return slice(r, r->path);
}

static PyObject *req_version(PyObject *s, void *c)
{
    (void)c;
    return PyUnicode_FromFormat("HTTP/1.%d", ((px_py_request_t *)s)->minor_version);
}

/* headers: a dict with lower-cased names; repeated headers joined by ", ". */
static PyObject *req_headers(PyObject *s, void *c)
{
    px_py_request_t *r = (px_py_request_t *)s;
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
    Py_VISIT(((px_py_request_t *)s)->headers_cache);
    Py_VISIT(((px_py_request_t *)s)->args_cache);
    Py_VISIT(((px_py_request_t *)s)->transport);
    Py_VISIT(((px_py_request_t *)s)->range);
    Py_VISIT(((px_py_request_t *)s)->response);
    return 0;
}

static int req_clear(PyObject *s)
{
    px_py_request_t *r = (px_py_request_t *)s;
    Py_CLEAR(r->head);
    Py_CLEAR(r->body);
    Py_CLEAR(r->headers_cache);
    Py_CLEAR(r->args_cache);
    Py_CLEAR(r->transport);
    Py_CLEAR(r->remote);
    Py_CLEAR(r->range);
    Py_CLEAR(r->response);
    return 0;
}

static void req_dealloc(PyObject *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    req_clear(s);
    PyMem_Free(((px_py_request_t *)s)->hdr);
    tp->tp_free(s);
    Py_DECREF(tp);
}

/* The query as a dict: first value of each name, blank values kept. */
static PyObject *req_args(PyObject *s, void *c)
{
    px_py_request_t *r = (px_py_request_t *)s;
    PyObject *query, *pairs, *d;
    px_module_state_t *st;
    (void)c;
    if (r->args_cache)
        return Py_NewRef(r->args_cache);
    query = slice(r, r->query);
    if (query == NULL)
        return NULL;
    st = px_py_request_state(s);
    pairs = st ? PyObject_CallFunction(st->parse_qsl, "OO", query, Py_True) : NULL;
    Py_DECREF(query);
    if (pairs == NULL)
        return NULL;
    d = PyDict_New();
    for (Py_ssize_t i = 0; d && i < PyList_GET_SIZE(pairs); i++) {
        PyObject *kv = PyList_GET_ITEM(pairs, i);
        int seen = PyDict_Contains(d, PyTuple_GET_ITEM(kv, 0));
        if (seen < 0 ||
            (!seen && PyDict_SetItem(d, PyTuple_GET_ITEM(kv, 0), PyTuple_GET_ITEM(kv, 1)) < 0))
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
    px_py_request_t *r = (px_py_request_t *)s;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    const void *addr;
    int port;
    (void)c;
    if (r->remote != NULL)
        return Py_NewRef(r->remote);
    if (r->conn == NULL || px_conn_peer_addr(r->conn, &ss, &len) < 0)
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
    px_module_state_t *st = px_py_request_state(s);
    PyObject *value;
    (void)unused;
    if (st == NULL || body_fill((px_py_request_t *)s) < 0)
        return NULL;
    value = PyObject_CallOneArg(st->json_loads, ((px_py_request_t *)s)->body);
    if (value == NULL && st->http_error && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyObject *cause = PyErr_GetRaisedException();
        PyObject *err = PyObject_CallFunction(st->http_error, "is", 400,
                                              "400 Bad Request: the body is not valid JSON");
        if (err != NULL) {
            PyException_SetCause(err, cause);
            PyErr_SetObject(st->http_error, err);
            Py_DECREF(err);
        } else {
            Py_DECREF(cause);
        }
    }
    return value;
}

/* request.transport: the connection's context (pyparallel.http.HttpConnection),
 * made when first read while the handler runs; None when read later first. */
static PyObject *req_transport(PyObject *s, void *c)
{
    px_py_request_t *r = (px_py_request_t *)s;
    PyObject *v = NULL;
    bool failed = false;
    (void)c;
    /* Other threads may read it at once: one context per connection, made
     * under the request's lock (which the Python it runs may suspend, so the
     * slots are looked at again before they are set). */
    Py_BEGIN_CRITICAL_SECTION(s);
    if (r->transport == NULL && r->conn != NULL && r->app != NULL) {
        v = px_py_http_conn_context(r->app, r->conn);
        if (v == NULL)
            failed = true;
        else if (r->transport == NULL)
            r->transport = v;
        else
            Py_DECREF(v);
    }
    v = failed ? NULL : Py_NewRef(r->transport ? r->transport : Py_None);
    Py_END_CRITICAL_SECTION();
    return v;
}

/* A field made in Python when first read, settable: its slot in the request
 * and the function of the module state (pyparallel.http._original's, looked
 * up by the first listen_http) that makes it. */
typedef struct py_field {
    size_t offset;
    size_t maker;
} py_field_t;

/* request.range: the Range header parsed (a RangedRequest, or None when
 * absent or invalid) unless a handler set it. */
static const py_field_t range_field = {offsetof(px_py_request_t, range),
                                       offsetof(px_module_state_t, header_range)};
/* request.response: what the original's handlers filled in (content_type,
 * status, headers), honoured by sendfile and the response helpers. */
static const py_field_t response_field = {offsetof(px_py_request_t, response),
                                          offsetof(px_module_state_t, new_response)};

/* Made once though several threads read it at once: the maker runs under the
 * request's lock, which its Python may suspend, so the first made is kept. */
static PyObject *req_py_field(PyObject *s, void *c)
{
    const py_field_t *f = c;
    PyObject **slot = (PyObject **)((char *)s + f->offset), *v = NULL;
    PyObject *maker = *(PyObject **)((char *)px_py_request_state(s) + f->maker);
    Py_BEGIN_CRITICAL_SECTION(s);
    if (*slot == NULL) {
        v = maker ? PyObject_CallOneArg(maker, s) : NULL;
        if (maker == NULL)
            PyErr_SetString(PyExc_RuntimeError, "no HTTP server made this request");
        if (*slot == NULL)
            *slot = Py_XNewRef(v);
    }
    Py_XDECREF(v);
    v = Py_XNewRef(*slot);
    Py_END_CRITICAL_SECTION();
    return v;
}

/* request._range_if_set / _response_if_set: the field as read or set so far,
 * None while nobody has (sendfile asks without making them). */
static PyObject *req_py_field_if_set(PyObject *s, void *c)
{
    const py_field_t *f = c;
    PyObject *v;
    Py_BEGIN_CRITICAL_SECTION(s);
    v = *(PyObject **)((char *)s + f->offset);
    v = Py_NewRef(v ? v : Py_None);
    Py_END_CRITICAL_SECTION();
    return v;
}

static int req_set_py_field(PyObject *s, PyObject *v, void *c)
{
    const py_field_t *f = c;
    Py_BEGIN_CRITICAL_SECTION(s);
    Py_XSETREF(*(PyObject **)((char *)s + f->offset), Py_NewRef(v ? v : Py_None));
    Py_END_CRITICAL_SECTION();
    return 0;
}

/* request.data: the request as received: head, blank line, (decoded) body. */
static PyObject *req_data(PyObject *s, void *c)
{
    px_py_request_t *r = (px_py_request_t *)s;
    Py_ssize_t hl, bl;
    PyObject *d;
    (void)c;
    if (body_fill(r) < 0)
        return NULL;
    hl = PyBytes_GET_SIZE(r->head);
    bl = PyBytes_GET_SIZE(r->body);
    d = PyBytes_FromStringAndSize(NULL, hl + 4 + bl);
    if (d != NULL) {
        char *p = PyBytes_AS_STRING(d);
        memcpy(p, PyBytes_AS_STRING(r->head), (size_t)hl);
        memcpy(p + hl, "\r\n\r\n", 4);
        memcpy(p + hl + 4, PyBytes_AS_STRING(r->body), (size_t)bl);
    }
    return d;
}

static PyMethodDef req_methods[] = {
    {"header", (PyCFunction)(void (*)(void))req_header, METH_FASTCALL,
     "header(name, default=None): a header's value, the name in any case"},
    {"json", req_json, METH_NOARGS, "the body parsed as JSON; HttpError(400) when it is not JSON"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef req_getset[] = {
    {"args", req_args, NULL, "query parameters: {name: first value}", NULL},
    {"remote_addr", req_remote_addr, NULL, "the client's (host, port) while the handler runs",
     NULL},
    {"method", req_method, NULL, "request method", NULL},
    {"path", req_path, NULL, "path, not decoded, without the query", NULL},
    {"query", req_query, NULL, "query string, without '?'", NULL},
    {"target", req_target, NULL, "request target as sent", NULL},
    {"body", req_body, NULL, "decoded body bytes", NULL},
    {"headers", req_headers, NULL, "dict of lower-cased header names", NULL},
    {"version", req_version, NULL, "'HTTP/1.0' or 'HTTP/1.1'", NULL},
    {"keep_alive", req_keep_alive, NULL, NULL, NULL},
    {"command", req_method, NULL, "request method (the original's name)", NULL},
    {"transport", req_transport, NULL,
     "the connection (pyparallel.http.HttpConnection): fileno(), elapsed(), parent, app", NULL},
    {"range", req_py_field, req_set_py_field,
     "the Range header as a RangedRequest (None: absent or invalid); settable",
     (void *)&range_field},
    {"response", req_py_field, req_set_py_field,
     "a Response the handler may fill in (content_type, status, headers); settable",
     (void *)&response_field},
    {"_range_if_set", req_py_field_if_set, NULL, "request.range if read or set, else None",
     (void *)&range_field},
    {"_response_if_set", req_py_field_if_set, NULL, "request.response if read or set, else None",
     (void *)&response_field},
    {"data", req_data, NULL, "the request as received: head, blank line, decoded body", NULL},
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
    .basicsize = sizeof(px_py_request_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_BASETYPE,
    .slots = req_slots,
};

void px_py_request_set_conn(PyObject *req, px_conn_t *c, px_py_http_app_t *a)
{
    ((px_py_request_t *)req)->conn = c;
    ((px_py_request_t *)req)->app = a;
}

int px_py_request_keep(PyObject *req)
{
    px_py_request_t *r = (px_py_request_t *)req;
    PyObject *t;

    if (r->body_pending) {
        PyErr_SetString(
            PyExc_RuntimeError,
            "defer(request): its body is still arriving (stream_bodies): read it first");
        return -1;
    }
    if (r->remote == NULL && (r->remote = req_remote_addr(req, NULL)) == NULL)
        return -1;
    if (r->app == NULL || r->app->conn_factory == NULL)
        return 0; /* a server without connection contexts: request.transport is None */
    t = req_transport(req, NULL);
    Py_XDECREF(t);
    return t == NULL ? -1 : 0;
}

void px_py_request_body_consumed(PyObject *req)
{
    ((px_py_request_t *)req)->body_pending = false;
}

px_py_http_app_t *px_py_request_app(PyObject *req)
{
    return ((px_py_request_t *)req)->app;
}

void px_py_request_set_exchange(PyObject *req, px_http_exchange_t *x)
{
    ((px_py_request_t *)req)->x = x;
}
