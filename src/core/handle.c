/*
 * Connection handles (px/handle.h): calls from threads that do not own a
 * connection, carried to its worker as messages.
 *
 * Lifetime: the connection holds one reference to its handle and drops it
 * when it is freed, after clearing h->c; every message in flight holds one, so
 * does every user. h->c is read and cleared only on the owning worker, which
 * also runs the messages: a message finds the connection or finds NULL, never
 * freed memory. What other threads read (closed, posted, unsent) is atomic.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "px/handle.h"

enum handle_op {
    HOP_SEND,
    HOP_CLOSE,
    HOP_ABORT,
    HOP_PAUSE,
    HOP_RESUME,
    HOP_RUN,
    HOP_SHUTDOWN_SEND,
};

typedef struct handle_msg {
    px_msg_t msg;
    px_handle_t *h;
    enum handle_op op;
    px_handle_fn *fn; /* HOP_RUN */
    void *arg;
    size_t len;
    char data[];
} handle_msg_t;

px_handle_t *px_conn_handle(px_conn_t *c)
{
    px_handle_t *h = c->handle;

    if (h != NULL) {
        px_handle_ref(h);
        return h;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    atomic_init(&h->refs, 2); /* the connection's and the caller's */
    atomic_init(&h->closed, px_conn_closing(c));
    atomic_init(&h->gone, false);
    atomic_init(&h->send_shut, (c->state & PX_CONN_SEND_SHUT) != 0);
    atomic_init(&h->posted, 0);
    atomic_init(&h->pending, 0);
    atomic_init(&h->unsent, c->unsent);
    h->w = c->w;
    h->c = c;
    h->id = c->id;
    h->high_water = c->w->e->cfg.send_high_water;
    h->low_water = c->w->e->cfg.send_low_water;
    atomic_init(&h->waiters, 0);
    atomic_init(&h->watching, false);
    pthread_mutex_init(&h->wait_lock, NULL);
    pthread_cond_init(&h->wait_cond, NULL);
    c->handle = h;
    return h;
}

void px_handle_ref(px_handle_t *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void px_handle_release(px_handle_t *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&h->wait_lock);
        pthread_cond_destroy(&h->wait_cond);
        free(h);
    }
}

/* The output level moved (or the connection closes): wake the waiters, and
 * fire the watch once the level is at low water. Whoever changed the level:
 * the fence pairs with the waiter's registration (px_handle_wait_queued), so
 * that either the waiter sees the new level or this sees the waiter. */
void px__handle_moved(px_handle_t *h)
{
    px_handle_watch_fn *fn = NULL;
    void *arg = NULL;
    bool waiters, watching;

    atomic_thread_fence(memory_order_seq_cst);
    waiters = atomic_load_explicit(&h->waiters, memory_order_relaxed) != 0;
    watching = atomic_load_explicit(&h->watching, memory_order_relaxed);
    if (!waiters && !watching)
        return;
    if (watching && !px_handle_closed(h) && px_handle_queued(h) > h->low_water)
        watching = false; /* not there yet */
    pthread_mutex_lock(&h->wait_lock);
    if (waiters)
        pthread_cond_broadcast(&h->wait_cond);
    if (watching && h->watch_fn != NULL) {
        fn = h->watch_fn;
        arg = h->watch_arg;
        h->watch_fn = NULL;
        atomic_store_explicit(&h->watching, false, memory_order_relaxed);
    }
    pthread_mutex_unlock(&h->wait_lock);
    if (fn != NULL)
        fn(h, arg);
}

/* The connection is closing: later calls from other threads fail early. */
void px__handle_closing(px_handle_t *h)
{
    atomic_store_explicit(&h->closed, true, memory_order_release);
    px__handle_moved(h);
}

/* The connection is being freed (its worker): messages still in flight find
 * no connection. */
void px__handle_detach(px_handle_t *h)
{
    h->c = NULL;
    atomic_store_explicit(&h->unsent, 0, memory_order_relaxed);
    atomic_store_explicit(&h->gone, true, memory_order_release);
    px__handle_closing(h);
    px_handle_release(h);
}

static void apply(px_conn_t *c, handle_msg_t *m)
{
    struct iovec iov;

    switch (m->op) {
    case HOP_SEND:
        iov.iov_base = m->data;
        iov.iov_len = m->len;
        /* Out of memory part-way, the stream would have a hole: end it. */
        if (px_conn_send(c, &iov, 1) == -ENOMEM)
            px_conn_abort(c);
        break;
    case HOP_CLOSE: px_conn_close(c); break;
    case HOP_ABORT: px_conn_abort(c); break;
    case HOP_PAUSE:
        if (!px_conn_closing(c))
            px_conn_pause(c);
        break;
    case HOP_RESUME:
        if (!px_conn_closing(c))
            px_conn_resume(c);
        break;
    case HOP_RUN: m->fn(c, m->arg); break;
    case HOP_SHUTDOWN_SEND: px_conn_shutdown_send(c); break;
    }
}

static void msg_free(handle_msg_t *m)
{
    if (m->op == HOP_SEND)
        atomic_fetch_sub_explicit(&m->h->posted, m->len, memory_order_relaxed);
    atomic_fetch_sub_explicit(&m->h->pending, 1, memory_order_release);
    px_handle_release(m->h);
    free(m);
}

static void msg_run(px_worker_t *w, px_msg_t *msg)
{
    handle_msg_t *m = PX_CONTAINER_OF(msg, handle_msg_t, msg);
    px_conn_t *c = m->h->c;

    (void)w;
    if (c != NULL) {
        c->busy++;
        apply(c, m);
        c->busy--;
        /* Publish before the posted bytes go: the level never dips below
         * what is really queued. */
        atomic_store_explicit(&m->h->unsent, c->unsent, memory_order_relaxed);
        msg_free(m);
        px__conn_maybe_free(c);
        return;
    }
    if (m->op == HOP_RUN)
        m->fn(NULL, m->arg);
    msg_free(m);
}

static void msg_drop(px_msg_t *msg)
{
    handle_msg_t *m = PX_CONTAINER_OF(msg, handle_msg_t, msg);

    if (m->op == HOP_RUN)
        m->fn(NULL, m->arg);
    msg_free(m);
}

static int post(px_handle_t *h, handle_msg_t *m)
{
    int rc;

    px_handle_ref(h);
    atomic_fetch_add_explicit(&h->pending, 1, memory_order_relaxed);
    m->h = h;
    px_msg_init(&m->msg, msg_run, msg_drop);
    rc = px_worker_submit(h->w, &m->msg);
    if (rc < 0)
        msg_free(m);
    return rc;
}

static handle_msg_t *msg_new(enum handle_op op, size_t len)
{
    handle_msg_t *m = malloc(sizeof(*m) + len);

    if (m != NULL) {
        m->op = op;
        m->len = len;
    }
    return m;
}

int px_handle_send(px_handle_t *h, const struct iovec *iov, int iovcnt, bool force)
{
    handle_msg_t *m;
    size_t len = 0, off = 0;
    int i;

    if (px_handle_closed(h))
        return -ENOTCONN;
    if (atomic_load_explicit(&h->send_shut, memory_order_acquire))
        return -EPIPE;
    if (!force && px_handle_queued(h) > h->high_water)
        return -EAGAIN;
    for (i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (len == 0)
        return 0;
    m = msg_new(HOP_SEND, len);
    if (m == NULL)
        return -ENOMEM;
    for (i = 0; i < iovcnt; i++) {
        memcpy(m->data + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    /* Counted before the post: the worker subtracts it when it runs. */
    atomic_fetch_add_explicit(&h->posted, len, memory_order_relaxed);
    return post(h, m);
}

static int control(px_handle_t *h, enum handle_op op)
{
    handle_msg_t *m;

    /* An abort still cuts short a close in progress; a close of a closing
     * connection has nothing left to do. */
    if (op == HOP_ABORT ? atomic_load_explicit(&h->gone, memory_order_acquire)
                        : px_handle_closed(h))
        return op == HOP_CLOSE || op == HOP_ABORT ? 0 : -ENOTCONN;
    m = msg_new(op, 0);
    if (m == NULL)
        return -ENOMEM;
    if (op == HOP_CLOSE || op == HOP_ABORT)
        px__handle_closing(h); /* sends after this one are refused at once */
    return post(h, m);
}

int px_handle_run(px_handle_t *h, px_handle_fn *fn, void *arg)
{
    handle_msg_t *m;

    if (atomic_load_explicit(&h->gone, memory_order_acquire))
        return -ENOTCONN;
    m = msg_new(HOP_RUN, 0);
    if (m == NULL)
        return -ENOMEM;
    m->fn = fn;
    m->arg = arg;
    return post(h, m);
}

int px_handle_close(px_handle_t *h)
{
    return control(h, HOP_CLOSE);
}

int px_handle_abort(px_handle_t *h)
{
    return control(h, HOP_ABORT);
}

int px_handle_shutdown_send(px_handle_t *h)
{
    handle_msg_t *m;

    if (px_handle_closed(h) || atomic_load_explicit(&h->send_shut, memory_order_acquire))
        return 0;
    m = msg_new(HOP_SHUTDOWN_SEND, 0);
    if (m == NULL)
        return -ENOMEM;
    /* Sends after this one are refused at once; those posted before go first. */
    atomic_store_explicit(&h->send_shut, true, memory_order_release);
    return post(h, m);
}

bool px_handle_send_shut(const px_handle_t *h)
{
    return atomic_load_explicit(&h->send_shut, memory_order_acquire);
}

int px_handle_pause(px_handle_t *h)
{
    return control(h, HOP_PAUSE);
}

int px_handle_resume(px_handle_t *h)
{
    return control(h, HOP_RESUME);
}

bool px_handle_pending(const px_handle_t *h)
{
    return atomic_load_explicit(&h->pending, memory_order_acquire) != 0;
}

bool px_handle_closed(const px_handle_t *h)
{
    return atomic_load_explicit(&h->closed, memory_order_acquire);
}

size_t px_handle_queued(const px_handle_t *h)
{
    return atomic_load_explicit(&h->posted, memory_order_relaxed) +
           atomic_load_explicit(&h->unsent, memory_order_relaxed);
}

size_t px_handle_high_water(const px_handle_t *h)
{
    return h->high_water;
}

size_t px_handle_low_water(const px_handle_t *h)
{
    return h->low_water;
}

/* Waits in slices, so that a wake-up lost to a bug costs a slice, not a hang. */
#define WAIT_SLICE_NS (50 * PX_NS_PER_MS)

int px_handle_wait_queued(px_handle_t *h, size_t level, int timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                                       : px_now_ns() + (uint64_t)timeout_ms * PX_NS_PER_MS;
    int rc;

    pthread_mutex_lock(&h->wait_lock);
    atomic_fetch_add(&h->waiters, 1); /* sequentially consistent: see px__handle_moved */
    for (;;) {
        uint64_t now = px_now_ns(), until;
        struct timespec ts;

        if (px_handle_closed(h)) {
            rc = -ENOTCONN;
            break;
        }
        if (px_handle_queued(h) <= level) {
            rc = 0;
            break;
        }
        if (now >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        until = PX_MIN(deadline, now + WAIT_SLICE_NS);
        clock_gettime(CLOCK_REALTIME, &ts);
        until = (uint64_t)ts.tv_sec * PX_NS_PER_SEC + (uint64_t)ts.tv_nsec + (until - now);
        ts.tv_sec = (time_t)(until / PX_NS_PER_SEC);
        ts.tv_nsec = (long)(until % PX_NS_PER_SEC);
        pthread_cond_timedwait(&h->wait_cond, &h->wait_lock, &ts);
    }
    atomic_fetch_sub(&h->waiters, 1);
    pthread_mutex_unlock(&h->wait_lock);
    return rc;
}

int px_handle_watch_low(px_handle_t *h, px_handle_watch_fn *fn, void *arg)
{
    px_handle_watch_fn *replaced;
    void *replaced_arg;

    if (atomic_load_explicit(&h->gone, memory_order_acquire))
        return -ENOTCONN;
    pthread_mutex_lock(&h->wait_lock);
    replaced = h->watch_fn;
    replaced_arg = h->watch_arg;
    h->watch_fn = fn;
    h->watch_arg = arg;
    atomic_store(&h->watching, true);
    pthread_mutex_unlock(&h->wait_lock);
    /* Fired early rather than lost: its owner may hold a reference for it
     * (a stream over whose watch outlived it, on a kept-alive connection). */
    if (replaced != NULL)
        replaced(h, replaced_arg);
    /* Already there: nothing would move to fire it. */
    if (px_handle_closed(h) || px_handle_queued(h) <= h->low_water)
        px__handle_moved(h);
    return 0;
}

px_worker_t *px_handle_worker(const px_handle_t *h)
{
    return h->w;
}

uint64_t px_handle_id(const px_handle_t *h)
{
    return h->id;
}
