/*
 * HTTP in the binding, private to src/py/http_*.c: the application a server
 * calls, the Request type and the conversion of results into responses. The
 * engine (src/http) frames, routes and writes heads; these files only turn its
 * exchanges into Python calls and the calls' results back into responses.
 */
#ifndef PX_PY_HTTP_H
#define PX_PY_HTTP_H

#include "binding.h"

#include "px/http_server.h"

/* One listening HTTP application: what its server calls, by route id. */
typedef struct px_py_http_app {
    PyObject *app;             /* callable(request): the requests no route took */
    PyObject **handlers;       /* by route id: callable(request, **params) */
    PyObject **param_names;    /* by route id: tuple of str (names of params) */
    PyObject **query_names;    /* by route id: frozenset of the query parameters
                                  its handler takes, or None: any (**kwargs) */
    PyObject **query_reserved; /* by route id: frozenset of names never passed */
    bool *is_async;            /* by route id: the handler is an async def function */
    size_t nroutes;
    PyObject *response_type; /* results of this class carry status and headers */
    PyObject *json_default;  /* default= hook of the JSON encoder, or NULL */
    PyObject *engine;        /* borrowed: the Engine owns this app */
    char *server_name;       /* owned: the server's config borrows it */
    px_http_server_t *srv;
    PyObject *conn_factory;  /* callable(fd) -> the context of a connection
                                (request.transport; its .app in per_connection
                                mode), kept until the connection closes */
    bool per_connection;     /* handlers are functions called with the
                                connection's own app instance */
    struct px_py_wsgi *wsgi; /* a WSGI app answers what no route took (wsgi.h), or NULL */
    char *health_path;       /* owned, or NULL: the server's config borrows it */
} px_py_http_app_t;

/* A Request for the exchange x (http_request.c): the head and body copied
 * out of the receive buffer, fields decoded when read. New reference, or NULL
 * with an exception set. Thread state attached. */
PyObject *px_py_request_new(px_module_state_t *st, const px_http_exchange_t *x);
/* The state of the module whose Request type made req (or a Python
 * subclass's base); NULL with TypeError when none. */
static inline px_module_state_t *px_py_request_state(PyObject *req)
{
    return px_py_state_of_type(Py_TYPE(req));
}
/* Tie req to the connection and app while its handler runs (remote_addr,
 * transport); NULL after. */
void px_py_request_set_conn(PyObject *req, px_conn_t *c, px_py_http_app_t *a);
/* Likewise the exchange, from which Request.body reads a body still
 * arriving (stream_bodies) at its first use; NULL after. */
void px_py_request_set_exchange(PyObject *req, px_http_exchange_t *x);
/* Keep what req reads from its connection (remote_addr, transport) for after
 * its handler returned: a deferred answer's code may still read them. 0, or
 * -1 with an exception set (RuntimeError: a streamed body not read yet, which
 * cannot be read after the handler). */
int px_py_request_keep(PyObject *req);
/* A streamed body was read to its end by other means than request.body (an
 * ASGI app's receive): nothing of it is pending any more. */
void px_py_request_body_consumed(PyObject *req);
/* The app whose handler req was given to (NULL after it returned). */
px_py_http_app_t *px_py_request_app(PyObject *req);

/* The context object of connection c (made by a->conn_factory on first use,
 * released when c closes): new reference, or NULL with an exception. The
 * owning worker, thread state attached. */
PyObject *px_py_http_conn_context(px_py_http_app_t *a, px_conn_t *c);

/* Header lines "Name: value\r\n"... of headers (a dict, pairs, or None),
 * checked, in *out (PyMem_RawMalloc'd, NULL when none). 0 or -1 with an
 * exception (http_result.c). */
int px_py_http_header_lines(PyObject *headers, char **out, size_t *len);

/* Streamed responses (http_streaming.c). The handler of x runs on this thread
 * (with req) between enter and leave: pyparallel.http.stream() finds it. */
void px_py_http_stream_enter(px_http_exchange_t *x, PyObject *req);
void px_py_http_stream_leave(void);
/* The exchange of req when its handler runs on this thread, else NULL. */
px_http_exchange_t *px_py_http_current(PyObject *req);
/* Answer x with the items of iterable as they come (chunked, or length
 * bytes), consumed on this thread with the worker released; its close() is
 * called at the end, also when the client went away. Thread owns the worker,
 * state attached. 0, or -1 with an exception (nothing sent). */
int px_py_http_stream_iter(px_http_exchange_t *x, int status, const char *ctype, const char *extra,
                           size_t extra_len, int64_t length, PyObject *iterable);

/* Answer x with a handler's result (http_result.c): 0, or -1 with an exception
 * set or x already answered. Thread state attached. */
int px_py_http_send_result(px_py_http_app_t *a, px_http_exchange_t *x, PyObject *result);

#endif
