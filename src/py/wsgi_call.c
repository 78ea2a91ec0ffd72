/*
 * One WSGI request: the environ built, the application called and its
 * iterable consumed with the worker released (a blocking app is covered by
 * the hand-off), close() always called, then the response checked (status,
 * headers, the app's Content-Length against the body) and queued: a body of
 * bytes, or a wsgi.file_wrapper file sent by the kernel.
 */
#include "wsgi.h"

#include "px/http_response.h"
#include "px/http_stream.h"

#include <fcntl.h>
#include <stddef.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the application answered, gathered while the worker is released. */
typedef struct answer {
    PyObject *single; /* a bytes object that is the whole body, or NULL */
    int fd;           /* a file body (dup of the wrapper's), or -1 */
    off_t offset;
    size_t count;
    bool failed; /* the app raised or answered something that is not WSGI */
} answer_t;

static void log_exception(void)
{
    px_py_display_exception(PyErr_GetRaisedException());
}

/* Call result.close() when it has one; an error there is the app's. */
static int close_result(PyObject *result)
{
    PyObject *close, *r;

    /* lists, tuples and bytes (most results) have no close: no lookup error made */
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        return 0;
    close = PyObject_GetAttrString(result, "close");
    if (close == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    r = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* Where the app left the file: its tell() (a buffered file's descriptor is
 * at the end of what it read ahead), else the descriptor's offset. */
static off_t file_position(PyObject *filelike, int fd)
{
    PyObject *tell = PyObject_CallMethod(filelike, "tell", NULL);
    long long pos;

    if (tell == NULL) {
        PyErr_Clear();
        return lseek(fd, 0, SEEK_CUR);
    }
    pos = PyLong_AsLongLong(tell);
    Py_DECREF(tell);
    if (pos == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return (off_t)pos;
}

/* A wsgi.file_wrapper whose file has a descriptor of a regular file: sent
 * from its current position by the kernel, never more than the app's
 * Content-Length (PEP 3333). 1 when taken, 0 to iterate it. */
static int take_file(px_py_wsgi_t *g, px_py_start_response_t *r, PyObject *result, answer_t *ans)
{
    PyObject *filelike, *fileno;
    struct stat sb;
    off_t pos = -1;
    long fd;

    if (!Py_IS_TYPE(result, (PyTypeObject *)g->file_wrapper))
        return 0;
    filelike = PyObject_GetAttrString(result, "filelike");
    if (filelike == NULL)
        return -1;
    fileno = PyObject_CallMethod(filelike, "fileno", NULL);
    if (fileno == NULL) {
        Py_DECREF(filelike);
        PyErr_Clear(); /* no descriptor (BytesIO): iterate it */
        return 0;
    }
    fd = PyLong_AsLong(fileno);
    Py_DECREF(fileno);
    if (fd < 0) {
        Py_DECREF(filelike);
        PyErr_Clear();
        return 0;
    }
    if (fstat((int)fd, &sb) == 0 && S_ISREG(sb.st_mode))
        pos = file_position(filelike, (int)fd);
    Py_DECREF(filelike);
    if (pos < 0 || pos > sb.st_size)
        return 0;
    ans->fd = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
    if (ans->fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    ans->offset = pos;
    ans->count = (size_t)(sb.st_size - pos);
    if (r->status != 0 && r->length >= 0 && (unsigned long long)r->length < ans->count)
        ans->count = (size_t)r->length;
    return 1;
}

/* Body bytes of the iterable: gathered while the response can be sent
 * whole (a sequence, or a Content-Length up to BUFFER_MAX), else streamed
 * from here on, the bytes gathered before first. */
#define BUFFER_MAX ((long long)1 << 20)

static int body_bytes(px_py_start_response_t *r, bool sequence, const char *p, size_t n)
{
    r->head_sent = true;
    if (!r->streamed && !r->gone && !sequence && (r->length < 0 || r->length > BUFFER_MAX)) {
        if (px_py_wsgi_stream_begin(r) < 0)
            return -1;
        if (r->len > 0 && px_py_wsgi_stream_send(r, r->buf, r->len) < 0)
            return -1;
        r->len = 0;
    }
    if (r->streamed || r->gone)
        return r->gone ? 0 : px_py_wsgi_stream_send(r, p, n);
    return px_py_wsgi_body_append(r, p, n);
}

/* Consume the iterable into r's body, or stream it. */
static int gather(px_py_start_response_t *r, PyObject *result, answer_t *ans)
{
    PyObject *it, *chunk;

    bool sequence = PyList_CheckExact(result) || PyTuple_CheckExact(result);

    if (sequence && !r->streamed && PySequence_Fast_GET_SIZE(result) == 1 &&
        PyBytes_CheckExact(PySequence_Fast_GET_ITEM(result, 0))) {
        /* the common [body]: no copy */
        if (r->status == 0) {
            PyErr_SetString(PyExc_RuntimeError, "the app returned before start_response()");
            return -1;
        }
        r->head_sent = true;
        ans->single = Py_NewRef(PySequence_Fast_GET_ITEM(result, 0));
        return 0;
    }
    it = PyObject_GetIter(result);
    if (it == NULL)
        return -1;
    while ((chunk = PyIter_Next(it)) != NULL) {
        int rc = 0;
        if (!PyBytes_Check(chunk)) {
            PyErr_Format(PyExc_TypeError, "a WSGI body yields bytes, not %.100s",
                         Py_TYPE(chunk)->tp_name);
            rc = -1;
        } else if (PyBytes_GET_SIZE(chunk) > 0) {
            if (r->status == 0) {
                PyErr_SetString(PyExc_RuntimeError, "body bytes before start_response()");
                rc = -1;
            } else {
                rc = body_bytes(r, sequence, PyBytes_AS_STRING(chunk),
                                (size_t)PyBytes_GET_SIZE(chunk));
            }
        }
        Py_DECREF(chunk);
        if (rc < 0) {
            Py_DECREF(it);
            return -1;
        }
        if (r->gone)
            break; /* the client went away: stop producing (close() comes next) */
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return -1;
    if (r->status == 0) {
        PyErr_SetString(PyExc_RuntimeError, "the app returned without calling start_response()");
        return -1;
    }
    return 0;
}

/* Call the app and consume its answer; Python code only, worker released. */
static void run_app(px_py_wsgi_t *g, PyObject *env, px_py_start_response_t *r, answer_t *ans)
{
    PyObject *args[2] = {env, (PyObject *)r};
    PyObject *result = PyObject_Vectorcall(g->app, args, 2, NULL);
    int rc;

    if (result == NULL) {
        ans->failed = true;
        log_exception();
        px_py_wsgi_stream_finish(r, true); /* write() had begun: truncated, closed */
        return;
    }
    rc = r->streamed ? 0 : take_file(g, r, result, ans);
    if (rc == 0)
        rc = gather(r, result, ans);
    else if (rc > 0 && r->status == 0) {
        PyErr_SetString(PyExc_RuntimeError, "the app returned before start_response()");
        rc = -1;
    }
    if (rc < 0) {
        ans->failed = true;
        log_exception();
    }
    if (close_result(result) < 0) { /* always, whatever happened before */
        ans->failed = true;
        log_exception();
    }
    Py_DECREF(result);
    px_py_wsgi_stream_finish(r, ans->failed);
}

static int head_put(px_py_wsgi_head_t *h, const char *s, size_t n)
{
    if (n > h->cap - h->len) {
        size_t cap = PX_MAX(h->cap * 2, h->len + n + 256);
        char *p = h->extra == h->small ? PyMem_RawMalloc(cap) : PyMem_RawRealloc(h->extra, cap);
        if (p == NULL)
            return -1;
        if (h->extra == h->small)
            memcpy(p, h->small, h->len);
        h->extra = p;
        h->cap = cap;
    }
    memcpy(h->extra + h->len, s, n);
    h->len += n;
    return 0;
}

/* A str of latin-1 code points, as PEP 3333 wants header names and values. */
static const char *latin1(PyObject *s, size_t *len)
{
    if (!PyUnicode_Check(s) || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return NULL;
    *len = (size_t)PyUnicode_GET_LENGTH(s);
    return (const char *)PyUnicode_1BYTE_DATA(s);
}

#define is_name(n, len, lit) px_py_wsgi_name_is(n, len, lit, sizeof(lit) - 1)

/* Response header names seen last on this thread, by object: apps pass the
 * same constant strings request after request, so what a name is (and that
 * it is a token) is found once. The strings are held, so that an address
 * is never another string's. */
enum {
    NAME_OTHER,
    NAME_CTYPE,
    NAME_LENGTH,
    NAME_CONNECTION,
    NAME_HOP
};
#define NAMES_KEPT 8
static _Thread_local struct {
    PyObject *name;
    int kind;
} names_kept[NAMES_KEPT];
static _Thread_local unsigned names_next;

void px_py_wsgi_names_thread_exit(void)
{
    for (int i = 0; i < NAMES_KEPT; i++)
        Py_CLEAR(names_kept[i].name);
}

/* What the header name obj (latin-1 name[0..nl)) is; -1: not a token. */
static int name_kind(PyObject *obj, const char *name, size_t nl)
{
    int kind;

    for (int i = 0; i < NAMES_KEPT; i++)
        if (names_kept[i].name == obj)
            return names_kept[i].kind;
    if (!px_http_token_ok(name, nl))
        return -1;
    kind = is_name(name, nl, "content-type")        ? NAME_CTYPE
           : is_name(name, nl, "content-length")    ? NAME_LENGTH
           : is_name(name, nl, "connection")        ? NAME_CONNECTION
           : is_name(name, nl, "transfer-encoding") ? NAME_HOP
           : is_name(name, nl, "keep-alive")        ? NAME_HOP
                                                    : NAME_OTHER;
    names_next = (names_next + 1) % NAMES_KEPT;
    Py_XSETREF(names_kept[names_next].name, Py_NewRef(obj));
    names_kept[names_next].kind = kind;
    return kind;
}

int px_py_wsgi_head(PyObject *headers, px_py_wsgi_head_t *h)
{
    Py_ssize_t n = PyList_GET_SIZE(headers);

    memset(h, 0, offsetof(px_py_wsgi_head_t, small));
    h->extra = h->small;
    h->cap = sizeof(h->small);
    h->length = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        const char *name, *value;
        size_t nl, vl, bad;
        int kind;

        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            (name = latin1(PyTuple_GET_ITEM(pair, 0), &nl)) == NULL ||
            (value = latin1(PyTuple_GET_ITEM(pair, 1), &vl)) == NULL) {
            fprintf(stderr,
                    "pyparallel.wsgi: response header %zd is not a (str, str) pair of "
                    "latin-1 strings: 500 instead\n",
                    i);
            return -1;
        }
        kind = name_kind(PyTuple_GET_ITEM(pair, 0), name, nl);
        if (kind < 0 || !px_http_field_value_ok(value, vl, &bad)) {
            fprintf(stderr,
                    "pyparallel.wsgi: response header %.*s: not a token, or a control "
                    "byte in its value: 500 instead\n",
                    (int)PX_MIN(nl, 64), name);
            return -1;
        }
        if (kind == NAME_CTYPE) {
            h->ctype = value;
        } else if (kind == NAME_LENGTH) {
            h->length = px_py_wsgi_length(value, vl);
            if (h->length < 0) {
                fprintf(stderr,
                        "pyparallel.wsgi: Content-Length %.*s is not a length: 500 "
                        "instead\n",
                        (int)PX_MIN(vl, 64), value);
                return -1;
            }
        } else if (kind == NAME_CONNECTION) {
            h->close = h->close || is_name(value, vl, "close");
        } else if (kind == NAME_HOP) {
            continue; /* hop-by-hop: the server frames the body */
        } else if (head_put(h, name, nl) < 0 || head_put(h, ": ", 2) < 0 ||
                   head_put(h, value, vl) < 0 || head_put(h, "\r\n", 2) < 0) {
            fprintf(stderr, "pyparallel.wsgi: out of memory for response headers\n");
            return -1;
        }
    }
    return 0;
}

void px_py_wsgi_head_free(px_py_wsgi_head_t *h)
{
    if (h->extra != h->small)
        PyMem_RawFree(h->extra);
    h->extra = h->small;
}

/* The head of a response that has no body (HEAD, 304) with the app's
 * Content-Length, whatever body the app gave: a stream ended at once, whose
 * writes would be dropped and whose length is not checked. */
static int respond_head(px_http_exchange_t *x, int status, const px_py_wsgi_head_t *h)
{
    px_http_stream_config_t cfg = {0};
    px_http_stream_t *st;
    int rc;

    cfg.status = status;
    cfg.content_type = h->ctype;
    cfg.extra = h->extra;
    cfg.extra_len = h->len;
    cfg.length = h->length;
    rc = px_http_stream_start(x, &cfg, &st);
    x->reason = NULL;
    if (rc < 0)
        return rc;
    rc = px_http_stream_end(st);
    px_http_stream_release(st);
    return rc;
}

/* Queue the response; the worker is ours. The bytes of body sent, or -1
 * when x was left unanswered (the engine answers 500 and closes). */
static long long respond(px_http_exchange_t *x, px_py_start_response_t *r, answer_t *ans)
{
    px_py_wsgi_head_t h;
    const char *body = ans->single ? PyBytes_AS_STRING(ans->single) : r->buf;
    size_t len = ans->single ? (size_t)PyBytes_GET_SIZE(ans->single) : r->len;
    long long sent = -1;
    bool no_body = x->head || r->status == 304; /* the app's length tells of a body not sent */
    int rc;

    if (px_py_wsgi_head(r->headers, &h) < 0)
        goto out;
    if (ans->fd >= 0)
        len = ans->count;
    x->reason = r->reason; /* the app's own phrase goes on the wire ("200 Super") */
    if (no_body && h.length >= 0 && (size_t)h.length != len) {
        if (h.close)
            x->keep_alive = false;
        if (respond_head(x, r->status, &h) >= 0 || x->responded)
            sent = 0;
        goto out;
    }
    if (h.length >= 0 && (size_t)h.length != len) {
        /* Never a corrupt stream: the app's length is not what it gave. */
        fprintf(stderr,
                "pyparallel.wsgi: %.*s %.*s: the app's Content-Length is %lld but its body has "
                "%zu bytes: 500 and the connection closed\n",
                (int)PX_MIN(x->req->method.len, 32), x->req->method.base,
                (int)PX_MIN(x->req->target.len, 200), x->req->target.base, h.length, len);
        goto out;
    }
    if (h.close)
        x->keep_alive = false;
    if (ans->fd >= 0) {
        rc = px_http_respond_file(x, r->status, h.ctype, h.extra, h.len, ans->fd, ans->offset,
                                  ans->count);
        ans->fd = -1; /* the engine's now */
    } else {
        rc = px_http_respond(x, r->status, h.ctype, h.extra, h.len, body, len);
    }
    if (rc >= 0 || x->responded)
        sent = (long long)(x->head ? 0 : len);
out:
    x->reason = NULL; /* the status object goes with r; a 500 has its own */
    px_py_wsgi_head_free(&h);
    return sent;
}

void px_py_wsgi_call(px_py_wsgi_t *g, px_http_exchange_t *x)
{
    px_worker_t *w = px_conn_worker(x->conn);
    answer_t ans = {.fd = -1};
    PyObject *input, *env = NULL, *start;
    px_py_peer_t peer;
    long long sent = -1;

    px_py_attach(w);
    px_py_wsgi_peer(x->conn, &peer);
    start = px_py_wsgi_start_new(g);
    /* no body: the environ's own wsgi.input, which reads b"" */
    input = x->body_stream ? px_py_wsgi_input_stream(g, x)
            : x->body_len  ? px_py_wsgi_input_new(g, x->body, x->body_len)
                           : NULL;
    if (start != NULL && (input != NULL || (!x->body_stream && !x->body_len)))
        env = px_py_wsgi_environ(g, x, &peer, input);
    if (env == NULL) {
        log_exception();
        ans.failed = true;
    } else {
        px_py_start_response_t *r = (px_py_start_response_t *)start;
        bool released;
        r->x = x;
        r->w = w;
        released = px_py_release(w);
        run_app(g, env, r, &ans);
        r->x = NULL; /* a write() kept past the call fails */
        if (input != NULL)
            px_py_wsgi_input_done(input);
        Py_DECREF(env);
        px_py_reacquire(w, released);
    }
    if (start != NULL && ((px_py_start_response_t *)start)->streamed) {
        px_py_start_response_t *r = (px_py_start_response_t *)start;
        if (g->access_log)
            px_py_wsgi_log(w, &peer, x->req, r->status, (size_t)r->sent);
        x->responded = true; /* the stream's (or closed: nobody to answer) */
        Py_XDECREF(ans.single);
        Py_XDECREF(input);
        px_py_wsgi_start_done(g, start);
        return;
    }
    if (px_conn_closing(x->conn)) {
        x->responded = true; /* closed while the app ran: nobody to answer */
    } else if (!ans.failed) {
        sent = respond(x, (px_py_start_response_t *)start, &ans);
    }
    if (sent < 0 && !x->responded) {
        PX_STAT_ADD(px_worker_stats(w), errors, 1);
        x->keep_alive = false; /* the engine answers 500 */
    }
    if (g->access_log)
        px_py_wsgi_log(w, &peer, x->req,
                       x->responded && sent >= 0 ? ((px_py_start_response_t *)start)->status : 500,
                       sent > 0 ? (size_t)sent : 0);
    if (ans.fd >= 0)
        close(ans.fd);
    Py_XDECREF(ans.single);
    Py_XDECREF(input);
    if (start != NULL)
        px_py_wsgi_start_done(g, start);
}
