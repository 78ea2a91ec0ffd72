/*
 * The environ of a request as a copy of a template. Building an environ
 * takes some twenty dict insertions and as many strings; copying a dict that
 * already holds them is a fraction of that. Each thread keeps the environs
 * it built last (a few, per application and header set); a request whose
 * headers are byte for byte those of a template gets a copy of it, after
 * the values that may differ between such requests (path, query, method,
 * protocol, host, peer) were compared with the template's and set again
 * where they differ. Identical bytes give identical values, so the copy is
 * the dict building would give. The template itself is never handed out:
 * apps get copies, and may change them.
 */
#include "wsgi.h"

#include <stdint.h>

#define TEMPLATES 2    /* per thread */
#define HEADS_MAX 4096 /* header bytes a template remembers: longer heads are built each time */

typedef struct bytes {
    char *p;
    size_t len, cap;
} bytes_t;

typedef struct template
{
    uint64_t app;          /* the px_py_wsgi_t's id; 0: the slot is empty */
    PyObject *env;         /* the environ, owned by this thread, never handed out */
    PyObject *empty_input; /* its wsgi.input: a body of no bytes */
    PyObject *addr, *port; /* its REMOTE_ADDR and REMOTE_PORT, or NULL: made per request */
    int minor;
    bool https, has_length;
    bytes_t heads; /* the headers: per header the two lengths, then name and value */
    bytes_t target, method, host;
}
template_t;

static _Thread_local template_t templates[TEMPLATES];
static _Thread_local unsigned victim;

static int bytes_reserve(bytes_t *b, size_t len)
{
    char *q;

    if (len <= b->cap)
        return 0;
    if ((q = PyMem_RawRealloc(b->p, len)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = q;
    b->cap = len;
    return 0;
}

static int bytes_set(bytes_t *b, const char *p, size_t len)
{
    if (bytes_reserve(b, len) < 0)
        return -1;
    if (len)
        memcpy(b->p, p, len);
    b->len = len;
    return 0;
}

static bool bytes_is(const bytes_t *b, px_view_t v)
{
    return b->len == v.len && (v.len == 0 || memcmp(b->p, v.base, v.len) == 0);
}

static void slot_clear(template_t *t)
{
    t->app = 0;
    Py_CLEAR(t->env);
    Py_CLEAR(t->empty_input);
    Py_CLEAR(t->addr);
    Py_CLEAR(t->port);
}

void px_py_wsgi_thread_exit(void)
{
    px_py_wsgi_start_thread_exit();
    px_py_wsgi_names_thread_exit();
    for (int i = 0; i < TEMPLATES; i++) {
        template_t *t = &templates[i];
        slot_clear(t);
        PyMem_RawFree(t->heads.p);
        PyMem_RawFree(t->target.p);
        PyMem_RawFree(t->method.p);
        PyMem_RawFree(t->host.p);
        memset(t, 0, sizeof(*t));
    }
}

typedef struct head_lens {
    uint32_t name, value;
} head_lens_t;

/* The bytes of the headers of req as a template keeps them; 0, 1 when
 * they are too long to keep, -1 with an exception. */
static int heads_set(bytes_t *b, const px_http_request_t *req)
{
    size_t len = 0;
    char *p;

    for (size_t i = 0; i < req->num_headers; i++)
        len += sizeof(head_lens_t) + req->headers[i].name.len + req->headers[i].value.len;
    if (len > HEADS_MAX)
        return 1;
    if (bytes_reserve(b, len) < 0)
        return -1;
    p = b->p;
    for (size_t i = 0; i < req->num_headers; i++) {
        const px_http_header_t *h = &req->headers[i];
        head_lens_t n = {(uint32_t)h->name.len, (uint32_t)h->value.len};
        memcpy(p, &n, sizeof(n));
        p += sizeof(n);
        memcpy(p, h->name.base, h->name.len);
        p += h->name.len;
        memcpy(p, h->value.base, h->value.len);
        p += h->value.len;
    }
    b->len = len;
    return 0;
}

static bool heads_are(const bytes_t *b, const px_http_request_t *req)
{
    const char *p = b->p, *end = b->p + b->len;

    for (size_t i = 0; i < req->num_headers; i++) {
        const px_http_header_t *h = &req->headers[i];
        head_lens_t n;
        if ((size_t)(end - p) < sizeof(n) + h->name.len + h->value.len)
            return false;
        memcpy(&n, p, sizeof(n));
        p += sizeof(n);
        if (n.name != h->name.len || n.value != h->value.len ||
            memcmp(p, h->name.base, h->name.len) != 0 ||
            memcmp(p + h->name.len, h->value.base, h->value.len) != 0)
            return false;
        p += h->name.len + h->value.len;
    }
    return p == end;
}

/* a and b (latin-1 strings, b maybe NULL) have the same characters */
static bool same_str(PyObject *a, PyObject *b)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);

    return a == b || (b != NULL && PyUnicode_GET_LENGTH(b) == n &&
                      PyUnicode_KIND(a) == PyUnicode_1BYTE_KIND &&
                      PyUnicode_KIND(b) == PyUnicode_1BYTE_KIND &&
                      memcmp(PyUnicode_1BYTE_DATA(a), PyUnicode_1BYTE_DATA(b), (size_t)n) == 0);
}

/* The values of the template's environ that are not the headers' brought
 * to those of req; 0, or -1 with an exception (the template is then
 * dropped: some of its values may be another request's). */
static int refresh(px_py_wsgi_t *g, template_t *t, const px_http_request_t *req,
                   const px_py_peer_t *peer)
{
    bool addr, port;

    if (!bytes_is(&t->target, req->target) &&
        (px_py_wsgi_set_target(g, t->env, req) < 0 ||
         bytes_set(&t->target, req->target.base, req->target.len) < 0))
        return -1;
    if (!bytes_is(&t->method, req->method) &&
        (px_py_wsgi_set_method(g, t->env, req) < 0 ||
         bytes_set(&t->method, req->method.base, req->method.len) < 0))
        return -1;
    if (t->minor != req->minor_version) {
        if (px_py_wsgi_set_protocol(g, t->env, req) < 0)
            return -1;
        t->minor = req->minor_version;
    }
    if (!bytes_is(&t->host, req->host) && (px_py_wsgi_set_server(g, t->env, req, t->https) < 0 ||
                                           bytes_set(&t->host, req->host.base, req->host.len) < 0))
        return -1;
    /* each connection has its strings; many share an address (a proxy's) */
    addr = peer->addr_str == NULL || !same_str(peer->addr_str, t->addr);
    port = peer->port_str == NULL || peer->port_str != t->port;
    if ((addr || port) && px_py_wsgi_set_peer(g, t->env, peer, addr, port) < 0)
        return -1;
    if (addr)
        Py_XSETREF(t->addr, Py_XNewRef(peer->addr_str));
    if (port)
        Py_XSETREF(t->port, Py_XNewRef(peer->port_str));
    return 0;
}

/* A new template for req's headers in t: 0, 1 when they are too long to
 * keep (t stays empty), -1 with an exception. */
static int build(px_py_wsgi_t *g, template_t *t, const px_http_request_t *req,
                 const px_py_peer_t *peer)
{
    px_py_wsgi_fill_t found;
    int rc;

    slot_clear(t);
    if ((rc = heads_set(&t->heads, req)) != 0)
        return rc;
    t->empty_input = px_py_wsgi_input_new(g, NULL, 0);
    t->env = t->empty_input ? PyDict_Copy(g->base_environ) : NULL;
    if (t->env == NULL ||
        px_py_wsgi_environ_fill(g, t->env, req, peer, t->empty_input, &found) < 0 ||
        bytes_set(&t->target, req->target.base, req->target.len) < 0 ||
        bytes_set(&t->method, req->method.base, req->method.len) < 0 ||
        bytes_set(&t->host, req->host.base, req->host.len) < 0) {
        slot_clear(t);
        return -1;
    }
    t->minor = req->minor_version;
    t->https = found.https;
    t->has_length = found.has_length;
    t->addr = Py_XNewRef(peer->addr_str);
    t->port = Py_XNewRef(peer->port_str);
    t->app = g->id;
    return 0;
}

/* An environ built for this request alone (headers too long to keep). */
static PyObject *environ_alone(px_py_wsgi_t *g, const px_http_exchange_t *x,
                               const px_py_peer_t *peer, PyObject *input)
{
    PyObject *env = PyDict_Copy(g->base_environ);
    PyObject *in = input ? Py_NewRef(input) : px_py_wsgi_input_new(g, NULL, 0);
    px_py_wsgi_fill_t found;

    if (env == NULL || in == NULL ||
        px_py_wsgi_environ_fill(g, env, x->req, peer, in, &found) < 0 ||
        (!found.has_length && x->body_len > 0 && px_py_wsgi_set_length(g, env, x->body_len) < 0)) {
        Py_XDECREF(env);
        Py_XDECREF(in);
        return NULL;
    }
    Py_DECREF(in);
    return env;
}

PyObject *px_py_wsgi_environ(px_py_wsgi_t *g, const px_http_exchange_t *x, const px_py_peer_t *peer,
                             PyObject *input)
{
    const px_http_request_t *req = x->req;
    template_t *t = NULL;
    PyObject *env;

    for (int i = 0; i < TEMPLATES && t == NULL; i++)
        if (templates[i].app == g->id && heads_are(&templates[i].heads, req))
            t = &templates[i];
    if (t != NULL) {
        if (refresh(g, t, req, peer) < 0) {
            slot_clear(t);
            return NULL;
        }
    } else {
        int rc;
        t = &templates[victim++ % TEMPLATES];
        if ((rc = build(g, t, req, peer)) < 0)
            return NULL;
        if (rc > 0)
            return environ_alone(g, x, peer, input);
    }
    env = PyDict_Copy(t->env);
    if (env == NULL)
        return NULL;
    if ((input != NULL && PyDict_SetItem(env, g->keys[WK_INPUT], input) < 0) ||
        (!t->has_length && x->body_len > 0 && px_py_wsgi_set_length(g, env, x->body_len) < 0)) {
        Py_DECREF(env);
        return NULL;
    }
    return env;
}
