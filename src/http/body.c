/*
 * Request bodies read as they arrive (px_http_body_read, px/http_stream.h).
 *
 * Two threads meet at one bounded buffer: the worker (or the spare that took
 * it over) decodes received bytes into it through the connection's input tap
 * (server.c), and the handler's thread, released, reads from it. Everything
 * they share is under the body's lock, the decoder included. When the buffer
 * is full the tap leaves the rest to the engine, which holds it and stops
 * reading; the reader, having made room (half the buffer), posts a resume to
 * the worker, which offers the held bytes again. Messages in flight hold a
 * reference, so the body outlives the exchange when they run late.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "px/clock.h"
#include "px/handle.h"
#include "px/http_stream.h"

#include "stream.h"

enum cont {
    CONT_NONE,   /* not asked for, or not yet wanted */
    CONT_WANTED, /* the app reads: the worker sends it */
    CONT_SENT,   /* sent */
    CONT_SKIPPED /* the response started first: never sent */
};

struct px_http_body {
    _Atomic unsigned refs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *buf; /* lock, with everything below */
    size_t cap, rpos, wpos;
    bool ended;  /* decoded whole */
    int err;     /* -EBADMSG, -EFBIG, -ECONNRESET */
    bool full;   /* the tap left bytes: a resume is due when room is made */
    bool expect; /* the client waits for 100 Continue */
    enum cont cont;
    bool chunked;
    uint64_t left; /* Content-Length bytes to come */
    px_http_chunked_t dec;
    /* Fixed: */
    px_handle_t *h;
    px_worker_t *w;
    unsigned timeout_ms; /* between two arrivals */
};

px_http_body_t *px__http_body_new(px_conn_t *c, const px_http_request_t *req, uint64_t max_body,
                                  size_t cap, unsigned timeout_ms)
{
    px_http_body_t *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->buf = malloc(cap);
    b->h = px_conn_handle(c);
    if (b->buf == NULL || b->h == NULL) {
        if (b->h)
            px_handle_release(b->h);
        free(b->buf);
        free(b);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->cap = cap;
    b->expect = req->expect_continue;
    b->chunked = req->chunked;
    if (b->chunked)
        px_http_chunked_init(&b->dec, max_body);
    else
        b->left = req->content_length > 0 ? (uint64_t)req->content_length : 0;
    b->ended = !b->chunked && b->left == 0;
    b->w = px_conn_worker(c);
    b->timeout_ms = timeout_ms;
    px_conn_charge(c, (int64_t)cap);
    return b;
}

static void unref(px_http_body_t *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    px_handle_release(b->h);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b->buf);
    free(b);
}

/* ---- the worker's side -------------------------------------------------------- */

size_t px__http_body_feed(px_http_body_t *b, px_conn_t *c, const char *data, size_t len)
{
    size_t took = 0, space;
    bool ended, full;

    pthread_mutex_lock(&b->lock);
    if (b->ended || b->err) {
        /* over: what follows is the next request's (or nobody's) */
        pthread_mutex_unlock(&b->lock);
        return 0;
    }
    if (b->rpos > 0 && b->cap - b->wpos < b->cap / 2) {
        memmove(b->buf, b->buf + b->rpos, b->wpos - b->rpos);
        b->wpos -= b->rpos;
        b->rpos = 0;
    }
    space = b->cap - b->wpos;
    if (!b->chunked) {
        took = PX_MIN(PX_MIN(len, space), (size_t)PX_MIN(b->left, (uint64_t)SIZE_MAX));
        memcpy(b->buf + b->wpos, data, took);
        b->wpos += took;
        b->left -= took;
        b->ended = b->left == 0;
    } else if (space > 0) {
        /* decoded in place in our buffer: the decoded bytes never pass the raw */
        size_t piece = PX_MIN(PX_MIN(len, space), (size_t)INT32_MAX), out = piece;
        int r;

        memcpy(b->buf + b->wpos, data, piece);
        r = px_http_chunked_decode(&b->dec, b->buf + b->wpos, &out);
        if (r == PX_HTTP_ERROR) {
            b->err = b->dec.status == 413 ? -EFBIG : -EBADMSG;
        } else {
            b->wpos += out;
            b->ended = r >= 0;
            took = r >= 0 ? piece - (size_t)r : piece;
        }
    }
    ended = b->ended || b->err;
    full = !ended && took < len;
    b->full = b->full || full;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    /* The body deadline runs while the client is the one to wait for. */
    px_conn_set_deadline(c, ended || full ? 0 : b->timeout_ms);
    return took;
}

void px__http_body_end(px_http_body_t *b, int err)
{
    pthread_mutex_lock(&b->lock);
    if (!b->ended && !b->err)
        b->err = err == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

void px__http_body_responding(px_http_body_t *b)
{
    pthread_mutex_lock(&b->lock);
    if (b->cont != CONT_SENT)
        b->cont = CONT_SKIPPED; /* a final answer instead of 100 Continue */
    pthread_mutex_unlock(&b->lock);
}

bool px__http_body_detach(px_http_body_t *b, px_conn_t *c, px__http_body_rest_t *rest)
{
    bool whole;

    pthread_mutex_lock(&b->lock);
    whole = b->ended;
    rest->err = b->err;
    rest->unasked = b->expect && b->cont != CONT_SENT;
    rest->chunked = b->chunked;
    rest->left = b->left;
    rest->dec = b->dec;
    pthread_mutex_unlock(&b->lock);
    px_conn_charge(c, -(int64_t)b->cap);
    unref(b);
    return whole;
}

static void resume_run(px_conn_t *c, void *arg)
{
    if (c != NULL)
        px_conn_tap_resume(c);
    unref(arg);
}

static void continue_run(px_conn_t *c, void *arg)
{
    px_http_body_t *b = arg;
    bool send;

    pthread_mutex_lock(&b->lock);
    send = b->cont == CONT_WANTED;
    if (send)
        b->cont = CONT_SENT;
    pthread_mutex_unlock(&b->lock);
    if (send && c != NULL) {
        struct iovec iov = {(void *)"HTTP/1.1 100 Continue\r\n\r\n", 25};
        px_conn_send(c, &iov, 1);
    }
    unref(b);
}

/* Under lock. */
static void post(px_http_body_t *b, px_handle_fn *fn)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    if (px_handle_run(b->h, fn, b) < 0)
        atomic_fetch_sub_explicit(&b->refs, 1, memory_order_relaxed); /* never the last */
}

/* ---- the reader's side ----------------------------------------------------- */

static void deadline_of(struct timespec *ts, uint64_t ns_from_now)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ns_from_now += (uint64_t)ts->tv_nsec;
    ts->tv_sec += (time_t)(ns_from_now / PX_NS_PER_SEC);
    ts->tv_nsec = (long)(ns_from_now % PX_NS_PER_SEC);
}

/* Copy out what is there (under lock): the count, 0 when nothing is. */
static size_t take(px_http_body_t *b, char *out, size_t len)
{
    size_t n = PX_MIN(len, b->wpos - b->rpos);

    memcpy(out, b->buf + b->rpos, n);
    b->rpos += n;
    if (b->rpos == b->wpos)
        b->rpos = b->wpos = 0;
    /* room again: the held bytes are offered once half the buffer is free */
    if (n > 0 && b->full && b->cap - (b->wpos - b->rpos) >= b->cap / 2) {
        b->full = false;
        post(b, resume_run);
    }
    return n;
}

ssize_t px_http_body_read(px_http_exchange_t *x, void *buf, size_t len, int timeout_ms)
{
    px_http_body_t *b = x->body_stream;
    uint64_t deadline;
    bool released = false;
    ssize_t rc;

    if (b == NULL) { /* buffered whole */
        size_t n = PX_MIN(len, x->body_len - x->body_read);
        memcpy(buf, x->body + x->body_read, n);
        x->body_read += n;
        return (ssize_t)n;
    }
    if (len == 0)
        return 0;
    deadline = timeout_ms < 0 ? UINT64_MAX : px_now_ns() + (uint64_t)timeout_ms * PX_NS_PER_MS;
    pthread_mutex_lock(&b->lock);
    if (b->expect && b->cont == CONT_NONE) {
        b->cont = CONT_WANTED;
        post(b, continue_run);
    }
    for (;;) {
        uint64_t now;
        struct timespec ts;

        if (b->wpos > b->rpos) {
            rc = (ssize_t)take(b, buf, len);
            break;
        }
        if (b->ended) {
            rc = 0;
            break;
        }
        if (b->err) {
            rc = b->err;
            break;
        }
        now = px_now_ns();
        if (now >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        if (!released && px_worker_owned(b->w)) {
            /* the worker must run to receive what we wait for */
            pthread_mutex_unlock(&b->lock);
            released = px_worker_release(b->w);
            pthread_mutex_lock(&b->lock);
            if (!released) {
                rc = -EDEADLK;
                break;
            }
            continue;
        }
        deadline_of(&ts, PX_MIN(deadline - now, (uint64_t)50 * PX_NS_PER_MS));
        pthread_cond_timedwait(&b->cond, &b->lock, &ts);
    }
    pthread_mutex_unlock(&b->lock);
    if (released)
        px_worker_reacquire(b->w);
    if (rc > 0)
        x->body_read += (size_t)rc;
    return rc;
}

ssize_t px_http_body_ready(px_http_exchange_t *x)
{
    px_http_body_t *b = x->body_stream;
    ssize_t n;

    if (b == NULL)
        return x->body_read == x->body_len ? -1 : (ssize_t)(x->body_len - x->body_read);
    pthread_mutex_lock(&b->lock);
    n = b->wpos > b->rpos ? (ssize_t)(b->wpos - b->rpos) : b->ended ? -1 : 0;
    pthread_mutex_unlock(&b->lock);
    return n;
}
