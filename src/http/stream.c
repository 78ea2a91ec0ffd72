/*
 * Streamed responses (px/http_stream.h): a head sent by the handler, a body
 * written later from any thread, framed here (chunks, or a length that is
 * enforced), and the end or the loss of the connection told to the owner.
 *
 * Threads: the stream's lock orders the writers and guards its state. A
 * write of the thread that owns the worker goes straight to the connection
 * (when nothing posted waits before it); any other goes through the
 * connection's handle, ordered behind what was posted before. Nothing that
 * can call back into the stream (closing the connection reaches the server's
 * tap and close handlers) runs under the lock: the state is decided under
 * it, the action taken after.
 *
 * Lifetime: refs counts the users (users), the server's hold while the
 * stream occupies its connection, and messages in flight; users reaching 0
 * on a stream not over aborts it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px/clock.h"
#include "px/handle.h"
#include "px/http_stream.h"
#include "px/timer.h"

#include "respond.h"
#include "stream.h"

enum over {
    OPEN = 0,
    ENDED,   /* px_http_stream_end: the body is complete */
    ABORTED, /* px_http_stream_abort, a length not met, released unfinished */
    GONE,    /* the connection went away first */
};

struct px_http_stream {
    _Atomic unsigned refs;
    _Atomic unsigned users;
    _Atomic int over; /* enum over; set under lock, read anywhere */
    pthread_mutex_t lock;
    px_handle_t *h;
    px_worker_t *w;
    px_conn_t *c;     /* owner only: NULL once the server let go of it */
    bool chunked;     /* lock-free: fixed at start */
    bool no_body;     /* HEAD, 204, 304: writes are dropped */
    bool until_close; /* the close ends the body */
    bool keep_alive;  /* owner: the connection goes on after the end */
    int64_t length;   /* announced, or PX_HTTP_LENGTH_UNKNOWN */
    uint64_t written; /* lock */
    bool watching;    /* lock: a WRITABLE event is due at low water */
    int close_err;    /* owner: the reason CLOSED reports */
    bool reported;    /* owner: CLOSED told */
    px_http_stream_event_fn *on_event;
    void *arg;
    /* Heartbeat: owner's timer; interval and bytes under lock. */
    px_timer_t hb_timer;
    unsigned hb_ms;
    char *hb_bytes;
    size_t hb_len;
    _Atomic uint64_t last_write_ms; /* px_now_ms() of the last write */
    /* A deferral (px_http_defer): no head yet, answered by answer(later). */
    bool deferred;
    px_http_answer_fn *answer; /* lock: set once, when answered */
    void *answer_arg;
    px_http_exchange_t later; /* owner: stands for the deferred exchange */
    px_http_request_t req;    /* what of the request the answer needs */
    char *line;               /* req's method and target */
};

static void unref(px_http_stream_t *st)
{
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
        return;
    px_handle_release(st->h);
    pthread_mutex_destroy(&st->lock);
    free(st->hb_bytes);
    free(st->line);
    free(st);
}

static bool owned_here(const px_http_stream_t *st)
{
    return px_worker_owned(st->w);
}

/* Run fn(c, st) on the owner after what was posted before, holding st. */
static int post_run(px_http_stream_t *st, px_handle_fn *fn)
{
    int rc;

    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
    rc = px_handle_run(st->h, fn, st);
    if (rc < 0)
        unref(st);
    return rc;
}

/* ---- the owner's side ---------------------------------------------------- */

static void report_closed(px_http_stream_t *st, int err)
{
    if (st->reported)
        return;
    st->reported = true;
    if (st->on_event != NULL)
        st->on_event(st, PX_HTTP_STREAM_CLOSED, err, st->arg);
}

/* The server lets go of the stream: the timer stops, the hold goes. */
static void detach(px_http_stream_t *st, px_conn_t *c)
{
    if (st->c == NULL)
        return;
    px_timer_stop(px_worker_wheel(st->w), &st->hb_timer);
    st->c = NULL;
    px__http_server_stream_over(c, st);
    unref(st);
}

void px__http_stream_gone(px_http_stream_t *st, px_conn_t *c, int err)
{
    int over;

    pthread_mutex_lock(&st->lock);
    over = atomic_load_explicit(&st->over, memory_order_relaxed);
    if (over == OPEN)
        atomic_store_explicit(&st->over, GONE, memory_order_release);
    pthread_mutex_unlock(&st->lock);
    if (over == ENDED)
        err = 0; /* until the close: the close was its end */
    else if (over == ABORTED)
        err = -ECONNABORTED;
    else if (err != -ETIMEDOUT)
        err = -EPIPE;
    if (st->close_err == 0)
        st->close_err = err;
    report_closed(st, st->close_err); /* before the server's hold goes */
    detach(st, c);
}

/* The end, applied on the owner after every write before it. */
static void finish(px_conn_t *c, px_http_stream_t *st)
{
    if (c == NULL || st->c == NULL)
        return; /* gone meanwhile: told by px__http_stream_gone */
    if (st->until_close || !st->keep_alive) {
        px_conn_close(c); /* on_close reports the end */
        return;
    }
    report_closed(st, 0);
    detach(st, c);
}

void px__http_stream_close_after(px_http_stream_t *st)
{
    st->keep_alive = false; /* read by finish, on this owner, after the writes */
}

static void finish_run(px_conn_t *c, void *arg)
{
    px_http_stream_t *st = arg;

    finish(c, st);
    unref(st);
}

static void abort_run(px_conn_t *c, void *arg)
{
    px_http_stream_t *st = arg;

    if (c != NULL && st->c != NULL)
        px_conn_abort(c);
    unref(st);
}

static void close_run(px_conn_t *c, void *arg)
{
    px_http_stream_t *st = arg;

    if (c != NULL && st->c != NULL)
        px_conn_close(c);
    unref(st);
}

static void writable_run(px_conn_t *c, void *arg)
{
    px_http_stream_t *st = arg;
    bool due;

    pthread_mutex_lock(&st->lock);
    due = st->watching && atomic_load_explicit(&st->over, memory_order_relaxed) == OPEN;
    st->watching = false;
    pthread_mutex_unlock(&st->lock);
    if (c != NULL && due && st->on_event != NULL)
        st->on_event(st, PX_HTTP_STREAM_WRITABLE, 0, st->arg);
    unref(st);
}

/* The level fell (inside a send completion, or on a closing thread). */
static void low_water(px_handle_t *h, void *arg)
{
    px_http_stream_t *st = arg;

    (void)h;
    post_run(st, writable_run);
    unref(st); /* the watch's */
}

/* ---- start ---------------------------------------------------------------- */

static void heartbeat_fire(px_timer_t *t);
static px_http_answer_fn answer_500;

/* A stream of x's connection, not started: NULL without memory. */
static px_http_stream_t *stream_new(px_http_exchange_t *x)
{
    px_http_stream_t *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->h = px_conn_handle(x->conn);
    if (st->h == NULL) {
        free(st);
        return NULL;
    }
    atomic_init(&st->refs, 2); /* the caller's and the server's */
    atomic_init(&st->users, 1);
    atomic_init(&st->over, OPEN);
    atomic_init(&st->last_write_ms, px_now_ms());
    pthread_mutex_init(&st->lock, NULL);
    st->w = px_conn_worker(x->conn);
    st->c = x->conn;
    st->keep_alive = x->keep_alive;
    px_timer_init(&st->hb_timer, heartbeat_fire);
    return st;
}

static void stream_free(px_http_stream_t *st)
{
    px_handle_release(st->h);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* st occupies x's connection from now on. */
static void occupy(px_http_exchange_t *x, px_http_stream_t *st, px_http_stream_t **out)
{
    x->stream = st;
    px__http_server_stream_begin(x->conn, st);
    *out = st;
}

int px_http_stream_start(px_http_exchange_t *x, const px_http_stream_config_t *cfg,
                         px_http_stream_t **out)
{
    const px_http_request_t *req = x->req;
    px__http_framing_t framing;
    px_http_stream_t *st;
    int rc;

    if (x->responded)
        return -EALREADY;
    if (px_conn_closing(x->conn))
        return -ENOTCONN;
    if (cfg->status < 200 || cfg->status > 999 || cfg->length < PX_HTTP_LENGTH_UNKNOWN)
        return -EINVAL;
    if ((st = stream_new(x)) == NULL)
        return -ENOMEM;
    if (cfg->length >= 0)
        framing = PX__HTTP_LENGTH;
    else if (req != NULL && req->minor_version >= 1)
        framing = PX__HTTP_CHUNKED;
    else
        framing = PX__HTTP_UNTIL_CLOSE;
    rc = px__http_send_head(x, cfg->status, cfg->content_type, cfg->extra, cfg->extra_len, framing,
                            cfg->length >= 0 ? (uint64_t)cfg->length : 0);
    if (rc < 0) {
        stream_free(st);
        return rc;
    }
    st->keep_alive = x->keep_alive; /* as the head decided it */
    st->no_body = x->head || cfg->status == 204 || cfg->status == 304;
    st->chunked = framing == PX__HTTP_CHUNKED && !st->no_body;
    st->until_close = framing == PX__HTTP_UNTIL_CLOSE;
    st->length = cfg->length;
    st->on_event = cfg->on_event;
    st->arg = cfg->arg;
    occupy(x, st, out);
    return 0;
}

/* ---- writes ------------------------------------------------------------------ */

/* Queue iov on the connection: straight when this thread owns the worker
 * and nothing posted is waiting, else posted behind what was. Under lock. */
static int queue(px_http_stream_t *st, const struct iovec *iov, int iovcnt)
{
    if (owned_here(st) && st->c != NULL && !px_handle_pending(st->h))
        return px_conn_send(st->c, iov, iovcnt);
    return px_handle_send(st->h, iov, iovcnt, true);
}

/* Over: decided under the lock; the connection closed after it (action). */
static int give_up(px_http_stream_t *st, bool now)
{
    if (owned_here(st) && st->c != NULL && !px_handle_pending(st->h)) {
        if (now)
            px_conn_abort(st->c);
        else
            px_conn_close(st->c);
        return 0;
    }
    return post_run(st, now ? abort_run : close_run);
}

#define MAX_PIECES 64

int px_http_stream_write(px_http_stream_t *st, const struct iovec *iov, int iovcnt, unsigned flags)
{
    struct iovec framed[MAX_PIECES + 2];
    char size_line[24];
    size_t total = 0;
    int n = 0, rc;

    if (iovcnt < 0 || iovcnt > MAX_PIECES)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (st->deferred)
        return -EINVAL;
    pthread_mutex_lock(&st->lock);
    if (atomic_load_explicit(&st->over, memory_order_relaxed) != OPEN || px_handle_closed(st->h)) {
        pthread_mutex_unlock(&st->lock);
        return -EPIPE;
    }
    if (st->no_body || total == 0) {
        st->written += st->no_body ? total : 0;
        pthread_mutex_unlock(&st->lock);
        return 0;
    }
    if (st->length >= 0 && st->written + total > (uint64_t)st->length) {
        atomic_store_explicit(&st->over, ABORTED, memory_order_release);
        pthread_mutex_unlock(&st->lock);
        fprintf(stderr,
                "pyparallel: streamed response longer than its Content-Length %lld: connection "
                "closed\n",
                (long long)st->length);
        give_up(st, false);
        return -EMSGSIZE;
    }
    if (!(flags & PX_HTTP_STREAM_FORCE) && px_handle_queued(st->h) > px_handle_high_water(st->h)) {
        bool arm = st->on_event != NULL && !st->watching;
        st->watching = st->watching || arm;
        pthread_mutex_unlock(&st->lock);
        if (arm) {
            atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
            if (px_handle_watch_low(st->h, low_water, st) < 0)
                unref(st);
        }
        return -EAGAIN;
    }
    if (st->chunked) {
        int len = snprintf(size_line, sizeof(size_line), "%zx\r\n", total);
        framed[n++] = (struct iovec){size_line, (size_t)len};
    }
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len)
            framed[n++] = iov[i];
    if (st->chunked)
        framed[n++] = (struct iovec){(void *)"\r\n", 2};
    rc = queue(st, framed, n);
    if (rc == 0) {
        st->written += total;
        atomic_store_explicit(&st->last_write_ms, px_now_ms(), memory_order_relaxed);
    }
    pthread_mutex_unlock(&st->lock);
    return rc == -ENOTCONN || rc == -ESHUTDOWN ? -EPIPE : rc;
}

int px_http_stream_end(px_http_stream_t *st)
{
    static const struct iovec last = {(void *)"0\r\n\r\n", 5};
    bool short_body;
    int rc = 0;

    pthread_mutex_lock(&st->lock);
    if (atomic_load_explicit(&st->over, memory_order_relaxed) != OPEN) {
        pthread_mutex_unlock(&st->lock);
        return -EPIPE;
    }
    short_body = !st->no_body && st->length >= 0 && st->written < (uint64_t)st->length;
    if (short_body) {
        atomic_store_explicit(&st->over, ABORTED, memory_order_release);
        pthread_mutex_unlock(&st->lock);
        fprintf(stderr,
                "pyparallel: streamed response ended at %llu of its Content-Length %lld bytes: "
                "connection closed\n",
                (unsigned long long)st->written, (long long)st->length);
        give_up(st, false);
        return -EBADMSG;
    }
    if (st->chunked)
        rc = queue(st, &last, 1);
    if (rc == 0)
        atomic_store_explicit(&st->over, ENDED, memory_order_release);
    if (rc == 0 && owned_here(st) && st->c != NULL && !px_handle_pending(st->h)) {
        pthread_mutex_unlock(&st->lock);
        finish(st->c, st);
        return 0;
    }
    if (rc == 0)
        rc = post_run(st, finish_run);
    pthread_mutex_unlock(&st->lock);
    return rc == -ENOTCONN || rc == -ESHUTDOWN ? -EPIPE : rc;
}

static void stop(px_http_stream_t *st, bool now)
{
    pthread_mutex_lock(&st->lock);
    if (atomic_load_explicit(&st->over, memory_order_relaxed) != OPEN) {
        pthread_mutex_unlock(&st->lock);
        return;
    }
    atomic_store_explicit(&st->over, ABORTED, memory_order_release);
    pthread_mutex_unlock(&st->lock);
    give_up(st, now);
}

void px_http_stream_abort(px_http_stream_t *st)
{
    stop(st, true);
}

void px_http_stream_fail(px_http_stream_t *st)
{
    stop(st, false);
}

void px_http_stream_ref(px_http_stream_t *st)
{
    atomic_fetch_add_explicit(&st->users, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
}

void px_http_stream_release(px_http_stream_t *st)
{
    if (atomic_fetch_sub_explicit(&st->users, 1, memory_order_acq_rel) == 1 &&
        atomic_load_explicit(&st->over, memory_order_acquire) == OPEN) {
        if (st->deferred) {
            fprintf(stderr, "pyparallel: deferred response released unanswered: 500 sent\n");
            px_http_answer(st, answer_500, NULL);
        } else {
            fprintf(stderr,
                    "pyparallel: streamed response released unfinished: connection closed\n");
            px_http_stream_abort(st);
        }
    }
    unref(st);
}

int px_http_stream_wait(px_http_stream_t *st, int timeout_ms)
{
    bool released = false;
    int rc;

    if (atomic_load_explicit(&st->over, memory_order_acquire) != OPEN)
        return -EPIPE;
    if (owned_here(st)) {
        if (px_engine_handoff_ms(px_worker_engine(st->w)) == 0 ||
            !(released = px_worker_release(st->w)))
            return -EDEADLK;
    }
    rc = px_handle_wait_queued(st->h, px_handle_low_water(st->h), timeout_ms);
    if (released)
        px_worker_reacquire(st->w);
    if (rc == -ENOTCONN || atomic_load_explicit(&st->over, memory_order_acquire) != OPEN)
        return -EPIPE;
    return rc;
}

bool px_http_stream_closed(const px_http_stream_t *st)
{
    return atomic_load_explicit(&st->over, memory_order_acquire) != OPEN || px_handle_closed(st->h);
}

uint64_t px_http_stream_written(const px_http_stream_t *st)
{
    px_http_stream_t *s = (px_http_stream_t *)st;
    uint64_t n;

    pthread_mutex_lock(&s->lock);
    n = s->written;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- deferred responses ------------------------------------------------------ */

int px_http_defer(px_http_exchange_t *x, px_http_stream_t **out)
{
    const px_http_request_t *req = x->req;
    px_http_stream_t *st;

    if (x->responded)
        return -EALREADY;
    if (px_conn_closing(x->conn))
        return -ENOTCONN;
    if ((st = stream_new(x)) == NULL)
        return -ENOMEM;
    if (req != NULL) {
        size_t m = req->method.len, t = req->target.len;

        if ((st->line = malloc(m + t + 1)) == NULL) {
            stream_free(st);
            return -ENOMEM;
        }
        memcpy(st->line, req->method.base, m);
        memcpy(st->line + m, req->target.base, t);
        st->req.method = (px_view_t){st->line, m};
        st->req.target = (px_view_t){st->line + m, t};
        st->req.minor_version = req->minor_version;
        st->req.keep_alive = req->keep_alive;
    }
    st->deferred = true;
    st->later = (px_http_exchange_t){.conn = x->conn,
                                     .req = req ? &st->req : NULL,
                                     .head = x->head,
                                     .keep_alive = x->keep_alive,
                                     .srv = x->srv,
                                     .match = x->match};
    x->responded = true; /* for the handler call: the answer comes later */
    occupy(x, st, out);
    return 0;
}

/* On the owner: the answer, then the connection goes on (or closes). The
 * deferral occupies the connection until the answer is queued, so that the
 * requests held behind it come after; a stream the answer starts takes over. */
static void answer_here(px_conn_t *c, px_http_stream_t *st)
{
    px_http_exchange_t *x = &st->later;

    if (c == NULL || st->c == NULL) {
        st->answer(NULL, st->answer_arg); /* gone meanwhile */
        return;
    }
    x->keep_alive = x->keep_alive && st->keep_alive; /* px__http_stream_close_after */
    st->answer(x, st->answer_arg);
    if (x->stream != NULL)
        px_conn_set_tap(c, NULL); /* as after a handler call: input as usual */
    if (!x->responded)
        px_http_respond(x, 500, "text/plain; charset=utf-8", NULL, 0, "500 Internal Server Error\n",
                        26);
    report_closed(st, 0);
    detach(st, c);
    if (!x->keep_alive && x->stream == NULL)
        px_conn_close(c);
}

static void answer_run(px_conn_t *c, void *arg)
{
    px_http_stream_t *st = arg;

    answer_here(c, st);
    unref(st);
}

int px_http_answer(px_http_stream_t *st, px_http_answer_fn *fn, void *arg)
{
    int rc;

    if (!st->deferred)
        return -EINVAL;
    pthread_mutex_lock(&st->lock);
    if (atomic_load_explicit(&st->over, memory_order_relaxed) != OPEN || px_handle_closed(st->h)) {
        pthread_mutex_unlock(&st->lock);
        return -EPIPE;
    }
    atomic_store_explicit(&st->over, ENDED, memory_order_release);
    st->answer = fn;
    st->answer_arg = arg;
    if (owned_here(st) && st->c != NULL && !px_handle_pending(st->h)) {
        pthread_mutex_unlock(&st->lock);
        answer_here(st->c, st);
        return 0;
    }
    rc = post_run(st, answer_run);
    if (rc < 0) /* not posted: still open, for a later answer or the release's 500 */
        atomic_store_explicit(&st->over, OPEN, memory_order_release);
    pthread_mutex_unlock(&st->lock);
    return rc == -ENOMEM ? rc : rc < 0 ? -EPIPE : 0;
}

static void answer_500(px_http_exchange_t *x, void *arg)
{
    (void)x;
    (void)arg; /* answer_here sends 500 to what was not answered */
}

/* ---- heartbeat --------------------------------------------------------------- */

static void heartbeat_fire(px_timer_t *t)
{
    px_http_stream_t *st = PX_CONTAINER_OF(t, px_http_stream_t, hb_timer);
    uint64_t now = px_now_ms(), last, idle;
    unsigned ms;
    char *bytes = NULL;
    size_t len;

    pthread_mutex_lock(&st->lock);
    ms = st->hb_ms;
    len = st->hb_len;
    if (ms && len && (bytes = malloc(len)) != NULL)
        memcpy(bytes, st->hb_bytes, len);
    pthread_mutex_unlock(&st->lock);
    if (bytes == NULL || st->c == NULL)
        return;
    last = atomic_load_explicit(&st->last_write_ms, memory_order_relaxed);
    idle = now > last ? now - last : 0;
    if (idle + 1 >= ms) {
        struct iovec iov = {bytes, len};
        px_http_stream_write(st, &iov, 1, PX_HTTP_STREAM_FORCE);
        idle = 0;
    }
    free(bytes);
    if (st->c != NULL && atomic_load_explicit(&st->over, memory_order_relaxed) == OPEN)
        px_timer_start(px_worker_wheel(st->w), &st->hb_timer, ms - idle);
}

static void heartbeat_run(px_conn_t *c, void *arg)
{
    px_http_stream_t *st = arg;
    unsigned ms;

    pthread_mutex_lock(&st->lock);
    ms = st->hb_ms;
    pthread_mutex_unlock(&st->lock);
    if (c != NULL && st->c != NULL) {
        if (ms == 0)
            px_timer_stop(px_worker_wheel(st->w), &st->hb_timer);
        else
            px_timer_start(px_worker_wheel(st->w), &st->hb_timer, ms);
    }
    unref(st);
}

int px_http_stream_heartbeat(px_http_stream_t *st, unsigned interval_ms, const void *bytes,
                             size_t len)
{
    char *copy = NULL;

    if (st->length >= 0 || (interval_ms && len == 0))
        return -EINVAL;
    if (interval_ms && (copy = malloc(len)) == NULL)
        return -ENOMEM;
    if (copy)
        memcpy(copy, bytes, len);
    pthread_mutex_lock(&st->lock);
    if (atomic_load_explicit(&st->over, memory_order_relaxed) != OPEN) {
        pthread_mutex_unlock(&st->lock);
        free(copy);
        return -EPIPE;
    }
    free(st->hb_bytes);
    st->hb_bytes = copy;
    st->hb_len = interval_ms ? len : 0;
    st->hb_ms = interval_ms;
    pthread_mutex_unlock(&st->lock);
    if (owned_here(st) && st->c != NULL) {
        atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
        heartbeat_run(st->c, st);
        return 0;
    }
    return post_run(st, heartbeat_run) == 0 ? 0 : -EPIPE;
}
