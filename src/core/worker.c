/*
 * A worker: one thread, one ring (or epoll instance), its connections, its
 * wheel, its pools, its stats. The loop turn is: run queued messages, flush
 * connections with output, sleep in the kernel until a completion or the next
 * timer, dispatch completions, fire timers.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static _Thread_local px_worker_t *current_worker;

px_worker_t *px_worker_current(void) { return current_worker; }

void px__worker_mark_dirty(px_worker_t *w, px_conn_t *c)
{
    if (c->state & PX_CONN_DIRTY)
        return;
    c->state |= PX_CONN_DIRTY;
    c->dirty_next = w->dirty;
    w->dirty = c;
}

static void flush_dirty(px_worker_t *w)
{
    px_conn_t *list = w->dirty, *c;

    w->dirty = NULL; /* flushing may queue connections for the next turn */
    while ((c = list) != NULL) {
        list = c->dirty_next;
        c->dirty_next = NULL;
        c->state &= ~PX_CONN_DIRTY;
        c->busy++;
        px__conn_flush(c);
        c->busy--;
        px__conn_maybe_free(c);
    }
}

/* Bring the wheel's clock to now (firing what is due) before completions are
 * dispatched, so timers they start count from the real time. */
void px__worker_tick(px_worker_t *w)
{
    uint64_t now = px_now_ns();

    px_wheel_advance(&w->wheel, now / 1000000u);
    if (w->hrtimers.count)
        px_hrtimers_fire(&w->hrtimers, now);
}

/* How long the worker may sleep: until the wheel's next slot (whole
 * milliseconds, as before) or the earliest precise timer, whichever is first. */
static uint64_t sleep_ns(px_worker_t *w)
{
    uint64_t ns, next, now;

    if (w->dirty != NULL)
        return 0;
    ns = px_wheel_timeout(&w->wheel, w->stopping ? 20 : 1000) * 1000000u;
    next = px_hrtimers_next(&w->hrtimers);
    if (next != UINT64_MAX && ns > 0) {
        now = px_now_ns();
        ns = next <= now ? 0 : PX_MIN(ns, next - now);
    }
    return ns;
}

int px_worker_hrtimer_start(px_worker_t *w, px_hrtimer_t *t, uint64_t deadline_ns)
{
    return px_hrtimer_start(&w->hrtimers, t, deadline_ns);
}

void px_worker_hrtimer_stop(px_worker_t *w, px_hrtimer_t *t)
{
    px_hrtimer_stop(&w->hrtimers, t);
}

void px__worker_free_deferred(px_worker_t *w)
{
    px_conn_t *c;

    while ((c = w->graveyard) != NULL) {
        w->graveyard = c->dirty_next;
        px__conn_free(c);
    }
}

void px_worker_post(px_worker_t *w, px_msg_t *m)
{
    atomic_fetch_add_explicit(&w->backlog, 1, memory_order_relaxed);
    px_mpsc_push(&w->inbox, &m->node);
    px__wake(w->wake_fd, &w->wake_pending);
}

/* Dekker-style hand-shake with close_inbox(): a submitter announces itself and
 * then checks the flag; the worker sets the flag and then waits for announced
 * submitters. Either the submitter sees the flag, or the worker sees (and
 * waits out) the submitter and then finds its message in the final drain. */
int px_worker_submit(px_worker_t *w, px_msg_t *m)
{
    int rc = 0;

    atomic_fetch_add(&w->submitters, 1);
    if (atomic_load(&w->inbox_closed))
        rc = -ESHUTDOWN;
    else
        px_worker_post(w, m);
    atomic_fetch_sub(&w->submitters, 1);
    return rc;
}

unsigned px_worker_backlog(const px_worker_t *w)
{
    return atomic_load_explicit(&w->backlog, memory_order_relaxed);
}

void px__worker_drain_inbox(px_worker_t *w)
{
    px_mpsc_node_t *n;
    bool ticked = false;

    while ((n = px_mpsc_pop(&w->inbox)) != NULL) {
        px_msg_t *m = PX_CONTAINER_OF(n, px_msg_t, node);
        if (!ticked) { /* timers that messages start count from the real time */
            px__worker_tick(w);
            ticked = true;
        }
        atomic_fetch_sub_explicit(&w->backlog, 1, memory_order_relaxed);
        PX_STAT_ADD(&w->stats, messages, 1);
        m->fn(w, m);
    }
}

/* The loop is over: refuse new submissions, then run every message accepted
 * so far (the submit promise). Requests to connect are dropped as
 * px_engine_destroy would: there is nobody left to serve the connection. */
static void close_inbox(px_worker_t *w)
{
    px_mpsc_node_t *n;

    atomic_store(&w->inbox_closed, true);
    while (atomic_load(&w->submitters) != 0)
        sched_yield();
    /* Until the backlog is zero, not until pop comes back empty: a post
     * half-way through (its link not yet written) hides what was pushed after
     * it, accepted submissions included. */
    while (atomic_load(&w->backlog) != 0) {
        px_msg_t *m;
        if ((n = px_mpsc_pop(&w->inbox)) == NULL) {
            sched_yield();
            continue;
        }
        m = PX_CONTAINER_OF(n, px_msg_t, node);
        atomic_fetch_sub_explicit(&w->backlog, 1, memory_order_relaxed);
        if (m->fn == px__connect_msg_fn) {
            px__connect_msg_free(m);
            continue;
        }
        PX_STAT_ADD(&w->stats, messages, 1);
        m->fn(w, m);
    }
}

void px__worker_listener_closed(px_worker_t *w, px_listener_t *l)
{
    (void)w;
    l->fd = -1;
}

static bool listeners_closed(px_worker_t *w)
{
    px_server_t *s;
    bool closed = true;

    pthread_mutex_lock(&w->e->lock);
    for (s = w->e->servers; s; s = s->next) {
        px_listener_t *l = &s->listeners[w->index];
        if (!l->closed) {
            l->closed = true;
            w->be->unlisten(w, l);
        }
        if (l->fd >= 0)
            closed = false;
    }
    pthread_mutex_unlock(&w->e->lock);
    return closed;
}

static void begin_stop(px_worker_t *w)
{
    px_conn_t *c, *next;

    for (c = w->conns.next; c != &w->conns; c = next) {
        next = c->next;
        px__conn_begin_shutdown(c);
    }
}

static void abort_all(px_worker_t *w)
{
    px_conn_t *c, *next;

    for (c = w->conns.next; c != &w->conns; c = next) {
        next = c->next;
        c->busy++;
        px_conn_abort(c);
        c->busy--;
        px__conn_maybe_free(c);
    }
}

/* True when the worker may exit: stopping, nothing open, listeners closed. */
static bool stop_step(px_worker_t *w)
{
    bool closed = listeners_closed(w);
    if (px_now_ms() >= w->stop_deadline)
        abort_all(w);
    return closed && w->conns.next == &w->conns;
}

static void update_pool_stats(px_worker_t *w)
{
    size_t bytes = px_pool_bytes(&w->conn_pool) + px_pool_bytes(&w->chunk_pool) +
                   px_pool_bytes(&w->sendop_pool);
    size_t used = w->conn_pool.in_use * w->conn_pool.obj_size +
                  w->chunk_pool.in_use * w->chunk_pool.obj_size +
                  w->sendop_pool.in_use * w->sendop_pool.obj_size;
    PX_STAT_SET(&w->stats, pool_bytes, bytes);
    PX_STAT_SET(&w->stats, pool_in_use, used);
}

static void *worker_main(void *arg)
{
    px_worker_t *w = arg;
    px_engine_t *e = w->e;
    sigset_t all;

    /* Signals belong to the main thread, which turns them into a shutdown. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    current_worker = w;
    if (pthread_getcpuclockid(pthread_self(), &w->cpu_clock) == 0)
        atomic_store_explicit(&w->cpu_clock_ready, true, memory_order_release);
    if (e->hooks.thread_start)
        e->hooks.thread_start(w, e->hooks.arg);

    for (;;) {
        uint64_t timeout;

        w->turn++;
        PX_STAT_ADD(&w->stats, loops, 1);
        px__worker_drain_inbox(w);
        flush_dirty(w);
        if (w->stopping && stop_step(w))
            break;
        timeout = sleep_ns(w);
        /* Every 64 turns under load, at least every 100 ms when quiet. */
        if ((w->turn & 63) == 0 || w->wheel.now - w->pool_stats_at >= 100) {
            w->pool_stats_at = w->wheel.now;
            update_pool_stats(w);
        }
        if (e->hooks.before_wait)
            e->hooks.before_wait(w, e->hooks.arg);
        w->be->wait(w, timeout);
        px__worker_tick(w);
    }

    close_inbox(w);
    update_pool_stats(w);
    if (e->hooks.thread_stop)
        e->hooks.thread_stop(w, e->hooks.arg);
    current_worker = NULL;
    {
        struct timespec ts;
        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
            atomic_store_explicit(&w->cpu_ns_final,
                                  (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
                                  memory_order_release);
    }
    atomic_store(&w->finished, true);
    atomic_fetch_sub(&e->running_workers, 1);
    px__wake(e->main_fd, &e->main_wake_pending);
    return NULL;
}

static void stop_msg(px_worker_t *w, px_msg_t *m)
{
    (void)m;
    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_deadline = px_now_ms() + atomic_load(&w->stop_timeout_ms);
    begin_stop(w);
}

/* Any thread; the first request wins. */
void px__worker_stop(px_worker_t *w, unsigned timeout_ms)
{
    if (atomic_exchange(&w->stop_requested, true))
        return;
    atomic_store(&w->stop_timeout_ms, timeout_ms);
    w->stop_msg.fn = stop_msg;
    px_worker_post(w, &w->stop_msg);
}

int px__worker_create(px_engine_t *e, int index, px_worker_t **out)
{
    px_worker_t *w = calloc(1, sizeof(*w));
    int rc;

    if (w == NULL)
        return -ENOMEM;
    w->e = e;
    w->index = index;
    w->be = e->be;
    w->conns.next = w->conns.prev = &w->conns;
    px_wheel_init(&w->wheel, px_now_ms());
    px_hrtimers_init(&w->hrtimers);
    px_mpsc_init(&w->inbox);
    if ((rc = px_pool_init(&w->conn_pool, sizeof(px_conn_t), 256)) < 0 ||
        (rc = px_pool_init(&w->chunk_pool, PX_CHUNK_SIZE, 16)) < 0 ||
        (rc = px_pool_init(&w->sendop_pool, sizeof(px_sendop_t), 32)) < 0)
        goto fail;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = w->be->init(w);
    if (rc < 0)
        goto fail_fd;
    *out = w;
    return 0;
fail_fd:
    close(w->wake_fd);
fail:
    px_pool_destroy(&w->sendop_pool);
    px_pool_destroy(&w->chunk_pool);
    px_pool_destroy(&w->conn_pool);
    free(w);
    return rc;
}

int px__worker_start(px_worker_t *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return -rc;
    w->started = true;
    return 0;
}

void px__worker_destroy(px_worker_t *w)
{
    px_conn_t *c, *next;

    /* Only reached for workers that never ran or have exited: nothing is in flight
     * that the backend's teardown does not end. */
    for (c = w->conns.next; c != &w->conns; c = next) {
        next = c->next;
        px__conn_free(c);
    }
    w->be->destroy(w);
    px_hrtimers_destroy(&w->hrtimers);
    close(w->wake_fd);
    px_pool_destroy(&w->sendop_pool);
    px_pool_destroy(&w->chunk_pool);
    px_pool_destroy(&w->conn_pool);
    free(w);
}

int px_worker_index(const px_worker_t *w) { return w->index; }
px_engine_t *px_worker_engine(px_worker_t *w) { return w->e; }
px_worker_stats_t *px_worker_stats(px_worker_t *w) { return &w->stats; }

px_histogram_t *px_worker_latency(px_worker_t *w, px_latency_kind_t kind)
{
    return kind == PX_LATENCY_REQUEST ? &w->request_latency : &w->callback_latency;
}

uint64_t px_worker_callback_since(const px_worker_t *w)
{
    return atomic_load_explicit(&w->callback_since, memory_order_relaxed);
}

uint64_t px_worker_cpu_ns(const px_worker_t *w)
{
    struct timespec ts;

    /* The clock of a thread that has ended reads EINVAL: the thread stored its
     * final figure before ending, so that one is the answer then. */
    if (!atomic_load(&w->finished) &&
        atomic_load_explicit(&w->cpu_clock_ready, memory_order_acquire) &&
        clock_gettime(w->cpu_clock, &ts) == 0)
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return atomic_load_explicit(&w->cpu_ns_final, memory_order_acquire);
}
void *px_worker_udata(const px_worker_t *w) { return w->udata; }
void px_worker_set_udata(px_worker_t *w, void *udata) { w->udata = udata; }
struct px_wheel *px_worker_wheel(px_worker_t *w) { return &w->wheel; }
