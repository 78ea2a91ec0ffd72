/*
 * Engine threads and the hand-off of a blocked worker.
 *
 * Threads are interchangeable. Each runs the worker it is given, one loop turn
 * after another, until it hands the worker over or the worker finishes, and
 * then parks as a spare. At start there is one thread per worker.
 *
 * Code that may block (a Python callback) runs between px_worker_release and
 * px_worker_reacquire. A supervisor thread watches the workers' ownership words
 * (ownership.h): when one has stayed released in the same callback for
 * handoff_ms while work waits for it (completions, timers, messages, queued
 * output, a thread that wants it back) and the callback's thread is blocked
 * rather than running (it used under a fifth of that time on a CPU), it takes
 * the worker and gives it to a thread that waits for it back, else to a spare
 * (started on demand). A callback that keeps its CPU busy holds its core like
 * any running thread (the IOCP rule: another thread is released only when one
 * blocks), until SPIN_MS: then its worker's other clients have waited long
 * enough and it is handed off as well. The
 * blocked thread's reacquire then fails: it queues as a waiter, and whoever
 * owns the worker gives it back at the end of its current loop turn (the
 * stack of the giver is empty then; it parks). So at most one thread per
 * worker runs callbacks, except the blocked ones.
 *
 * The supervisor ticks every millisecond or so while callbacks are running and
 * sleeps otherwise; the first release after it fell asleep wakes it.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define MAX_SPARES 256       /* threads beyond one per worker, at most */
#define SUP_IDLE_TICKS 50    /* ticks without a released worker before sleeping */
#define SUP_SLEEP_MS 100     /* a missed wake-up costs at most this */
#define SPIN_MS 100          /* a busy callback is handed off after this long */
#define BLOCKED_SHARE 5      /* blocked: used less than 1/5 of the time on a CPU */

static _Thread_local px_thread_t *current_thread;

px_thread_t *px__thread_current(void) { return current_thread; }

char *px__thread_scratch(void)
{
    px_thread_t *t = current_thread;

    if (t == NULL)
        return NULL;
    if (t->scratch == NULL)
        t->scratch = malloc(PX_SCRATCH_SIZE);
    return t->scratch;
}

static void cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

static void timed_wait(pthread_cond_t *cond, pthread_mutex_t *lock, unsigned ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cond, lock, &ts);
}

static bool handoff_enabled(const px_engine_t *e) { return e->cfg.handoff_ms > 0; }

int px__handoff_worker_init(px_worker_t *w)
{
    atomic_init(&w->own, 0);
    atomic_init(&w->nwaiters, 0);
    atomic_init(&w->timer_due, UINT64_MAX);
    return -pthread_mutex_init(&w->hand_lock, NULL);
}

void px__handoff_worker_destroy(px_worker_t *w)
{
    pthread_mutex_destroy(&w->hand_lock);
}

bool px__worker_displaced(px_worker_t *w)
{
    bool any;

    pthread_mutex_lock(&w->hand_lock);
    any = w->displaced > 0;
    pthread_mutex_unlock(&w->hand_lock);
    return any;
}

/* ---- giving a worker to a thread ------------------------------------------ */

static void give(px_thread_t *t, px_worker_t *w)
{
    pthread_mutex_lock(&t->lock);
    t->given = w;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void before_wait(px_engine_t *e, px_worker_t *w)
{
    if (e->hooks.before_wait)
        e->hooks.before_wait(w, e->hooks.arg);
}

/* ---- release and reacquire -------------------------------------------------- */

bool px_worker_release(px_worker_t *w)
{
    px_thread_t *t = current_thread;
    px_engine_t *e = w->e;
    bool hint;

    /* After its loop (the last messages run as it finishes) nobody takes it. */
    if (t == NULL || t->w != w || !t->owns || !handoff_enabled(e) ||
        atomic_load_explicit(&w->inbox_closed, memory_order_relaxed))
        return false;
    /* Work that waits in user space for a loop turn: the supervisor cannot
     * see it from outside, so the release says so. */
    hint = w->dirty != NULL || w->flushing != NULL || w->be->local_work(w);
    t->owns = false;
    atomic_store_explicit(&w->releaser, t, memory_order_relaxed); /* published by the release */
    t->token = px__own_release(&w->own, hint);
    /* Relaxed: a wake-up missed in a race with the supervisor falling asleep
     * costs at most SUP_SLEEP_MS. */
    if (atomic_load_explicit(&e->sup_parked, memory_order_relaxed) &&
        atomic_exchange(&e->sup_parked, 0)) {
        pthread_mutex_lock(&e->sup_lock);
        pthread_cond_signal(&e->sup_cond);
        pthread_mutex_unlock(&e->sup_lock);
    }
    return true;
}

/* The worker was taken: wait until its owner gives it back. */
static void wait_handback(px_thread_t *t, px_worker_t *w)
{
    px_engine_t *e = w->e;

    pthread_mutex_lock(&w->hand_lock);
    t->next_wait = w->waiters;
    w->waiters = t;
    atomic_fetch_add(&w->nwaiters, 1);
    pthread_mutex_unlock(&w->hand_lock);
    /* The owner may be asleep in the kernel: end its turn. */
    px__wake(w->wake_fd, &w->wake_pending);
    before_wait(e, w);
    pthread_mutex_lock(&t->lock);
    while (t->given != w)
        pthread_cond_wait(&t->cond, &t->lock);
    t->given = NULL;
    pthread_mutex_unlock(&t->lock);
}

bool px_worker_reacquire(px_worker_t *w)
{
    px_thread_t *t = current_thread;

    if (t == NULL || t->w != w || t->owns)
        return false;
    if (!px__own_reclaim(&w->own, t->token))
        wait_handback(t, w);
    t->owns = true;
    return true;
}

/* End of a loop turn: a thread that wants the worker back gets it. */
static bool hand_back(px_thread_t *t, px_worker_t *w)
{
    px_thread_t *to;

    /* Sequentially consistent, like the wake-up: a waiter whose wake-up found
     * one pending (so wrote none) registered before this turn's acknowledgement,
     * and this load comes after it. */
    if (atomic_load(&w->nwaiters) == 0)
        return false;
    pthread_mutex_lock(&w->hand_lock);
    to = w->waiters;
    if (to != NULL) {
        w->waiters = to->next_wait;
        atomic_fetch_sub(&w->nwaiters, 1);
        w->displaced--;
    }
    pthread_mutex_unlock(&w->hand_lock);
    if (to == NULL)
        return false;
    t->owns = false;
    t->w = NULL;
    give(to, w);
    return true;
}

/* ---- threads ------------------------------------------------------------------ */

static void engine_over(px_engine_t *e)
{
    px_thread_t *t;

    pthread_mutex_lock(&e->threads_lock);
    e->exiting = true;
    for (t = e->threads; t; t = t->next) {
        pthread_mutex_lock(&t->lock);
        t->quit = true;
        pthread_cond_signal(&t->cond);
        pthread_mutex_unlock(&t->lock);
    }
    pthread_mutex_unlock(&e->threads_lock);
    pthread_mutex_lock(&e->sup_lock);
    e->sup_stop = true;
    pthread_cond_signal(&e->sup_cond);
    pthread_mutex_unlock(&e->sup_lock);
}

/* Run w until handing it over or until it finishes. */
static void serve(px_thread_t *t, px_worker_t *w)
{
    t->w = w;
    t->owns = true;
    for (;;) {
        if (hand_back(t, w))
            return;
        if (px__worker_turn(w))
            break;
    }
    /* Still the owner: the messages accepted before the end run here. */
    px__worker_finished(w);
    t->owns = false;
    t->w = NULL;
    if (atomic_load(&w->e->running_workers) == 0)
        engine_over(w->e);
}

/* Park until given a worker; NULL when the engine is over. */
static px_worker_t *park(px_thread_t *t)
{
    px_engine_t *e = t->e;
    px_worker_t *w;

    bool over;

    pthread_mutex_lock(&t->lock);
    w = t->given;
    t->given = NULL;
    pthread_mutex_unlock(&t->lock);
    if (w != NULL)
        return w;
    pthread_mutex_lock(&e->threads_lock);
    if (t->spawning) {
        t->spawning = false;
        e->spawning--;
    }
    over = e->exiting;
    if (!over) {
        t->next_wait = e->idle;
        e->idle = t;
    }
    pthread_mutex_unlock(&e->threads_lock);
    if (over)
        return NULL;
    before_wait(e, NULL);
    pthread_mutex_lock(&t->lock);
    while (t->given == NULL && !t->quit)
        pthread_cond_wait(&t->cond, &t->lock);
    w = t->given;
    t->given = NULL;
    pthread_mutex_unlock(&t->lock);
    return w;
}

static void *thread_main(void *arg)
{
    px_thread_t *t = arg;
    px_engine_t *e = t->e;
    px_worker_t *w;
    sigset_t all;

    /* Signals belong to the main thread, which turns them into a shutdown. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    current_thread = t;
    t->has_cpu_clock = pthread_getcpuclockid(pthread_self(), &t->cpu_clock) == 0;
    pthread_mutex_lock(&t->lock);
    w = t->given;
    pthread_mutex_unlock(&t->lock);
    if (t->first != NULL && t->has_cpu_clock) { /* a worker's CPU time: its first thread's */
        t->first->cpu_clock = t->cpu_clock;
        atomic_store_explicit(&t->first->cpu_clock_ready, true, memory_order_release);
    }
    if (e->hooks.thread_start)
        e->hooks.thread_start(w, e->hooks.arg);
    while ((w = park(t)) != NULL)
        serve(t, w);
    if (e->hooks.thread_stop)
        e->hooks.thread_stop(NULL, e->hooks.arg);
    free(t->scratch);
    t->scratch = NULL;
    current_thread = NULL;
    return NULL;
}

int px__thread_spawn(px_engine_t *e, px_worker_t *w)
{
    px_thread_t *t = calloc(1, sizeof(*t));
    int rc;

    if (t == NULL)
        return -ENOMEM;
    t->e = e;
    t->given = t->first = w;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    pthread_mutex_lock(&e->threads_lock);
    rc = e->exiting ? ESHUTDOWN : pthread_create(&t->tid, NULL, thread_main, t);
    if (rc == 0) {
        t->started = true;
        t->spawning = w == NULL;
        e->spawning += t->spawning;
        t->next = e->threads;
        e->threads = t;
        e->nthreads++;
    }
    pthread_mutex_unlock(&e->threads_lock);
    if (rc != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return -rc;
    }
    return 0;
}

/* ---- the supervisor ------------------------------------------------------------ */

typedef struct watch {
    uint64_t seen;   /* the released word last observed */
    uint64_t since;  /* when it was first observed, ns */
    uint64_t cpu;    /* the releasing thread's CPU time then, ns (0: unknown) */
    px_thread_t *thread;
} watch_t;

static uint64_t ns_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ns_of(&ts);
}

/* CPU time of the thread that released, ns; 0 when it cannot be read. The
 * thread cannot exit meanwhile: it is inside the worker's code. */
static uint64_t cpu_ns(px_thread_t *t)
{
    struct timespec ts;

    if (t == NULL || !t->has_cpu_clock || clock_gettime(t->cpu_clock, &ts) < 0)
        return 0;
    return ns_of(&ts);
}

/* Blocked (asleep, waiting) rather than running its callback? Unknown counts
 * as blocked. */
static bool looks_blocked(const watch_t *wt, uint64_t now)
{
    uint64_t cpu = wt->cpu ? cpu_ns(wt->thread) : 0;

    if (wt->cpu == 0 || cpu == 0)
        return true;
    return (cpu - wt->cpu) * BLOCKED_SHARE < now - wt->since;
}

static bool work_waits(px_worker_t *w, uint64_t word, uint64_t now)
{
    return (word & PX_OWN_HINT) ||
           atomic_load_explicit(&w->nwaiters, memory_order_relaxed) > 0 ||
           atomic_load_explicit(&w->wake_pending, memory_order_relaxed) ||
           now >= atomic_load_explicit(&w->timer_due, memory_order_relaxed) ||
           w->be->kernel_work(w);
}

static px_thread_t *pop_idle(px_engine_t *e)
{
    px_thread_t *t;

    pthread_mutex_lock(&e->threads_lock);
    t = e->idle;
    if (t != NULL)
        e->idle = t->next_wait;
    pthread_mutex_unlock(&e->threads_lock);
    return t;
}

static void push_idle(px_engine_t *e, px_thread_t *t)
{
    pthread_mutex_lock(&e->threads_lock);
    t->next_wait = e->idle;
    e->idle = t;
    pthread_mutex_unlock(&e->threads_lock);
}

/* Take w from the release observed as `seen` and give it to a waiter, else to
 * a spare; start a spare for a later tick when there is none. */
static void take_over(px_engine_t *e, px_worker_t *w, uint64_t seen)
{
    px_thread_t *t;
    bool waiter, taken = false;
    unsigned nthreads;

    pthread_mutex_lock(&w->hand_lock);
    t = w->waiters;
    waiter = t != NULL;
    if (t == NULL)
        t = pop_idle(e);
    if (t != NULL && px__own_take(&w->own, seen)) {
        taken = true;
        if (waiter) {
            w->waiters = t->next_wait;
            atomic_fetch_sub(&w->nwaiters, 1);
        } else {
            w->displaced++; /* the thread that released; a waiter was one already */
        }
    } else if (t != NULL && !waiter) {
        push_idle(e, t);
    }
    pthread_mutex_unlock(&w->hand_lock);
    if (taken) {
        /* Between the take and the give nobody else touches w. */
        w->takeovers++;
        PX_STAT_ADD(&w->stats, handoffs, 1);
        give(t, w);
        return;
    }
    if (t != NULL)
        return; /* reacquired meanwhile */
    pthread_mutex_lock(&e->threads_lock);
    nthreads = e->spawning ? UINT_MAX : e->nthreads; /* one start at a time */
    pthread_mutex_unlock(&e->threads_lock);
    if (nthreads < (unsigned)e->nworkers + MAX_SPARES && px__thread_spawn(e, NULL) < 0)
        PX_STAT_ADD(&w->stats, errors, 1);
}

/* One look at every worker; true when some worker was released. */
static bool scan(px_engine_t *e, watch_t *watch)
{
    uint64_t now_ms = px_now_ms(), now = now_ns();
    uint64_t after = (uint64_t)e->cfg.handoff_ms * 1000000u;
    uint64_t spin = (uint64_t)PX_MAX(SPIN_MS, e->cfg.handoff_ms) * 1000000u;
    bool any = false;
    int i;

    for (i = 0; i < e->nworkers; i++) {
        px_worker_t *w = e->workers[i];
        uint64_t word = atomic_load_explicit(&w->own, memory_order_acquire);

        if (!px__own_is_released(word) || atomic_load(&w->finished)) {
            watch[i].seen = 0;
            continue;
        }
        any = true;
        if (word != watch[i].seen) {
            watch[i].seen = word;
            watch[i].since = now;
            watch[i].thread = atomic_load_explicit(&w->releaser, memory_order_relaxed);
            watch[i].cpu = cpu_ns(watch[i].thread);
            /* Released again meanwhile: the thread read may be a later one. */
            if (atomic_load_explicit(&w->own, memory_order_acquire) != word)
                watch[i].seen = 0;
            continue;
        }
        if (now - watch[i].since < after)
            continue;
        if ((now - watch[i].since >= spin || looks_blocked(&watch[i], now)) &&
            work_waits(w, word, now_ms))
            take_over(e, w, word);
    }
    return any;
}

static void *supervisor_main(void *arg)
{
    px_engine_t *e = arg;
    unsigned tick = PX_MAX(1u, PX_MIN(e->cfg.handoff_ms / 2, 10u));
    unsigned idle = 0;
    watch_t *watch = calloc((size_t)e->nworkers, sizeof(*watch));
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&e->sup_lock);
    while (!e->sup_stop) {
        if (idle >= SUP_IDLE_TICKS) {
            /* Asleep until a release (or a while, for one missed in a race). */
            atomic_store(&e->sup_parked, 1);
            timed_wait(&e->sup_cond, &e->sup_lock, SUP_SLEEP_MS);
            atomic_store(&e->sup_parked, 0);
            idle = 0;
        } else {
            timed_wait(&e->sup_cond, &e->sup_lock, tick);
        }
        if (e->sup_stop)
            break;
        pthread_mutex_unlock(&e->sup_lock);
        if (watch == NULL || scan(e, watch))
            idle = 0;
        else
            idle++;
        pthread_mutex_lock(&e->sup_lock);
    }
    pthread_mutex_unlock(&e->sup_lock);
    free(watch);
    return NULL;
}

int px__handoff_start(px_engine_t *e)
{
    int rc;

    if (!handoff_enabled(e))
        return 0;
    rc = pthread_create(&e->sup_thread, NULL, supervisor_main, e);
    if (rc != 0)
        return -rc;
    e->sup_started = true;
    return 0;
}

/* The supervisor first (it starts threads), then every thread. Threads exit
 * once every worker has finished. */
void px__handoff_join(px_engine_t *e)
{
    px_thread_t *t;

    if (e->sup_started) {
        pthread_join(e->sup_thread, NULL);
        e->sup_started = false;
    }
    for (;;) {
        pthread_mutex_lock(&e->threads_lock);
        for (t = e->threads; t && !t->started; t = t->next)
            ;
        if (t != NULL)
            t->started = false;
        pthread_mutex_unlock(&e->threads_lock);
        if (t == NULL)
            break;
        pthread_join(t->tid, NULL);
    }
}

int px__handoff_init(px_engine_t *e)
{
    pthread_mutex_init(&e->threads_lock, NULL);
    pthread_mutex_init(&e->sup_lock, NULL);
    cond_init_monotonic(&e->sup_cond);
    atomic_init(&e->sup_parked, 0);
    return 0;
}

void px__handoff_destroy(px_engine_t *e)
{
    px_thread_t *t, *next;

    for (t = e->threads; t; t = next) {
        next = t->next;
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
    }
    e->threads = NULL;
    pthread_cond_destroy(&e->sup_cond);
    pthread_mutex_destroy(&e->sup_lock);
    pthread_mutex_destroy(&e->threads_lock);
}
