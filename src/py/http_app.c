/*
 * An HttpServer on the engine: its routes handed to the engine's route table
 * at listen time, and the call of the handler a request's route names. The
 * engine matches every request (404 and 405 included); this file holds only
 * the handler objects, indexed by route id, and the names of their parameters.
 */
#include "http.h"
#include "wsgi.h"

#include "px/http_path.h"

static void log_traceback(void)
{
    /* A handler that raised: its traceback goes to stderr, the client gets 500. */
    px_py_display_exception(PyErr_GetRaisedException());
}

/* A route parameter as str: percent-decoded in C, then UTF-8 with
 * replacement characters (what urllib.parse.unquote gives). */
static PyObject *param_value(px_module_state_t *st, px_view_t v)
{
    char small[256], *buf = v.len <= sizeof(small) ? small : PyMem_Malloc(v.len);
    PyObject *s;
    int n;

    if (buf == NULL)
        return PyErr_NoMemory();
    n = px_http_unquote(v.base, v.len, buf, v.len);
    s = n < 0 ? px_py_raise_errno(st, n, "route parameter")
              : PyUnicode_DecodeUTF8(buf, n, "replace");
    if (buf != small)
        PyMem_Free(buf);
    return s;
}

/* Whether the handler of route takes the query parameter name. */
static int takes_query_param(px_py_http_app_t *a, int route, PyObject *name)
{
    PyObject *names = a->query_names[route];
    int r = PySet_Contains(a->query_reserved[route], name);

    if (r != 0)
        return r < 0 ? -1 : 0;
    return names == Py_None ? 1 : PySet_Contains(names, name);
}

/* The keyword arguments of a routed call: the route's parameters, then the
 * query's that its handler takes (first value of each name; a parameter of the
 * path wins). NULL with no exception when there are none; NULL with an
 * exception on error. */
static PyObject *route_kwargs(px_module_state_t *st, px_py_http_app_t *a,
                              const px_http_exchange_t *x, PyObject *req)
{
    const px_http_match_t *m = &x->match;
    PyObject *names = a->param_names[m->route], *kw, *query, *pairs;
    PyObject *qnames = a->query_names[m->route];
    bool want_query = x->req->query.len != 0 && (qnames == Py_None || PySet_GET_SIZE(qnames) > 0);

    if (m->nparams == 0 && !want_query)
        return NULL;
    kw = PyDict_New();
    if (kw == NULL)
        return NULL;
    for (unsigned i = 0; i < m->nparams; i++) {
        PyObject *value = param_value(st, m->params[i]);
        if (value == NULL || PyDict_SetItem(kw, PyTuple_GET_ITEM(names, i), value) < 0) {
            Py_XDECREF(value);
            goto fail;
        }
        Py_DECREF(value);
    }
    if (!want_query)
        return kw;
    query = PyObject_GetAttrString(req, "query");
    if (query == NULL)
        goto fail;
    pairs = PyObject_CallFunction(st->parse_qsl, "OO", query, Py_True);
    Py_DECREF(query);
    if (pairs == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *kv = PyList_GET_ITEM(pairs, i); /* borrowed */
        int takes = takes_query_param(a, m->route, PyTuple_GET_ITEM(kv, 0));
        if (takes < 0 || (takes && PyDict_SetDefault(kw, PyTuple_GET_ITEM(kv, 0),
                                                     PyTuple_GET_ITEM(kv, 1)) == NULL)) {
            Py_DECREF(pairs);
            goto fail;
        }
    }
    Py_DECREF(pairs);
    return kw;
fail:
    Py_DECREF(kw);
    return NULL;
}

/* The context of c, made on first use and kept in the connection until it
 * closes (release_context). */
PyObject *px_py_http_conn_context(px_py_http_app_t *a, px_conn_t *c)
{
    PyObject *ctx = px_conn_app_data(c);

    if (ctx != NULL)
        return Py_NewRef(ctx);
    if (a->conn_factory == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this server keeps no connection context");
        return NULL;
    }
    ctx = PyObject_CallFunction(a->conn_factory, "i", px_conn_fd(c));
    if (ctx != NULL && px_conn_app_data(c) != NULL) {
        /* another reader of request.transport made one meanwhile: keep it */
        Py_DECREF(ctx);
        return Py_NewRef((PyObject *)px_conn_app_data(c));
    }
    if (ctx != NULL)
        px_conn_set_app_data(c, Py_NewRef(ctx));
    return ctx;
}

/* c closed: its context (and per-connection app) goes. */
static void release_context(px_conn_t *c, void *ctx, void *udata)
{
    (void)udata;
    px_py_attach(px_conn_worker(c));
    Py_DECREF((PyObject *)ctx);
}

/* Call handler(request, **kw), or handler(self, request, **kw) when self. */
static PyObject *call_handler(PyObject *handler, PyObject *self, PyObject *req, PyObject *kw)
{
    PyObject *argv[2] = {self, req};
    PyObject *const *args = self ? argv : argv + 1;
    size_t nargs = self ? 2 : 1;
    PyObject *tuple, *result;

    if (kw == NULL)
        return PyObject_Vectorcall(handler, args, nargs, NULL);
    tuple = self ? PyTuple_Pack(2, self, req) : PyTuple_Pack(1, req);
    result = tuple ? PyObject_Call(handler, tuple, kw) : NULL;
    Py_XDECREF(tuple);
    return result;
}

/* The handler runs with the worker released (a spare serves the other
 * connections if it blocks); its result is converted and queued owned. The
 * request was copied out of the receive buffer before. */
static void app_call(px_http_exchange_t *x, void *udata)
{
    px_py_http_app_t *a = udata;
    px_worker_t *w = px_conn_worker(x->conn);
    int route = x->match.route;
    PyObject *req, *result = NULL, *kw = NULL, *self = NULL;
    px_module_state_t *st;

    if (route < 0 && a->wsgi != NULL) {
        px_py_wsgi_call(a->wsgi, x);
        return;
    }
    px_py_attach(w);
    st = px_py_engine_state(a->engine);
    req = px_py_request_new(st, x);
    if (req != NULL && route >= 0)
        kw = route_kwargs(st, a, x, req);
    if (req != NULL && !PyErr_Occurred()) {
        PyObject *app = a->app;
        bool released;

        px_py_request_set_conn(req, x->conn, a);
        px_py_request_set_exchange(req, x);
        px_py_http_stream_enter(x, req);
        /* An async def handler's first step runs until its first await,
         * which by asyncio's rules does not block: no eager hand-off. */
        released = route >= 0 && a->is_async[route] ? px_worker_release_brief(w) : px_py_release(w);
        if (a->per_connection) {
            /* this connection's own instance, its handlers its class's
             * functions; made released, as its __init__ may block too */
            PyObject *ctx = px_py_http_conn_context(a, x->conn);
            self = ctx ? PyObject_GetAttrString(ctx, "app") : NULL;
            Py_XDECREF(ctx);
            app = self;
        }
        if (app == NULL)
            result = NULL;
        else if (route >= 0)
            result = call_handler(a->handlers[route], self, req, kw);
        else
            result = PyObject_CallOneArg(app, req);
        if (result != NULL && px_py_aio_awaitable(result)) /* async def: run on the loop */
            result = px_py_aio_drive_http(st, result, req);
        if (result == NULL && app != NULL && st->http_error &&
            PyErr_ExceptionMatches(st->http_error)) {
            PyObject *exc = PyErr_GetRaisedException();
            result = PyObject_CallMethod(app, "_http_error", "OO", req, exc);
            Py_DECREF(exc);
        }
        px_py_reacquire(w, released);
        px_py_http_stream_leave();
        px_py_request_set_conn(req, NULL, NULL);
        px_py_request_set_exchange(req, NULL);
    }
    Py_XDECREF(self);
    Py_XDECREF(kw);
    Py_XDECREF(req);
    if (px_conn_closing(x->conn)) {
        /* Closed while the handler blocked (shutdown, deadline): nobody to answer. */
        if (result == NULL) {
            PX_STAT_ADD(px_worker_stats(w), errors, 1);
            log_traceback();
        }
        x->responded = true;
    } else if (result == NULL || px_py_http_send_result(a, x, result) < 0) {
        PX_STAT_ADD(px_worker_stats(w), errors, 1);
        if (PyErr_Occurred())
            log_traceback();
        /* the engine answers 500, unless a stream already started the answer
         * (its object, released unfinished, aborts it) */
        x->responded = x->stream != NULL || x->ws != NULL;
        x->keep_alive = false;
    }
    Py_XDECREF(result);
}

static PyObject *route_error(int rc, PyObject *pattern)
{
    const char *why = rc == -EEXIST  ? "routed twice"
                      : rc == -E2BIG ? "has too many parameters or methods"
                                     : "is not a route pattern (see pyparallel.http.route)";
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    return PyErr_Format(PyExc_ValueError, "route %R %s", pattern, why);
}

/* The names of route id's parameters, as a tuple of interned str. */
static PyObject *param_names(px_py_http_app_t *a, int id)
{
    px_view_t names[PX_HTTP_ROUTE_MAX_PARAMS];
    unsigned n = px_http_router_param_names(px_http_server_router(a->srv), id, names,
                                            PX_HTTP_ROUTE_MAX_PARAMS);
    PyObject *t = PyTuple_New((Py_ssize_t)n);

    for (unsigned i = 0; t && i < n; i++) {
        PyObject *s = PyUnicode_FromStringAndSize(names[i].base, (Py_ssize_t)names[i].len);
        if (s == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyUnicode_InternInPlace(&s);
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

#define ROUTES_SHAPE \
    "routes: [(pattern, handler, methods[, (query names or None, reserved names)]), ...]"

/* Which query parameters route id's handler takes: spec is (frozenset of
 * names or None for any, frozenset of names never passed), computed when the
 * route was made (HttpServer._routes); without one, none. */
static int query_params(px_py_http_app_t *a, int id, PyObject *spec)
{
    PyObject *names, *reserved;

    if (spec == NULL) {
        a->query_names[id] = PyFrozenSet_New(NULL);
        a->query_reserved[id] = PyFrozenSet_New(NULL);
        return a->query_names[id] && a->query_reserved[id] ? 0 : -1;
    }
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 2 ||
        ((names = PyTuple_GET_ITEM(spec, 0)) != Py_None && !PyFrozenSet_Check(names)) ||
        !PyFrozenSet_Check(reserved = PyTuple_GET_ITEM(spec, 1))) {
        PyErr_SetString(PyExc_TypeError, ROUTES_SHAPE);
        return -1;
    }
    a->query_names[id] = Py_NewRef(names);
    a->query_reserved[id] = Py_NewRef(reserved);
    return 0;
}

/* 1 when fn is an async def function (inspect's answer), 0 when not, -1
 * with an exception. */
static int coroutine_function(PyObject *fn)
{
    PyObject *inspect = PyImport_ImportModule("inspect"), *r;
    int yes;

    r = inspect ? PyObject_CallMethod(inspect, "iscoroutinefunction", "O", fn) : NULL;
    Py_XDECREF(inspect);
    yes = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    return yes;
}

/* routes: [(pattern, handler, (method, ...)[, query]), ...]; route ids follow the list. */
static int add_routes(px_py_http_app_t *a, PyObject *routes)
{
    PyObject *seq = PySequence_Fast(routes, ROUTES_SHAPE);
    Py_ssize_t n;
    int rc = -1;

    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    a->handlers = PyMem_RawCalloc((size_t)n + 1, sizeof(*a->handlers));
    a->param_names = PyMem_RawCalloc((size_t)n + 1, sizeof(*a->param_names));
    a->query_names = PyMem_RawCalloc((size_t)n + 1, sizeof(*a->query_names));
    a->query_reserved = PyMem_RawCalloc((size_t)n + 1, sizeof(*a->query_reserved));
    a->is_async = PyMem_RawCalloc((size_t)n + 1, sizeof(*a->is_async));
    if (a->handlers == NULL || a->param_names == NULL || a->query_names == NULL ||
        a->query_reserved == NULL || a->is_async == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *methods, *mseq;
        const char *names[PX_HTTP_ROUTE_MAX_METHODS + 1];
        const char *pattern;
        Py_ssize_t plen, nm;
        int id, is_async;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 3 || PyTuple_GET_SIZE(item) > 4 ||
            (pattern = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(item, 0), &plen)) == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, ROUTES_SHAPE);
            goto out;
        }
        methods = PyTuple_GET_ITEM(item, 2);
        mseq = PySequence_Fast(methods, "a route's methods: a tuple of str");
        if (mseq == NULL)
            goto out;
        nm = PySequence_Fast_GET_SIZE(mseq);
        for (Py_ssize_t j = 0; j < nm && j <= PX_HTTP_ROUTE_MAX_METHODS; j++)
            if ((names[j] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(mseq, j))) == NULL) {
                Py_DECREF(mseq);
                goto out;
            }
        /* over the maximum: px_http_route refuses it (E2BIG) from the count */
        id = px_http_route(a->srv, pattern, (size_t)plen, names, (size_t)nm);
        Py_DECREF(mseq);
        if (id < 0) {
            route_error(id, PyTuple_GET_ITEM(item, 0));
            goto out;
        }
        a->handlers[id] = Py_NewRef(PyTuple_GET_ITEM(item, 1));
        a->nroutes = (size_t)id + 1;
        if ((is_async = coroutine_function(a->handlers[id])) < 0)
            goto out;
        a->is_async[id] = is_async;
        if ((a->param_names[id] = param_names(a, id)) == NULL ||
            query_params(a, id, PyTuple_GET_SIZE(item) == 4 ? PyTuple_GET_ITEM(item, 3) : NULL) < 0)
            goto out;
    }
    rc = 0;
out:
    Py_DECREF(seq);
    return rc;
}

/* static: {path: (content_type, body bytes)} answered in C. */
static int add_static_routes(px_py_http_app_t *a, PyObject *routes)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;

    if (!PyDict_Check(routes)) {
        PyErr_SetString(PyExc_TypeError, "static routes: {path: (content_type, bytes)}");
        return -1;
    }
    while (PyDict_Next(routes, &pos, &key, &value)) {
        const char *path = PyUnicode_AsUTF8(key), *ctype;
        char *body;
        Py_ssize_t len;
        int rc;

        if (path == NULL || !PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2 ||
            (ctype = PyUnicode_AsUTF8(PyTuple_GET_ITEM(value, 0))) == NULL ||
            PyBytes_AsStringAndSize(PyTuple_GET_ITEM(value, 1), &body, &len) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "static routes: {path: (content_type, bytes)}");
            return -1;
        }
        rc = px_http_route_static(a->srv, path, ctype, body, (size_t)len);
        if (rc == -EINVAL) {
            PyErr_Format(PyExc_ValueError,
                         "static route %R: a content type without control bytes (CR, LF, "
                         "NUL...) and an absolute path, please",
                         key);
            return -1;
        }
        if (rc < 0) {
            px_py_raise_errno(px_py_engine_state(a->engine), rc, "static route");
            return -1;
        }
    }
    return 0;
}

/* What Request methods and routed calls use, imported by the first server (main
 * thread) rather than with the module, which serves no HTTP on its own. */
static int request_helpers_init(px_module_state_t *st, PyObject *error_type)
{
    if (st->json_loads == NULL) {
        PyObject *json = PyImport_ImportModule("json");
        PyObject *parse = json ? PyImport_ImportModule("urllib.parse") : NULL;
        if (parse != NULL) {
            st->json_loads = PyObject_GetAttrString(json, "loads");
            st->parse_qsl = PyObject_GetAttrString(parse, "parse_qsl");
        }
        Py_XDECREF(json);
        Py_XDECREF(parse);
        if (st->json_loads == NULL || st->parse_qsl == NULL) {
            Py_CLEAR(st->json_loads);
            Py_CLEAR(st->parse_qsl);
            return -1;
        }
    }
    if (st->header_range == NULL) {
        /* the makers of request.range and request.response, looked up once */
        PyObject *orig = PyImport_ImportModule("pyparallel.http._original");
        if (orig != NULL) {
            st->header_range = PyObject_GetAttrString(orig, "header_range");
            st->new_response = PyObject_GetAttrString(orig, "new_response");
            Py_DECREF(orig);
        }
        if (st->header_range == NULL || st->new_response == NULL) {
            Py_CLEAR(st->header_range);
            Py_CLEAR(st->new_response);
            return -1;
        }
    }
    /* HttpError: a status for the client, not a 500 (Request.json() raises it) */
    if (st->http_error == NULL && error_type && error_type != Py_None)
        st->http_error = Py_NewRef(error_type);
    return 0;
}

/* A copy the server's config can borrow for as long as the app lives. */
static char *raw_strdup(const char *s)
{
    char *copy = PyMem_RawMalloc(strlen(s) + 1);

    if (copy != NULL)
        strcpy(copy, s);
    return copy;
}

/* Engine.listen_http(host, port, app, static, limits..., routes=, fd=): every
 * default not given is the engine's (px_http_config_default). */
PyObject *px_py_listen_http(px_engine_t *e, PyObject *engine, PyObject *args, PyObject *kwds,
                            void **owned)
{
    static char *kwlist[] = {"host",
                             "port",
                             "app",
                             "static",
                             "keepalive_timeout",
                             "head_timeout",
                             "body_timeout",
                             "max_body",
                             "max_headers",
                             "max_request_line",
                             "max_header_bytes",
                             "server_name",
                             "response_type",
                             "json_default",
                             "routes",
                             "fd",
                             "error_type",
                             "fallback_takes_body",
                             "conn_factory",
                             "per_connection",
                             "stream_bodies",
                             "body_buffer",
                             "wsgi",
                             "health_path",
                             "proxy_protocol",
                             "proxy_timeout",
                             NULL};
    px_module_state_t *st = px_py_engine_state(engine);
    px_http_config_t cfg;
    const char *host, *server_name, *health_path = NULL;
    int port, rc, listen_fd = -1;
    PyObject *app, *statics = Py_None, *response_type = NULL, *json_default = NULL;
    PyObject *routes = NULL, *error_type = NULL, *conn_factory = NULL, *wsgi = NULL;
    int fallback_takes_body = 1, per_connection = 0, stream_bodies = 0, proxy_protocol = 0;
    Py_ssize_t body_buffer = 0;
    double ka, head_t, body_t, proxy_t = 0;
    unsigned long long max_body;
    Py_ssize_t max_headers, max_line, max_head;
    px_py_http_app_t *a;

    px_http_config_default(&cfg);
    server_name = cfg.server_name;
    ka = cfg.keepalive_timeout_ms / 1000.0;
    head_t = cfg.head_timeout_ms / 1000.0;
    body_t = cfg.body_timeout_ms / 1000.0;
    max_body = cfg.limits.max_body;
    max_headers = (Py_ssize_t)cfg.limits.max_headers;
    max_line = (Py_ssize_t)cfg.limits.max_request_line;
    max_head = (Py_ssize_t)cfg.limits.max_header_bytes;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "siO|OdddKnnns$OOOiOpOppnOzpd:listen_http", kwlist, &host, &port, &app,
            &statics, &ka, &head_t, &body_t, &max_body, &max_headers, &max_line, &max_head,
            &server_name, &response_type, &json_default, &routes, &listen_fd, &error_type,
            &fallback_takes_body, &conn_factory, &per_connection, &stream_bodies, &body_buffer,
            &wsgi, &health_path, &proxy_protocol, &proxy_t))
        return NULL;
    if (response_type && response_type != Py_None && !PyType_Check(response_type)) {
        PyErr_SetString(PyExc_TypeError, "response_type must be a class");
        return NULL;
    }
    if (request_helpers_init(st, error_type) < 0)
        return NULL;
    cfg.keepalive_timeout_ms = (unsigned)(ka * 1000);
    cfg.head_timeout_ms = (unsigned)(head_t * 1000);
    cfg.body_timeout_ms = (unsigned)(body_t * 1000);
    cfg.limits.max_body = max_body;
    cfg.limits.max_headers = (size_t)max_headers;
    cfg.limits.max_request_line = (size_t)max_line;
    cfg.limits.max_header_bytes = (size_t)max_head;
    cfg.fallback_takes_body = fallback_takes_body != 0;
    /* the app reads bodies as they arrive (px_http_body_read): Request.body is empty */
    cfg.stream_bodies = stream_bodies != 0;
    cfg.body_buffer = body_buffer > 0 ? (size_t)body_buffer : 0;
    cfg.proxy_protocol = proxy_protocol != 0;
    if (!(proxy_t >= 0 && proxy_t <= 86400)) {
        PyErr_SetString(PyExc_ValueError, "proxy_timeout must be between 0 and 86400 seconds");
        return NULL;
    }
    /* 0: the default; anything shorter than 1 ms is 1 ms, not the default */
    cfg.proxy_timeout_ms = proxy_t > 0 && proxy_t < 0.001 ? 1 : (unsigned)(proxy_t * 1000);
    a = PyMem_RawCalloc(1, sizeof(*a));
    if (a == NULL)
        return PyErr_NoMemory();
    a->app = Py_NewRef(app);
    a->engine = engine;
    if (wsgi && wsgi != Py_None && (a->wsgi = px_py_wsgi_new(wsgi)) == NULL)
        goto fail;
    if (response_type && response_type != Py_None)
        a->response_type = Py_NewRef(response_type);
    if (json_default && json_default != Py_None)
        a->json_default = Py_NewRef(json_default);
    if (conn_factory && conn_factory != Py_None)
        a->conn_factory = Py_NewRef(conn_factory);
    a->per_connection = per_connection != 0;
    if (a->per_connection && a->conn_factory == NULL) {
        PyErr_SetString(PyExc_ValueError, "per_connection needs a conn_factory");
        goto fail;
    }
    if (health_path != NULL && health_path[0] != '/') {
        PyErr_SetString(PyExc_ValueError, "health_path must start with '/'");
        goto fail;
    }
    a->server_name = raw_strdup(server_name);
    a->health_path = health_path ? raw_strdup(health_path) : NULL;
    if (a->server_name == NULL || (health_path && a->health_path == NULL)) {
        PyErr_NoMemory();
        goto fail;
    }
    cfg.server_name = a->server_name;
    cfg.health_path = a->health_path;
    rc = px_http_server_new(&cfg, app_call, a, &a->srv);
    if (rc == -EINVAL) {
        PyErr_SetString(PyExc_ValueError,
                        "server_name: control bytes (CR, LF, NUL...) may not be in a header");
        goto fail;
    }
    if (rc < 0) {
        px_py_raise_errno(st, rc, "listen_http");
        goto fail;
    }
    if (a->conn_factory != NULL)
        px_http_server_on_release(a->srv, release_context);
    if ((routes && routes != Py_None && add_routes(a, routes) < 0) ||
        (statics != Py_None && add_static_routes(a, statics) < 0))
        goto fail;
    Py_BEGIN_ALLOW_THREADS rc = px_http_listen(e, a->srv, host, port, listen_fd);
    Py_END_ALLOW_THREADS if (rc < 0)
    {
        px_py_raise_errno(st, rc, "listen_http");
        goto fail;
    }
    if (a->wsgi && px_py_wsgi_set_port(a->wsgi, rc) < 0)
        goto fail;
    *owned = a;
    return PyLong_FromLong(rc);
fail:
    px_py_http_app_free(a);
    return NULL;
}

void px_py_http_app_free(void *p)
{
    px_py_http_app_t *a = p;

    px_http_server_free(a->srv);
    px_py_wsgi_free(a->wsgi);
    Py_XDECREF(a->app);
    Py_XDECREF(a->response_type);
    Py_XDECREF(a->json_default);
    Py_XDECREF(a->conn_factory);
    for (size_t i = 0; i < a->nroutes; i++) {
        Py_XDECREF(a->handlers[i]);
        Py_XDECREF(a->param_names[i]);
        Py_XDECREF(a->query_names[i]);
        Py_XDECREF(a->query_reserved[i]);
    }
    PyMem_RawFree(a->handlers);
    PyMem_RawFree(a->param_names);
    PyMem_RawFree(a->query_names);
    PyMem_RawFree(a->query_reserved);
    PyMem_RawFree(a->is_async);
    PyMem_RawFree(a->server_name);
    PyMem_RawFree(a->health_path);
    PyMem_RawFree(a);
}

int px_py_http_app_traverse(void *p, visitproc visit, void *arg)
{
    px_py_http_app_t *a = p;

    Py_VISIT(a->app);
    if (a->wsgi && px_py_wsgi_traverse(a->wsgi, visit, arg) < 0)
        return -1;
    Py_VISIT(a->response_type);
    Py_VISIT(a->json_default);
    Py_VISIT(a->conn_factory);
    for (size_t i = 0; i < a->nroutes; i++) {
        Py_VISIT(a->handlers[i]);
        Py_VISIT(a->param_names[i]);
        Py_VISIT(a->query_names[i]);
        Py_VISIT(a->query_reserved[i]);
    }
    return 0;
}

void px_py_http_app_clear(void *p)
{
    px_py_http_app_t *a = p;

    Py_CLEAR(a->app);
    Py_CLEAR(a->response_type);
    Py_CLEAR(a->json_default);
    Py_CLEAR(a->conn_factory);
    for (size_t i = 0; i < a->nroutes; i++) {
        Py_CLEAR(a->handlers[i]);
        Py_CLEAR(a->param_names[i]);
        Py_CLEAR(a->query_names[i]);
        Py_CLEAR(a->query_reserved[i]);
    }
}
