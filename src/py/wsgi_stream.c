/*
 * Streamed WSGI responses (px/http_stream.h): a body that write() sends, or
 * an iterable without a Content-Length (or with one past what is worth
 * buffering), goes out as it is produced, chunked for HTTP/1.1 and until the
 * close for HTTP/1.0, written from the app's thread with the worker released
 * and waiting while the client is slow to read (backpressure). A client gone
 * makes the writes fail and the iteration stop; close() is called as always.
 */
#include "wsgi.h"

#include "px/http_stream.h"

#include <errno.h>
#include <stdlib.h>

/* How long a write waits for a client that reads nothing; the engine's own
 * timeouts usually close such a connection first. PX_WSGI_STREAM_WAIT_MS
 * (internal, for tests) shortens it. */
#define STREAM_WAIT_MS 60000

static int stream_wait_ms(void)
{
    const char *env = getenv("PX_WSGI_STREAM_WAIT_MS");
    long ms = env != NULL ? strtol(env, NULL, 10) : 0;

    return ms > 0 && ms <= STREAM_WAIT_MS ? (int)ms : STREAM_WAIT_MS;
}

int px_py_wsgi_stream_begin(px_py_start_response_t *r)
{
    px_py_wsgi_head_t h;
    px_http_stream_config_t cfg = {0};
    bool entered;
    int rc;

    if (px_py_wsgi_head(r->headers, &h) < 0) {
        PyErr_SetString(PyExc_ValueError, "the response headers are not WSGI's (see the log)");
        return -1;
    }
    cfg.status = r->status;
    cfg.content_type = h.ctype;
    cfg.extra = h.extra;
    cfg.extra_len = h.len;
    cfg.length = h.length >= 0 ? h.length : PX_HTTP_LENGTH_UNKNOWN;
    /* the head is the engine's business: taken on the worker, then released again */
    entered = px_py_engine_enter(r->w);
    if (h.close)
        r->x->keep_alive = false;
    r->x->reason = r->reason;
    rc = px_http_stream_start(r->x, &cfg, &r->stream);
    r->x->reason = NULL;
    px_py_engine_leave(r->w, entered);
    px_py_wsgi_head_free(&h);
    if (rc == -ENOTCONN || rc == -EALREADY) {
        r->head_sent = r->streamed = true;
        r->gone = true; /* closed meanwhile (a shutdown, a deadline): nobody to answer */
        r->stream = NULL;
        return 0;
    }
    if (rc < 0) {
        /* x stays unanswered (a field refused, a head too long, no memory):
         * not streamed, so that the app's failure gets the 500 */
        r->stream = NULL;
        PyErr_Format(PyExc_ValueError, "the response head was refused (%s; see the log)",
                     strerror(-rc));
        return -1;
    }
    r->head_sent = r->streamed = true;
    return 0;
}

int px_py_wsgi_stream_send(px_py_start_response_t *r, const char *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    unsigned flags = 0;
    int rc;

    if (r->gone || len == 0)
        return 0;
    for (;;) {
        /* Written with the worker taken back, so that the bytes go straight
         * to the connection, ahead of whatever the server does when the app
         * returns (a close after an unread body): a posted write could come
         * after it. */
        bool entered = px_py_engine_enter(r->w);
        rc = px_http_stream_write(r->stream, &iov, 1, flags);
        px_py_engine_leave(r->w, entered);
        if (rc != -EAGAIN)
            break;
        Py_BEGIN_ALLOW_THREADS rc = px_http_stream_wait(r->stream, stream_wait_ms());
        Py_END_ALLOW_THREADS if (rc == -EDEADLK) flags = PX_HTTP_STREAM_FORCE; /* no hand-off */
        else if (rc < 0) break;
    }
    if (rc == -EMSGSIZE)
        fprintf(stderr,
                "pyparallel.wsgi: the body goes past the app's Content-Length: the connection "
                "closed after it\n");
    if (rc < 0) {
        /* -EPIPE: the client went away; anything else (a reader too slow,
         * no memory) cuts a stream still open: it must end failed, never
         * with a terminator that makes it look whole. The app's close()
         * still comes. */
        r->gone = true;
        r->failed = rc != -EPIPE;
    }
    return 0;
}

void px_py_wsgi_stream_finish(px_py_start_response_t *r, bool failed)
{
    bool entered;
    int rc;

    if (r->stream == NULL)
        return;
    r->sent = px_http_stream_written(r->stream);
    entered = px_py_engine_enter(r->w); /* in order with the writes, as above */
    if (failed || r->failed || r->gone) {
        px_http_stream_fail(r->stream); /* a cut body, then the close: never a whole one */
    } else if ((rc = px_http_stream_end(r->stream)) == -EBADMSG) {
        fprintf(stderr,
                "pyparallel.wsgi: the body (%llu bytes) is shorter than the app's "
                "Content-Length: the connection closed\n",
                r->sent);
    }
    px_http_stream_release(r->stream);
    px_py_engine_leave(r->w, entered);
    r->stream = NULL;
}
