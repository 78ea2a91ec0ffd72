/*
 * A worker: one ring (or epoll instance), its connections, its wheel, its
 * pools, its stats, run by one thread at a time (threads.c and supervisor.c decide which). The
 * loop turn is: run queued messages, flush connections with output, sleep in
 * the kernel until a completion or the next timer, dispatch completions, fire
 * timers.
 *
 * Every list a turn walks lives in the worker, never on the stack, and is
 * consumed one element at a time: when a callback blocks and another thread
 * takes the worker over, that thread carries on where the blocked one was, and
 * the blocked one, given the worker back, finds the work done.
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

#define MAX_SLEEP_MS 1000   /* the longest sleep in the kernel, nothing to do */
#define STOP_TICK_MS 20     /* while stopping: how often to look at what is left */
#define POOL_STATS_TURNS 64 /* pool figures every this many turns under load, */
#define POOL_STATS_MS 100   /* and at least this often when quiet */
#define CONNS_PER_SLAB 256  /* pool slabs: connection structs, */
#define CHUNKS_PER_SLAB 16  /* output and held-input chunks (PX_CHUNK_SIZE), */
#define SENDOPS_PER_SLAB 32 /* in-flight gathered sends */
/* Out of descriptors, a listener stops accepting this long (nginx waits 500 ms,
 * libuv accepts and closes with a reserved descriptor): long enough that
 * retrying costs nothing, short enough that clients waiting in the backlog
 * barely notice. A reserve descriptor would cost one per worker and turn the
 * waiting clients away; pausing keeps them queued until descriptors free up. */
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_MS 10000 /* one line on stderr at most this often */

px_worker_t *px_worker_current(void)
{
    px_thread_t *t = px__thread_current();

    return t ? t->w : NULL;
}

void px__worker_mark_dirty(px_worker_t *w, px_conn_t *c)
{
    if (c->state & PX_CONN_DIRTY)
        return;
    c->state |= PX_CONN_DIRTY;
    /* Flushed in the order written: what a callback writes to one peer and
     * then another reaches them in that order (a subscribe before the
     * publish another connection sends), as asyncio's immediate writes do. */
    c->dirty_next = NULL;
    if (w->dirty == NULL)
        w->dirty = c;
    else
        w->dirty_last->dirty_next = c;
    w->dirty_last = c;
}

static void flush_dirty(px_worker_t *w)
{
    px_conn_t *c;

    /* Flushing may queue connections again: they wait for the next turn. */
    if (w->flushing == NULL) {
        w->flushing = w->dirty;
        w->dirty = NULL;
    }
    while ((c = w->flushing) != NULL) {
        w->flushing = c->dirty_next;
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

    px_wheel_advance(&w->wheel, now / PX_NS_PER_MS);
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
    ns = px_wheel_timeout(&w->wheel, w->stopping ? STOP_TICK_MS : MAX_SLEEP_MS) * PX_NS_PER_MS;
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

/* A connection still held (a blocked callback's caller, or a walk over the
 * connections) stays for a later batch. */
void px__worker_free_deferred(px_worker_t *w)
{
    px_conn_t *c, *keep = NULL;

    while ((c = w->graveyard) != NULL) {
        w->graveyard = c->dirty_next;
        if (c->busy) {
            c->dirty_next = keep;
            keep = c;
        } else {
            px__conn_free(c);
        }
    }
    w->graveyard = keep;
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
 * so far (the submit promise). A message that needs the loop (a request to
 * connect) sees inbox_closed and drops itself. */
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
        PX_STAT_ADD(&w->stats, messages, 1);
        m->fn(w, m);
    }
}

void px__worker_listener_closed(px_worker_t *w, px_listener_t *l)
{
    (void)w;
    l->fd = -1;
}

static _Atomic uint64_t accept_logged_ms; /* process-wide: the last line written */
static _Atomic uint64_t accept_pauses_unlogged;

void px__listener_rearm(px_timer_t *t)
{
    px_listener_t *l = PX_CONTAINER_OF(t, px_listener_t, backoff_timer);
    px_worker_t *w = l->w;

    if (w->stopping || l->closed || l->fd < 0 || l->armed)
        return;
    /* Still no memory for the accept: try again later rather than leave
     * this worker's share of the port unserved. */
    if (w->be->listen(w, l) < 0) {
        PX_STAT_ADD(&w->stats, errors, 1);
        px_timer_start(&w->wheel, &l->backoff_timer, ACCEPT_PAUSE_MS);
    }
}

bool px__listener_backoff(px_listener_t *l, int err)
{
    px_worker_t *w = l->w;
    uint64_t now, last, pauses;

    if (err != -EMFILE && err != -ENFILE && err != -ENOBUFS && err != -ENOMEM)
        return false;
    now = px_now_ms();
    last = atomic_load(&accept_logged_ms);
    pauses = atomic_fetch_add(&accept_pauses_unlogged, 1) + 1;
    PX_STAT_ADD(&w->stats, accept_pauses, 1);
    /* Once per interval for the whole process, however many workers fail. */
    if ((last == 0 || now - last >= ACCEPT_LOG_MS) &&
        atomic_compare_exchange_strong(&accept_logged_ms, &last, now)) {
        atomic_fetch_sub(&accept_pauses_unlogged, pauses);
        fprintf(stderr,
                "pyparallel: cannot accept connections (%s): accepting paused %d ms at a time; "
                "%llu pause(s) since the last report\n",
                strerror(-err), ACCEPT_PAUSE_MS, (unsigned long long)pauses);
    }
    px_timer_start(&w->wheel, &l->backoff_timer, ACCEPT_PAUSE_MS);
    return true;
}

static bool listeners_closed(px_worker_t *w)
{
    px_server_t *s;
    bool closed = true;

    pthread_mutex_lock(&w->e->lock);
    for (s = w->e->servers; s; s = s->next) {
        for (int i = 0; i < s->nlisteners; i++) {
            px_listener_t *l = &s->listeners[i];
            if (l->w != w)
                continue;
            if (!l->closed) {
                l->closed = true;
                /* The port stops taking connections now, not once the backend
                 * has let go of the socket (io_uring: when the cancelled accept
                 * completes; it fails with EINVAL from here on). Not in a
                 * hand-over nor for an inherited socket: the socket is the next
                 * process's (or the service manager's) too, and a shut socket
                 * would refuse its connections. */
                if (l->fd >= 0 && !l->inherited && !atomic_load(&w->handover))
                    shutdown(l->fd, SHUT_RD);
                px_timer_stop(&w->wheel, &l->backoff_timer);
                w->be->unlisten(w, l);
            }
            if (l->fd >= 0)
                closed = false;
        }
    }
    pthread_mutex_unlock(&w->e->lock);
    return closed;
}

/* Apply fn to every connection. fn may run callbacks, which may block while
 * another thread frees connections: the next one is held (busy) across the
 * call, and a connection stays linked while it is held. */
static void for_each_conn(px_worker_t *w, void (*fn)(px_conn_t *c))
{
    px_conn_t *c = w->conns.next, *next;

    if (c == &w->conns)
        return;
    c->busy++;
    while (c != &w->conns) {
        fn(c);
        next = c->next;
        if (next != &w->conns)
            next->busy++;
        c->busy--;
        px__conn_maybe_free(c);
        c = next;
    }
}

static void begin_stop(px_worker_t *w)
{
    for_each_conn(w, px__conn_begin_shutdown);
}

/* The shutdown timeout is over. A connection whose handler still runs stays
 * (and keeps its descriptor) until the handler returns: its peer is told now. */
static void abort_conn(px_conn_t *c)
{
    bool held = px__conn_in_handler(c) && !(c->state & PX_CONN_DEAD) && c->fd >= 0;

    px_conn_abort(c);
    if (held)
        shutdown(c->fd, SHUT_RDWR);
}

static void abort_all(px_worker_t *w)
{
    for_each_conn(w, abort_conn);
}

/* True when the worker may exit: stopping, nothing open, listeners closed,
 * and, before the stop timeout, no message waiting and no precise timer due
 * now: what the last closes set off (an asyncio loop's wake-up and ready
 * callbacks: an app told its client is gone) runs first. */
static bool stop_step(px_worker_t *w)
{
    bool closed = listeners_closed(w);
    if (w->drain_until && px_now_ms() >= w->drain_until) {
        w->drain_until = 0;
        begin_stop(w);
    }
    if (px_now_ms() >= w->stop_deadline)
        abort_all(w);
    if (!closed || w->conns.next != &w->conns)
        return false;
    return px_now_ms() >= w->stop_deadline ||
           (px_worker_backlog(w) == 0 && px_hrtimers_next(&w->hrtimers) > px_now_ns());
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

/* Memory a load left behind goes back once unused for pool_idle_ms. */
static void release_idle(px_worker_t *w)
{
    px_pool_release_idle(&w->conn_pool);
    px_pool_release_idle(&w->chunk_pool);
    px_pool_release_idle(&w->sendop_pool);
    if (w->be->release_idle)
        w->be->release_idle(w);
    update_pool_stats(w);
}

bool px__worker_turn(px_worker_t *w)
{
    px_engine_t *e = w->e;
    uint64_t timeout;

    w->turn++;
    PX_STAT_ADD(&w->stats, loops, 1);
    px__worker_drain_inbox(w);
    flush_dirty(w);
    /* Threads still inside this worker's callbacks will want it back. */
    if (w->stopping && stop_step(w) && !px__worker_displaced(w))
        return true;
    timeout = sleep_ns(w);
    /* For the supervisor: when this worker has a timer to fire. */
    atomic_store_explicit(&w->timer_due,
                          w->wheel.count || px_hrtimers_next(&w->hrtimers) != UINT64_MAX
                              ? w->wheel.now + timeout / PX_NS_PER_MS
                              : UINT64_MAX,
                          memory_order_relaxed);
    if (w->turn % POOL_STATS_TURNS == 0 || w->wheel.now - w->pool_stats_at >= POOL_STATS_MS) {
        w->pool_stats_at = w->wheel.now;
        update_pool_stats(w);
        px__budget_turn(w);
    }
    /* Checked at least once a second (the longest sleep): a release comes 1 to
     * 2 intervals after the memory was last used, plus up to a second. */
    if (e->cfg.pool_idle_ms && w->wheel.now - w->release_at >= e->cfg.pool_idle_ms) {
        w->release_at = w->wheel.now;
        release_idle(w);
    }
    if (e->hooks.before_wait)
        e->hooks.before_wait(w, e->hooks.arg);
    w->be->wait(w, timeout);
    px__worker_tick(w);
    return false;
}

void px__worker_finished(px_worker_t *w)
{
    px_engine_t *e = w->e;
    struct timespec ts;

    close_inbox(w);
    update_pool_stats(w);
    /* The clock of the worker's first thread reads EINVAL once that thread has
     * ended: keep the final figure (that thread outlives the worker's loop). */
    if (atomic_load_explicit(&w->cpu_clock_ready, memory_order_acquire) &&
        clock_gettime(w->cpu_clock, &ts) == 0)
        atomic_store_explicit(&w->cpu_ns_final,
                              (uint64_t)ts.tv_sec * PX_NS_PER_SEC + (uint64_t)ts.tv_nsec,
                              memory_order_release);
    atomic_store(&w->finished, true);
    atomic_fetch_sub(&e->running_workers, 1);
    px__wake(e->main_fd, &e->main_wake_pending);
}

static void stop_msg(px_worker_t *w, px_msg_t *m)
{
    (void)m;
    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_deadline = px_now_ms() + atomic_load(&w->stop_timeout_ms);
    listeners_closed(w); /* first: no connection arrives while the others close */
    if (atomic_load(&w->handover)) {
        unsigned grace = atomic_load(&w->drain_grace_ms);
        /* Connections go on being served (an HTTP server closes each after
         * its next answer) before the others close. */
        w->drain_until = px_now_ms() + (grace ? grace : 1);
        w->stop_deadline += grace;
        return;
    }
    begin_stop(w);
}

/* Any thread; the first request wins. */
void px__worker_stop(px_worker_t *w, unsigned timeout_ms)
{
    if (atomic_exchange(&w->stop_requested, true))
        return;
    atomic_store(&w->stop_timeout_ms, timeout_ms);
    px_msg_init(&w->stop_msg, stop_msg, NULL);
    px_worker_post(w, &w->stop_msg);
}

void px__worker_drain(px_worker_t *w, unsigned grace_ms, unsigned timeout_ms)
{
    if (atomic_load(&w->stop_requested))
        return;
    atomic_store(&w->drain_grace_ms, grace_ms);
    atomic_store(&w->handover, true);
    px__worker_stop(w, timeout_ms);
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
    w->release_at = w->wheel.now;
    px_hrtimers_init(&w->hrtimers);
    px_mpsc_init(&w->inbox);
    if ((rc = px_pool_init(&w->conn_pool, sizeof(px_conn_t), CONNS_PER_SLAB)) < 0 ||
        (rc = px_pool_init(&w->chunk_pool, PX_CHUNK_SIZE, CHUNKS_PER_SLAB)) < 0 ||
        (rc = px_pool_init(&w->sendop_pool, sizeof(px_sendop_t), SENDOPS_PER_SLAB)) < 0)
        goto fail;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = px__handoff_worker_init(w);
    if (rc < 0)
        goto fail_fd;
    rc = w->be->init(w);
    if (rc < 0)
        goto fail_handoff;
    *out = w;
    return 0;
fail_handoff:
    px__handoff_worker_destroy(w);
fail_fd:
    close(w->wake_fd);
fail:
    px_pool_destroy(&w->sendop_pool);
    px_pool_destroy(&w->chunk_pool);
    px_pool_destroy(&w->conn_pool);
    free(w);
    return rc;
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
    px__handoff_worker_destroy(w);
    close(w->wake_fd);
    px_pool_destroy(&w->sendop_pool);
    px_pool_destroy(&w->chunk_pool);
    px_pool_destroy(&w->conn_pool);
    free(w);
}

int px_worker_index(const px_worker_t *w)
{
    return w->index;
}
px_engine_t *px_worker_engine(px_worker_t *w)
{
    return w->e;
}
px_worker_stats_t *px_worker_stats(px_worker_t *w)
{
    return &w->stats;
}

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
        return (uint64_t)ts.tv_sec * PX_NS_PER_SEC + (uint64_t)ts.tv_nsec;
    return atomic_load_explicit(&w->cpu_ns_final, memory_order_acquire);
}
void *px_worker_udata(const px_worker_t *w)
{
    return w->udata;
}
void px_worker_set_udata(px_worker_t *w, void *udata)
{
    w->udata = udata;
}
struct px_wheel *px_worker_wheel(px_worker_t *w)
{
    return &w->wheel;
}
