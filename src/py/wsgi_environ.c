/*
 * The WSGI environ of a request, built in C from the engine's parsed request:
 * a copy of the keys that never change, then the request's own (method, the
 * path split at the mount point, query, headers as HTTP_*, server and peer
 * addresses, the scheme, wsgi.input).
 */
#include "wsgi.h"

#include "px/http_path.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

static const char *const KEY_NAMES[WK_COUNT] = {
    [WK_REQUEST_METHOD] = "REQUEST_METHOD", [WK_PATH_INFO] = "PATH_INFO",
    [WK_QUERY_STRING] = "QUERY_STRING",     [WK_CONTENT_TYPE] = "CONTENT_TYPE",
    [WK_CONTENT_LENGTH] = "CONTENT_LENGTH", [WK_SERVER_NAME] = "SERVER_NAME",
    [WK_SERVER_PORT] = "SERVER_PORT",       [WK_SERVER_PROTOCOL] = "SERVER_PROTOCOL",
    [WK_REMOTE_ADDR] = "REMOTE_ADDR",       [WK_REMOTE_PORT] = "REMOTE_PORT",
    [WK_URL_SCHEME] = "wsgi.url_scheme",    [WK_INPUT] = "wsgi.input",
    [WK_REQUEST_URI] = "REQUEST_URI",
};

static const char *const VALUE_NAMES[WV_COUNT] = {
    [WV_GET] = "GET",         [WV_POST] = "POST",   [WV_HEAD] = "HEAD",   [WV_HTTP10] = "HTTP/1.0",
    [WV_HTTP11] = "HTTP/1.1", [WV_HTTP] = "http",   [WV_HTTPS] = "https", [WV_EMPTY] = "",
    [WV_PORT80] = "80",       [WV_PORT443] = "443",
};

/* Lower case, as compared; at most WSGI_KNOWN_HEADERS. */
#define KNOWN(s)         \
    {                    \
        s, sizeof(s) - 1 \
    }
static const struct {
    const char *name;
    size_t len;
} KNOWN_HEADERS[] = {
    KNOWN("host"),
    KNOWN("user-agent"),
    KNOWN("accept"),
    KNOWN("accept-encoding"),
    KNOWN("accept-language"),
    KNOWN("accept-charset"),
    KNOWN("connection"),
    KNOWN("cookie"),
    KNOWN("referer"),
    KNOWN("origin"),
    KNOWN("cache-control"),
    KNOWN("pragma"),
    KNOWN("upgrade-insecure-requests"),
    KNOWN("authorization"),
    KNOWN("if-none-match"),
    KNOWN("if-modified-since"),
    KNOWN("if-match"),
    KNOWN("if-unmodified-since"),
    KNOWN("if-range"),
    KNOWN("range"),
    KNOWN("x-forwarded-for"),
    KNOWN("x-forwarded-proto"),
    KNOWN("x-forwarded-host"),
    KNOWN("x-forwarded-port"),
    KNOWN("x-real-ip"),
    KNOWN("x-requested-with"),
    KNOWN("x-request-id"),
    KNOWN("forwarded"),
    KNOWN("dnt"),
    KNOWN("te"),
    KNOWN("upgrade"),
    KNOWN("sec-fetch-dest"),
    KNOWN("sec-fetch-mode"),
    KNOWN("sec-fetch-site"),
    KNOWN("sec-fetch-user"),
    KNOWN("sec-ch-ua"),
    KNOWN("sec-ch-ua-mobile"),
    KNOWN("sec-ch-ua-platform"),
    KNOWN("priority"),
    KNOWN("expect"),
};
_Static_assert(sizeof(KNOWN_HEADERS) / sizeof(KNOWN_HEADERS[0]) == WSGI_KNOWN_HEADERS,
               "one key per known header");

/* HTTP_ + the name upper case, '-' as '_', into key (n + 5 bytes). */
static void cgi_name(const char *name, size_t n, char *key)
{
    memcpy(key, "HTTP_", 5);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        key[5 + i] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
}

/* Bumped by every WSGI server made (see px_py_wsgi_peer). */
static _Atomic uint64_t peer_generation = 1;

static char *dup_utf8(PyObject *s, size_t *len)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    char *out;

    if (p == NULL)
        return NULL;
    out = PyMem_RawMalloc((size_t)n + 1);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, p, (size_t)n + 1);
    *len = (size_t)n;
    return out;
}

static PyObject *spec_item(PyObject *spec, const char *name)
{
    PyObject *v = PyDict_GetItemString(spec, name); /* borrowed */
    if (v == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_KeyError, "wsgi spec: %s missing", name);
    return v;
}

px_py_wsgi_t *px_py_wsgi_new(PyObject *spec)
{
    px_py_wsgi_t *g;
    PyObject *root, *scheme, *errors, *v;

    if (!PyDict_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "wsgi: a dict describing the application");
        return NULL;
    }
    g = PyMem_RawCalloc(1, sizeof(*g));
    if (g == NULL)
        return (px_py_wsgi_t *)PyErr_NoMemory();
    /* a new engine may reuse connection ids; the generation also names g */
    g->id = atomic_fetch_add(&peer_generation, 1) + 1;
    if ((v = spec_item(spec, "app")) == NULL)
        goto fail;
    g->app = Py_NewRef(v);
    if ((v = spec_item(spec, "file_wrapper")) == NULL)
        goto fail;
    g->file_wrapper = Py_NewRef(v);
    if ((v = spec_item(spec, "server_name")) == NULL)
        goto fail;
    g->server_name = Py_NewRef(v);
    g->server_port = PyUnicode_FromString("0");
    if ((errors = spec_item(spec, "errors")) == NULL ||
        (root = spec_item(spec, "root_path")) == NULL ||
        (scheme = spec_item(spec, "scheme_header")) == NULL ||
        (v = spec_item(spec, "access_log")) == NULL)
        goto fail;
    g->access_log = PyObject_IsTrue(v) == 1;
    if ((g->root_path = dup_utf8(root, &g->root_len)) == NULL)
        goto fail;
    while (g->root_len > 0 && g->root_path[g->root_len - 1] == '/')
        g->root_path[--g->root_len] = '\0'; /* "/app/" mounts at "/app" */
    if (scheme != Py_None) {
        if ((g->scheme_header = dup_utf8(scheme, &g->scheme_header_len)) == NULL)
            goto fail;
        for (size_t i = 0; i < g->scheme_header_len; i++)
            g->scheme_header[i] = (char)tolower((unsigned char)g->scheme_header[i]);
    }
    for (int i = 0; i < WK_COUNT; i++)
        if ((g->keys[i] = PyUnicode_InternFromString(KEY_NAMES[i])) == NULL)
            goto fail;
    for (int i = 0; i < WV_COUNT; i++)
        if ((g->values[i] = PyUnicode_InternFromString(VALUE_NAMES[i])) == NULL)
            goto fail;
    g->input_type = PyType_FromSpec(&px_py_wsgi_input_spec);
    g->start_type = PyType_FromSpec(&px_py_wsgi_start_spec);
    g->write_type = PyType_FromSpec(&px_py_wsgi_write_spec);
    /* room for the request's headers too, so that a copy never grows */
    g->base_environ = _PyDict_NewPresized(WK_COUNT + 9 + 24);
    if (g->input_type == NULL || g->start_type == NULL || g->write_type == NULL ||
        g->base_environ == NULL)
        goto fail;
    {
        PyObject *version = Py_BuildValue("(ii)", 1, 0);
        PyObject *script = PyUnicode_DecodeLatin1(g->root_path, (Py_ssize_t)g->root_len, NULL);
        int bad = version == NULL || script == NULL ||
                  PyDict_SetItemString(g->base_environ, "wsgi.version", version) < 0 ||
                  PyDict_SetItemString(g->base_environ, "wsgi.errors", errors) < 0 ||
                  PyDict_SetItemString(g->base_environ, "wsgi.multithread", Py_True) < 0 ||
                  PyDict_SetItemString(g->base_environ, "wsgi.multiprocess", Py_False) < 0 ||
                  PyDict_SetItemString(g->base_environ, "wsgi.run_once", Py_False) < 0 ||
                  PyDict_SetItemString(g->base_environ, "wsgi.input_terminated", Py_True) < 0 ||
                  PyDict_SetItemString(g->base_environ, "wsgi.file_wrapper", g->file_wrapper) < 0 ||
                  PyDict_SetItemString(g->base_environ, "SCRIPT_NAME", script) < 0 ||
                  PyDict_SetItemString(g->base_environ, "SERVER_SOFTWARE",
                                       (v = spec_item(spec, "server_software")) ? v : Py_None) < 0;
        Py_XDECREF(version);
        Py_XDECREF(script);
        if (bad || v == NULL)
            goto fail;
    }
    /* every request sets these: placeholders in the copy, replaced in place */
    for (int i = 0; i < WK_COUNT; i++)
        if (i != WK_CONTENT_TYPE && i != WK_CONTENT_LENGTH &&
            PyDict_SetItem(g->base_environ, g->keys[i], Py_None) < 0)
            goto fail;
    for (int i = 0; i < WSGI_KNOWN_HEADERS; i++) {
        char key[64];
        cgi_name(KNOWN_HEADERS[i].name, KNOWN_HEADERS[i].len, key);
        key[KNOWN_HEADERS[i].len + 5] = '\0';
        if ((g->header_keys[i] = PyUnicode_InternFromString(key)) == NULL)
            goto fail;
    }
    return g;
fail:
    px_py_wsgi_free(g);
    return NULL;
}

void px_py_wsgi_free(px_py_wsgi_t *g)
{
    if (g == NULL)
        return;
    Py_XDECREF(g->app);
    Py_XDECREF(g->base_environ);
    Py_XDECREF(g->file_wrapper);
    Py_XDECREF(g->input_type);
    Py_XDECREF(g->start_type);
    Py_XDECREF(g->write_type);
    Py_XDECREF(g->server_name);
    Py_XDECREF(g->server_port);
    for (int i = 0; i < WK_COUNT; i++)
        Py_XDECREF(g->keys[i]);
    for (int i = 0; i < WV_COUNT; i++)
        Py_XDECREF(g->values[i]);
    for (int i = 0; i < WSGI_KNOWN_HEADERS; i++)
        Py_XDECREF(g->header_keys[i]);
    PyMem_RawFree(g->root_path);
    PyMem_RawFree(g->scheme_header);
    PyMem_RawFree(g);
}

int px_py_wsgi_traverse(px_py_wsgi_t *g, visitproc visit, void *arg)
{
    Py_VISIT(g->app);
    Py_VISIT(g->base_environ);
    Py_VISIT(g->file_wrapper);
    return 0;
}

int px_py_wsgi_set_port(px_py_wsgi_t *g, int port)
{
    PyObject *s = PyUnicode_FromFormat("%d", port);
    if (s == NULL)
        return -1;
    Py_SETREF(g->server_port, s);
    return 0;
}

/* The peer of the last connections this thread served, by connection id
 * (never reused within an engine; the generation changes with every WSGI
 * server made, hence with every engine), so that a keep-alive connection
 * asks the kernel once. */
#define PEER_CACHE 64
static _Thread_local struct {
    uint64_t id, generation;
    px_py_peer_t peer; /* with its strings, owned here (left behind when the
                          thread ends: a few small strings per thread) */
} peer_cache[PEER_CACHE];

static PyObject *decimal(int v);

void px_py_wsgi_peer(px_conn_t *c, px_py_peer_t *out)
{
    uint64_t id = px_conn_id(c), gen = atomic_load_explicit(&peer_generation, memory_order_relaxed);
    unsigned slot = (unsigned)(id % PEER_CACHE);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const void *addr = NULL;

    if (peer_cache[slot].id == id && peer_cache[slot].generation == gen) {
        *out = peer_cache[slot].peer;
        return;
    }
    out->host[0] = '\0';
    out->port = 0;
    out->addr_str = out->port_str = NULL;
    if (px_conn_peer_addr(c, &ss, &len) < 0) /* the PROXY header's client, if any */
        return;
    if (ss.ss_family == AF_INET) {
        addr = &((struct sockaddr_in *)&ss)->sin_addr;
        out->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        out->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (addr == NULL || inet_ntop(ss.ss_family, addr, out->host, sizeof(out->host)) == NULL)
        out->host[0] = '\0';
    out->addr_str = PyUnicode_DecodeLatin1(out->host, (Py_ssize_t)strlen(out->host), NULL);
    out->port_str = decimal(out->port);
    if (out->addr_str == NULL || out->port_str == NULL) {
        PyErr_Clear(); /* made per request instead */
        Py_CLEAR(out->addr_str);
        Py_CLEAR(out->port_str);
    }
    Py_XDECREF(peer_cache[slot].peer.addr_str);
    Py_XDECREF(peer_cache[slot].peer.port_str);
    peer_cache[slot].id = id;
    peer_cache[slot].generation = gen;
    peer_cache[slot].peer = *out;
}

/* Set d[key] to the latin-1 string of v; 0 or -1. */
static int set_view(PyObject *d, PyObject *key, const char *p, size_t len)
{
    PyObject *s = PyUnicode_DecodeLatin1(p, (Py_ssize_t)len, NULL);
    int rc = s ? PyDict_SetItem(d, key, s) : -1;
    Py_XDECREF(s);
    return rc;
}

/* The decimal string of v >= 0; new reference or NULL with an exception. */
static PyObject *decimal(int v)
{
    char digits[16];
    size_t i = sizeof(digits);
    unsigned u = v > 0 ? (unsigned)v : 0;

    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return PyUnicode_DecodeLatin1(digits + i, (Py_ssize_t)(sizeof(digits) - i), NULL);
}

static bool view_is(px_view_t v, const char *lit, size_t n)
{
    return v.len == n && strncasecmp(v.base, lit, n) == 0;
}

/* The first element of a comma-separated list, without its whitespace. */
static px_view_t first_element(px_view_t v)
{
    const char *comma = memchr(v.base, ',', v.len);
    size_t n = comma != NULL ? (size_t)(comma - v.base) : v.len;

    while (n > 0 && (v.base[n - 1] == ' ' || v.base[n - 1] == '\t'))
        n--;
    while (n > 0 && (v.base[0] == ' ' || v.base[0] == '\t')) {
        v.base++;
        n--;
    }
    return (px_view_t){v.base, n};
}

/* The index of a known header, or -1. */
static int known_header(px_view_t name)
{
    for (int i = 0; i < WSGI_KNOWN_HEADERS; i++)
        if (KNOWN_HEADERS[i].len == name.len &&
            strncasecmp(KNOWN_HEADERS[i].name, name.base, name.len) == 0)
            return i;
    return -1;
}

/* A header as CGI names it: HTTP_ + upper case, '-' as '_'; repeated headers
 * joined by ", " (Cookie by "; "). Names with '_' are dropped, as nginx and
 * gunicorn do, so that X_Forwarded_For cannot pass for X-Forwarded-For. */
static int set_header(px_py_wsgi_t *g, PyObject *env, const px_http_header_t *h, uint64_t *seen)
{
    char small[128], *key;
    size_t n = h->name.len + 5;
    int known = known_header(h->name);
    PyObject *k, *old = NULL;
    int rc;

    if (known >= 0) {
        k = Py_NewRef(g->header_keys[known]);
        /* only a repeated header needs the lookup of the value before */
        if (!(*seen & ((uint64_t)1 << known))) {
            *seen |= (uint64_t)1 << known;
            goto fresh;
        }
    } else {
        if (memchr(h->name.base, '_', h->name.len) != NULL)
            return 0;
        key = n <= sizeof(small) ? small : PyMem_Malloc(n);
        if (key == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        cgi_name(h->name.base, h->name.len, key);
        k = PyUnicode_FromStringAndSize(key, (Py_ssize_t)n); /* a token: ASCII */
        if (key != small)
            PyMem_Free(key);
        if (k == NULL)
            return -1;
    }
    old = PyDict_GetItemWithError(env, k); /* borrowed */
fresh:
    if (old != NULL) {
        PyObject *v = PyUnicode_DecodeLatin1(h->value.base, (Py_ssize_t)h->value.len, NULL);
        /* Cookie pairs are separated by "; " (RFC 6265 5.4), other lists by ", " */
        const char *sep = view_is(h->name, "cookie", 6) ? "; " : ", ";
        PyObject *both = v ? PyUnicode_FromFormat("%U%s%U", old, sep, v) : NULL;
        rc = both ? PyDict_SetItem(env, k, both) : -1;
        Py_XDECREF(v);
        Py_XDECREF(both);
    } else {
        rc = PyErr_Occurred() ? -1 : set_view(env, k, h->value.base, h->value.len);
    }
    Py_DECREF(k);
    return rc;
}

/* SERVER_NAME and SERVER_PORT from the Host (or the absolute target's
 * authority), else the listening address. */
int px_py_wsgi_set_server(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req, bool https)
{
    px_view_t host = req->host;
    const char *colon = NULL;

    if (host.base == NULL || host.len == 0) {
        if (PyDict_SetItem(env, g->keys[WK_SERVER_NAME], g->server_name) < 0)
            return -1;
        return PyDict_SetItem(env, g->keys[WK_SERVER_PORT], g->server_port);
    }
    for (size_t i = host.len; i-- > 0;) {
        if (host.base[i] == ':') {
            colon = host.base + i;
            break;
        }
        if (host.base[i] == ']')
            break; /* an IPv6 literal without a port */
    }
    if (colon == NULL) {
        if (set_view(env, g->keys[WK_SERVER_NAME], host.base, host.len) < 0)
            return -1;
        return PyDict_SetItem(env, g->keys[WK_SERVER_PORT],
                              g->values[https ? WV_PORT443 : WV_PORT80]);
    }
    if (set_view(env, g->keys[WK_SERVER_NAME], host.base, (size_t)(colon - host.base)) < 0)
        return -1;
    return set_view(env, g->keys[WK_SERVER_PORT], colon + 1,
                    host.len - (size_t)(colon + 1 - host.base));
}

/* PATH_INFO: the percent-decoded path (bytes as latin-1, PEP 3333), less the
 * mount point when it starts with it at a segment boundary (a proxy that
 * passes the prefix); a path without it (a proxy that strips it) is whole.
 * New reference, or NULL with an exception. */
static PyObject *path_info(px_py_wsgi_t *g, const px_http_request_t *req)
{
    char small[512], *buf = small;
    const char *p = req->path.base;
    size_t len = req->path.len, cap = len ? len : 1;
    PyObject *s;

    if (memchr(p, '%', len) != NULL) { /* most paths have nothing to decode */
        int n;
        buf = cap <= sizeof(small) ? small : PyMem_Malloc(cap);
        if (buf == NULL)
            return PyErr_NoMemory();
        n = px_http_unquote(p, len, buf, cap);
        if (n < 0) {
            memcpy(buf, p, len); /* over INT_MAX cannot happen under the head limit */
            n = (int)len;
        }
        p = buf;
        len = (size_t)n;
    }
    if (g->root_len && len >= g->root_len && memcmp(p, g->root_path, g->root_len) == 0 &&
        (len == g->root_len || p[g->root_len] == '/')) {
        p += g->root_len;
        len -= g->root_len;
    }
    s = PyUnicode_DecodeLatin1(p, (Py_ssize_t)len, NULL);
    if (buf != small)
        PyMem_Free(buf);
    return s;
}

static PyObject *method_value(px_py_wsgi_t *g, px_view_t m)
{
    if (m.len == 3 && memcmp(m.base, "GET", 3) == 0)
        return Py_NewRef(g->values[WV_GET]);
    if (m.len == 4 && memcmp(m.base, "POST", 4) == 0)
        return Py_NewRef(g->values[WV_POST]);
    if (m.len == 4 && memcmp(m.base, "HEAD", 4) == 0)
        return Py_NewRef(g->values[WV_HEAD]);
    return PyUnicode_DecodeLatin1(m.base, (Py_ssize_t)m.len, NULL);
}

static int set_owned(PyObject *env, PyObject *key, PyObject *value)
{
    int rc = value ? PyDict_SetItem(env, key, value) : -1;
    Py_XDECREF(value);
    return rc;
}

int px_py_wsgi_set_target(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req)
{
    PyObject *path = path_info(g, req);
    bool same;
    int rc;

    if (path == NULL)
        return -1;
    /* the target is often the path itself: one string for both */
    same = req->target.len == (size_t)PyUnicode_GET_LENGTH(path) && req->query.len == 0 &&
           req->target.base == req->path.base &&
           memcmp(req->target.base, PyUnicode_1BYTE_DATA(path), req->target.len) == 0;
    rc = PyDict_SetItem(env, g->keys[WK_PATH_INFO], path);
    if (rc == 0)
        rc = same ? PyDict_SetItem(env, g->keys[WK_REQUEST_URI], path)
                  : set_view(env, g->keys[WK_REQUEST_URI], req->target.base, req->target.len);
    Py_DECREF(path);
    if (rc == 0)
        rc = req->query.len == 0
                 ? PyDict_SetItem(env, g->keys[WK_QUERY_STRING], g->values[WV_EMPTY])
                 : set_view(env, g->keys[WK_QUERY_STRING], req->query.base, req->query.len);
    return rc;
}

int px_py_wsgi_set_method(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req)
{
    return set_owned(env, g->keys[WK_REQUEST_METHOD], method_value(g, req->method));
}

int px_py_wsgi_set_protocol(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req)
{
    return PyDict_SetItem(env, g->keys[WK_SERVER_PROTOCOL],
                          g->values[req->minor_version == 0 ? WV_HTTP10 : WV_HTTP11]);
}

int px_py_wsgi_set_peer(px_py_wsgi_t *g, PyObject *env, const px_py_peer_t *peer, bool addr,
                        bool port)
{
    if (addr && (peer->addr_str
                     ? PyDict_SetItem(env, g->keys[WK_REMOTE_ADDR], peer->addr_str)
                     : set_view(env, g->keys[WK_REMOTE_ADDR], peer->host, strlen(peer->host))) < 0)
        return -1;
    if (!port)
        return 0;
    return peer->port_str ? PyDict_SetItem(env, g->keys[WK_REMOTE_PORT], peer->port_str)
                          : set_owned(env, g->keys[WK_REMOTE_PORT], decimal(peer->port));
}

int px_py_wsgi_set_length(px_py_wsgi_t *g, PyObject *env, size_t len)
{
    return set_owned(env, g->keys[WK_CONTENT_LENGTH], PyUnicode_FromFormat("%zu", len));
}

int px_py_wsgi_environ_fill(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req,
                            const px_py_peer_t *peer, PyObject *input, px_py_wsgi_fill_t *out)
{
    bool scheme_seen = false;
    uint64_t seen = 0;

    out->https = out->has_length = false;
    for (size_t i = 0; i < req->num_headers; i++) {
        const px_http_header_t *h = &req->headers[i];
        int rc;
        if (view_is(h->name, "content-type", 12)) {
            rc = set_view(env, g->keys[WK_CONTENT_TYPE], h->value.base, h->value.len);
        } else if (view_is(h->name, "content-length", 14)) {
            out->has_length = true;
            rc = set_view(env, g->keys[WK_CONTENT_LENGTH], h->value.base, h->value.len);
        } else {
            if (g->scheme_header && !scheme_seen &&
                view_is(h->name, g->scheme_header, g->scheme_header_len)) {
                out->https = view_is(first_element(h->value), "https", 5);
                scheme_seen = true; /* the first element of the list: the client's side */
            }
            rc = set_header(g, env, h, &seen);
        }
        if (rc < 0)
            return -1;
    }
    if (px_py_wsgi_set_target(g, env, req) < 0 || px_py_wsgi_set_method(g, env, req) < 0 ||
        px_py_wsgi_set_protocol(g, env, req) < 0 ||
        PyDict_SetItem(env, g->keys[WK_URL_SCHEME], g->values[out->https ? WV_HTTPS : WV_HTTP]) <
            0 ||
        px_py_wsgi_set_server(g, env, req, out->https) < 0 ||
        px_py_wsgi_set_peer(g, env, peer, true, true) < 0 ||
        PyDict_SetItem(env, g->keys[WK_INPUT], input) < 0)
        return -1;
    return 0;
}
