/*
 * WSGI (PEP 3333) in the binding, private to src/py/wsgi*.c: the environ of a
 * request built in C from the engine's parsed request (wsgi_environ.c), the
 * start_response, wsgi.input and write() objects (wsgi_types.c), the call of
 * the application and its response (wsgi_call.c), and the access log
 * (wsgi_log.c). The engine frames, routes and writes heads as for every
 * interface; an HTTP app with a `wsgi` description sends the requests no route
 * took here instead of to a Request handler.
 */
#ifndef PX_PY_WSGI_H
#define PX_PY_WSGI_H

#include "http.h"

/* The environ keys set per request, created once per application. */
enum {
    WK_REQUEST_METHOD,
    WK_PATH_INFO,
    WK_QUERY_STRING,
    WK_CONTENT_TYPE,
    WK_CONTENT_LENGTH,
    WK_SERVER_NAME,
    WK_SERVER_PORT,
    WK_SERVER_PROTOCOL,
    WK_REMOTE_ADDR,
    WK_REMOTE_PORT,
    WK_URL_SCHEME,
    WK_INPUT,
    WK_REQUEST_URI,
    WK_COUNT
};

/* Request headers common enough that their environ key (HTTP_HOST...) is
 * made once per application rather than per request. */
#define WSGI_KNOWN_HEADERS 40

/* Values the environ shares between requests. */
enum {
    WV_GET,
    WV_POST,
    WV_HEAD,
    WV_HTTP10,
    WV_HTTP11,
    WV_HTTP,
    WV_HTTPS,
    WV_EMPTY,
    WV_PORT80,
    WV_PORT443,
    WV_COUNT
};

typedef struct px_py_wsgi {
    PyObject *app;          /* the WSGI callable */
    PyObject *base_environ; /* every key of every request but the headers and
                               CONTENT_*: those that never change with their
                               values, the others with placeholders (a dict
                               sized for the headers to come), copied per
                               request and its placeholders replaced */
    PyObject *file_wrapper; /* wsgi.file_wrapper: a class whose .filelike is sent
                               by the kernel when it has a fileno() */
    PyObject *input_type;   /* wsgi.input */
    PyObject *start_type;   /* start_response */
    PyObject *write_type;   /* the write() start_response returns */
    PyObject *server_name;  /* SERVER_NAME when the request names no host */
    PyObject *server_port;  /* SERVER_PORT then: the bound port, set at listen */
    PyObject *keys[WK_COUNT];
    PyObject *values[WV_COUNT];
    PyObject *header_keys[WSGI_KNOWN_HEADERS]; /* HTTP_* of wsgi_known_headers */
    char *root_path; /* SCRIPT_NAME: the mount point ("" at the root), owned */
    size_t root_len;
    char *scheme_header; /* lower-case name of the trusted proxy's scheme header
                            (X-Forwarded-Proto), or NULL: none is trusted */
    size_t scheme_header_len;
    bool access_log;
    uint64_t id; /* names g among every WSGI server made (thread templates) */
} px_py_wsgi_t;

/* The WSGI description of Engine.listen_http(wsgi={...}): app, errors,
 * file_wrapper, root_path, scheme_header, server_name, access_log. NULL with
 * an exception on error. Main thread. */
px_py_wsgi_t *px_py_wsgi_new(PyObject *spec);
void px_py_wsgi_free(px_py_wsgi_t *g);
int px_py_wsgi_traverse(px_py_wsgi_t *g, visitproc visit, void *arg);
/* The port the server listens on (SERVER_PORT of requests without a Host). */
int px_py_wsgi_set_port(px_py_wsgi_t *g, int port);

/* Answer x with the application (wsgi_call.c). Called from the HTTP app's
 * handler on the connection's worker, thread state detached or attached. */
void px_py_wsgi_call(px_py_wsgi_t *g, px_http_exchange_t *x);

/* The peer of a connection, for REMOTE_ADDR and the access log. */
typedef struct px_py_peer {
    char host[48]; /* "" when unknown */
    int port;
    /* REMOTE_ADDR and REMOTE_PORT made once per connection (borrowed from the
       calling thread's cache, good until its next px_py_wsgi_peer), or NULL */
    PyObject *addr_str, *port_str;
} px_py_peer_t;
void px_py_wsgi_peer(px_conn_t *c, px_py_peer_t *out); /* thread state attached */

/* The environ of x (wsgi_template.c): a copy of the calling thread's
 * environ of an earlier request with the same headers, its other values
 * brought up to date, else built anew. input NULL: x has no body (the
 * environ's wsgi.input reads b""). New reference or NULL with an exception. */
PyObject *px_py_wsgi_environ(px_py_wsgi_t *g, const px_http_exchange_t *x, const px_py_peer_t *peer,
                             PyObject *input);
/* The template environs of the calling thread let go (thread state attached). */
void px_py_wsgi_thread_exit(void);

/* The parts of an environ (wsgi_environ.c), set in env, a copy of
 * g->base_environ: 0, or -1 with an exception. _fill sets every key of a
 * request but the CONTENT_LENGTH of a chunked body (set_length) and says
 * what it found in the headers. */
typedef struct px_py_wsgi_fill {
    bool https;      /* the trusted scheme header said https */
    bool has_length; /* a Content-Length header */
} px_py_wsgi_fill_t;
int px_py_wsgi_environ_fill(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req,
                            const px_py_peer_t *peer, PyObject *input, px_py_wsgi_fill_t *out);
int px_py_wsgi_set_target(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req);
int px_py_wsgi_set_method(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req);
int px_py_wsgi_set_protocol(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req);
int px_py_wsgi_set_server(px_py_wsgi_t *g, PyObject *env, const px_http_request_t *req, bool https);
int px_py_wsgi_set_peer(px_py_wsgi_t *g, PyObject *env, const px_py_peer_t *peer, bool addr,
                        bool port);
int px_py_wsgi_set_length(px_py_wsgi_t *g, PyObject *env, size_t len);

/* wsgi.input (wsgi_types.c) over a buffered body, or over one still
 * arriving (read from x with px_http_body_read while the app runs; _done
 * when the call is over: reads then return what was read ahead, then b""). */
PyObject *px_py_wsgi_input_new(px_py_wsgi_t *g, const char *body, size_t len);
PyObject *px_py_wsgi_input_stream(px_py_wsgi_t *g, px_http_exchange_t *x);
void px_py_wsgi_input_done(PyObject *input);

/* start_response and the response it describes (wsgi_types.c). */
struct px_http_stream;
typedef struct px_py_start_response {
    PyObject_HEAD vectorcallfunc vectorcall; /* start_response(...) */
    int status;                              /* 0 until start_response was called */
    PyObject *status_line;                   /* the app's status str, which reason points into */
    const char *reason; /* its reason phrase (latin-1, NUL-terminated), or NULL */
    PyObject *headers;  /* the app's list of (name, value) */
    long long length;   /* the app's Content-Length; -1 none */
    bool head_sent;     /* body bytes were produced: exc_info re-raises */
    char *buf;          /* the body gathered (a response not streamed) */
    size_t len, cap;
    /* While the app runs (NULL after): its request, for write() and streaming. */
    px_http_exchange_t *x;
    px_worker_t *w;
    struct px_http_stream *stream; /* the response streamed (wsgi_stream.c), or NULL */
    bool streamed;                 /* a stream was started: the response is its */
    bool gone;                     /* the client went away, or the stream failed */
    bool failed;                   /* a write failed otherwise than -EPIPE: the body is cut */
    unsigned long long sent;       /* body bytes streamed */
    PyObject *write;               /* the write() returned while the app ran, or NULL */
    PyTypeObject *write_type;
} px_py_start_response_t;
/* A start_response for a request (the thread's spare when it has one);
 * _done when the request is over, instead of a Py_DECREF. */
PyObject *px_py_wsgi_start_new(px_py_wsgi_t *g);
void px_py_wsgi_start_done(px_py_wsgi_t *g, PyObject *start);
void px_py_wsgi_start_thread_exit(void);
/* Append data to r's body; -1 with MemoryError. */
int px_py_wsgi_body_append(px_py_start_response_t *r, const char *data, size_t len);

/* The app's response headers for the engine (wsgi_call.c): Content-Type
 * and Content-Length taken out (the engine writes them), Connection honoured
 * and dropped with the other hop-by-hop ones. px_py_wsgi_head: 0, or -1 with
 * a line on stderr when they are not WSGI's (no exception); free after
 * either. */
typedef struct px_py_wsgi_head {
    char *extra; /* raw "Name: value\r\n" lines */
    size_t len, cap;
    const char *ctype; /* NUL-terminated, inside a header value object */
    long long length;  /* the app's Content-Length, or -1 */
    bool close;        /* Connection: close */
    char small[1024];
} px_py_wsgi_head_t;
int px_py_wsgi_head(PyObject *headers, px_py_wsgi_head_t *h);
void px_py_wsgi_names_thread_exit(void); /* the names px_py_wsgi_head keeps, let go */
void px_py_wsgi_head_free(px_py_wsgi_head_t *h);

/* Streamed responses (wsgi_stream.c), from the app's thread, worker
 * released. begin: the head (0, or -1 with an exception); a connection
 * closed meanwhile sets r->gone. send: 0 (a client gone sets r->gone; the
 * caller stops producing). finish: the end of the body, or an abort when
 * failed; releases the stream. */
int px_py_wsgi_stream_begin(px_py_start_response_t *r);
int px_py_wsgi_stream_send(px_py_start_response_t *r, const char *data, size_t len);
void px_py_wsgi_stream_finish(px_py_start_response_t *r, bool failed);

/* n bytes at s are lit (lit_len bytes of lower-case letters and '-') in any
 * case. s is a token (or not WSGI's: then refused anyway), where only
 * letters change under | 0x20; compared 8 bytes at a time, inline, as the
 * response headers are on every request. */
static inline bool px_py_wsgi_name_is(const char *s, size_t n, const char *lit, size_t lit_len)
{
    size_t i = 0;

    if (n != lit_len)
        return false;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        memcpy(&a, s + i, 8);
        memcpy(&b, lit + i, 8);
        if ((a | 0x2020202020202020ULL) != b)
            return false;
    }
    for (; i < n; i++)
        if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
            return false;
    return true;
}

/* A Content-Length value: decimal digits (blanks before them allowed, as
 * strtoll does), at most 18 of them; -1 otherwise. Inline: strtoll costs
 * more than the rest of a header's checks. */
static inline long long px_py_wsgi_length(const char *s, size_t n)
{
    long long v = 0;
    size_t i = 0, digits = 0;

    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
        v = v * 10 + (s[i] - '0');
    return i == n && digits > 0 && digits <= 18 ? v : -1;
}

/* The type specs (wsgi_types.c). */
extern PyType_Spec px_py_wsgi_input_spec;
extern PyType_Spec px_py_wsgi_start_spec;
extern PyType_Spec px_py_wsgi_write_spec;

/* Access log (wsgi_log.c): one line in the common log format, buffered per
 * worker; px_py_wsgi_log_take hands everything buffered to the writer thread. */
void px_py_wsgi_log(px_worker_t *w, const px_py_peer_t *peer, const px_http_request_t *req,
                    int status, size_t bytes);
PyObject *px_py_wsgi_log_take(PyObject *module, PyObject *unused);

#endif
