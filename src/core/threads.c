/*
 * Engine threads and the hand-off of a blocked worker between them.
 *
 * Threads are interchangeable. Each runs the worker it is given, one loop turn
 * after another, until it hands the worker over or the worker finishes, and
 * then parks as a spare. At start there is one thread per worker; the
 * supervisor (supervisor.c) starts spares on demand.
 *
 * Code that may block (a Python callback) runs between px_worker_release and
 * px_worker_reacquire. When the supervisor took the worker meanwhile and gave
 * it to another thread, the blocked thread's reacquire fails: it queues as a
 * waiter, and whoever owns the worker gives it back at the end of its
 * current loop turn (the stack of the giver is empty then; it parks). So at
 * most one thread per worker runs callbacks, except the blocked ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* After a callback of a worker was found blocked, its releases hand it off
 * at once (no handoff_ms wait) for this long, renewed by every callback found
 * blocked: a burst of blocking requests then costs a thread switch each
 * rather than handoff_ms each, queued one behind the other. */
#define EAGER_MS 1000
#define RESERVE_AT_ONCE 16 /* spares starting at once for eager hand-offs */
#define RESERVE_IDLE 4     /* parked spares kept ready while hand-offs are eager */

static _Thread_local px_thread_t *current_thread;

px_thread_t *px__thread_current(void)
{
    return current_thread;
}

char *px__thread_scratch(void)
{
    px_thread_t *t = current_thread;

    if (t == NULL)
        return NULL;
    if (t->scratch == NULL)
        t->scratch = malloc(PX_SCRATCH_SIZE);
    return t->scratch;
}

static bool handoff_enabled(const px_engine_t *e)
{
    return e->cfg.handoff_ms > 0;
}

int px__handoff_worker_init(px_worker_t *w)
{
    atomic_init(&w->own, 0);
    atomic_init(&w->nwaiters, 0);
    atomic_init(&w->timer_due, UINT64_MAX);
    atomic_init(&w->eager_until, 0);
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

void px__thread_give(px_thread_t *t, px_worker_t *w)
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

/* ---- eager hand-off -------------------------------------------------------- */

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;

    if (clock_gettime(clock, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * PX_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Time the calling thread spent on a CPU or waiting for one, ns: what is left
 * of the wall time is time it slept. 0 when unknown. */
static uint64_t scheduled_ns(void)
{
    unsigned long long run, wait;
    char buf[96];
    ssize_t n;
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
        return 0;
    return (uint64_t)(run + wait);
}

void px__worker_blocking(px_worker_t *w)
{
    atomic_store_explicit(&w->eager_until, px_now_ms() + EAGER_MS, memory_order_relaxed);
}

/* Callbacks on w were found blocking lately and work waits behind this one. */
static bool eager(px_worker_t *w, bool hint)
{
    uint64_t until = atomic_load_explicit(&w->eager_until, memory_order_relaxed);

    if (until == 0 || px_now_ms() >= until)
        return false;
    return hint || atomic_load_explicit(&w->nwaiters, memory_order_relaxed) > 0 ||
           atomic_load_explicit(&w->wake_pending, memory_order_relaxed) ||
           atomic_load_explicit(&w->backlog, memory_order_relaxed) > 0 || w->be->kernel_work(w);
}

/* The releasing thread hands w to a spare itself, and keeps one spare in
 * reserve for the next release; with none free the supervisor takes over. */
static void hand_off_now(px_engine_t *e, px_worker_t *w, px_thread_t *t)
{
    int rc;

    t->eager_ns = clock_ns(CLOCK_MONOTONIC);
    t->eager_sched = scheduled_ns();
    rc = px__worker_take(e, w, t->token);
    if (rc == -EAGAIN ||
        (rc > 0 && atomic_load_explicit(&e->nidle, memory_order_relaxed) < RESERVE_IDLE))
        px__thread_spawn_spare(e, RESERVE_AT_ONCE);
    if (rc == -EAGAIN && atomic_load_explicit(&e->sup_parked, memory_order_relaxed))
        px__supervisor_wake(e);
}

/* A callback handed off at its release ended: did it sleep for handoff_ms?
 * Time spent waiting for a CPU does not count: on a busy machine a callback
 * that only computes takes long too, and handing those off would only put
 * more threads on the same CPUs. */
static void eager_ended(px_worker_t *w, px_thread_t *t)
{
    uint64_t wall = clock_ns(CLOCK_MONOTONIC) - t->eager_ns;
    uint64_t sched = scheduled_ns();

    if (t->eager_sched && sched >= t->eager_sched)
        wall = wall > sched - t->eager_sched ? wall - (sched - t->eager_sched) : 0;
    t->eager_ns = 0;
    if (wall >= (uint64_t)w->e->cfg.handoff_ms * PX_NS_PER_MS)
        px__worker_blocking(w);
}

/* ---- release and reacquire -------------------------------------------------- */

static bool release(px_worker_t *w, bool may_hand_off_now)
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
    t->brief = !may_hand_off_now;
    atomic_store_explicit(&t->waits, false, memory_order_relaxed);
    atomic_store_explicit(&w->releaser, t, memory_order_relaxed); /* published by the release */
    t->token = px__own_release(&w->own, hint);
    t->eager_ns = 0;
    if (may_hand_off_now && eager(w, hint))
        hand_off_now(e, w, t);
    /* Relaxed: a wake-up missed in a race with the supervisor falling asleep
     * costs it one long sleep. */
    else if (atomic_load_explicit(&e->sup_parked, memory_order_relaxed))
        px__supervisor_wake(e);
    return true;
}

bool px_worker_release(px_worker_t *w)
{
    return release(w, true);
}

bool px_worker_release_brief(px_worker_t *w)
{
    return release(w, false);
}

bool px_worker_release_again(px_worker_t *w)
{
    const px_thread_t *t = current_thread;

    return release(w, t == NULL || !t->brief);
}

bool px_worker_waiting(px_worker_t *w)
{
    px_thread_t *t = current_thread;

    /* As the supervisor: a finished worker is taken by nobody. */
    if (t == NULL || t->w != w || t->owns || t->eager_ns || atomic_load(&w->finished))
        return false;
    /* Before the take: a supervisor that finds no spare free hands off at once too. */
    atomic_store_explicit(&t->waits, true, memory_order_relaxed);
    hand_off_now(w->e, w, t);
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

bool px_worker_owned(const px_worker_t *w)
{
    const px_thread_t *t = current_thread;

    return t != NULL && t->w == w && t->owns;
}

bool px_worker_reacquire(px_worker_t *w)
{
    px_thread_t *t = current_thread;

    if (t == NULL || t->w != w || t->owns)
        return false;
    /* A wait for w's own loop (px_worker_waiting) is no blocking callback: it
     * hands w off by itself each time, eager hand-off need not. */
    if (t->eager_ns && !atomic_load_explicit(&t->waits, memory_order_relaxed))
        eager_ended(w, t);
    t->eager_ns = 0;
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
    px__thread_give(to, w);
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
    px__supervisor_stop(e);
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

/* Wait on t->cond (t->lock held); false when the spare stayed idle for
 * pool_idle_ms, the engine's "memory unused this long goes back" rule. */
static bool idle_wait(px_thread_t *t)
{
    unsigned ms = t->e->cfg.pool_idle_ms;

    if (ms == 0) {
        pthread_cond_wait(&t->cond, &t->lock);
        return true;
    }
    return px__cond_wait_ms(&t->cond, &t->lock, ms);
}

/* An idle spare ends (its stack and interpreter state go back to the system)
 * unless it is among the last RESERVE_IDLE or was handed a worker meanwhile
 * (then it is no longer on the idle list). Its thread is joined later
 * (reap_retired). */
static bool retire(px_thread_t *t)
{
    px_engine_t *e = t->e;
    px_thread_t **p;
    bool retired = false;

    pthread_mutex_lock(&e->threads_lock);
    if (!e->exiting && atomic_load_explicit(&e->nidle, memory_order_relaxed) > RESERVE_IDLE) {
        for (p = &e->idle; *p != NULL && *p != t; p = &(*p)->next_wait)
            ;
        if (*p == t) {
            *p = t->next_wait;
            atomic_fetch_sub_explicit(&e->nidle, 1, memory_order_relaxed);
            e->nthreads--;
            t->retired = retired = true;
        }
    }
    pthread_mutex_unlock(&e->threads_lock);
    return retired;
}

/* Join and free the spares that retired and have ended (threads_lock held). */
static void reap_retired(px_engine_t *e)
{
    px_thread_t **p = &e->threads, *t;

    while ((t = *p) != NULL) {
        if (t->retired && t->started && pthread_tryjoin_np(t->tid, NULL) == 0) {
            *p = t->next;
            pthread_cond_destroy(&t->cond);
            pthread_mutex_destroy(&t->lock);
            free(t);
        } else {
            p = &t->next;
        }
    }
}

/* Park until given a worker; NULL when the engine is over or the spare
 * retired. */
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
        atomic_fetch_add_explicit(&e->nidle, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&e->threads_lock);
    if (over)
        return NULL;
    before_wait(e, NULL);
    for (;;) {
        pthread_mutex_lock(&t->lock);
        while (t->given == NULL && !t->quit)
            if (!idle_wait(t))
                break;
        w = t->given;
        t->given = NULL;
        over = t->quit;
        pthread_mutex_unlock(&t->lock);
        if (w != NULL || over || retire(t))
            return w;
    }
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
    t->ktid = (pid_t)syscall(SYS_gettid);
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

/* Starts a thread for w (a spare when w is NULL). A spare is not started
 * while at_once are starting already or max_threads run: checked under the
 * lock that counts them, so concurrent callers cannot pass the cap together. */
static int spawn(px_engine_t *e, px_worker_t *w, unsigned max_threads, unsigned at_once)
{
    px_thread_t *t = calloc(1, sizeof(*t));
    int rc;

    if (t == NULL)
        return -ENOMEM;
    t->e = e;
    t->given = t->first = w;
    pthread_mutex_init(&t->lock, NULL);
    px__cond_init_monotonic(&t->cond);
    pthread_mutex_lock(&e->threads_lock);
    reap_retired(e);
    if (e->exiting)
        rc = ESHUTDOWN;
    else if (w == NULL && (e->spawning >= at_once || e->nthreads >= max_threads))
        rc = -1; /* enough already: not an error */
    else
        rc = pthread_create(&t->tid, NULL, thread_main, t);
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
        return rc < 0 ? 0 : -rc;
    }
    return 0;
}

int px__thread_spawn(px_engine_t *e, px_worker_t *w)
{
    return spawn(e, w, UINT_MAX, UINT_MAX);
}

px_thread_t *px__thread_pop_idle(px_engine_t *e)
{
    px_thread_t *t;

    pthread_mutex_lock(&e->threads_lock);
    t = e->idle;
    if (t != NULL) {
        e->idle = t->next_wait;
        atomic_fetch_sub_explicit(&e->nidle, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&e->threads_lock);
    return t;
}

void px__thread_push_idle(px_engine_t *e, px_thread_t *t)
{
    pthread_mutex_lock(&e->threads_lock);
    t->next_wait = e->idle;
    e->idle = t;
    atomic_fetch_add_explicit(&e->nidle, 1, memory_order_relaxed);
    pthread_mutex_unlock(&e->threads_lock);
}

/* A spare, unless at_once are starting already or the cap is reached: the
 * cap bounds the memory of a burst of blocked handlers (a stack each). */
int px__thread_spawn_spare(px_engine_t *e, unsigned at_once)
{
    unsigned cap = e->cfg.handoff_threads ? e->cfg.handoff_threads : PX_DEFAULT_HANDOFF_THREADS;

    return spawn(e, NULL, (unsigned)e->nworkers + cap, at_once);
}

int px__worker_take(px_engine_t *e, px_worker_t *w, uint64_t seen)
{
    px_thread_t *t;
    bool waiter, taken = false;

    pthread_mutex_lock(&w->hand_lock);
    t = w->waiters;
    waiter = t != NULL;
    if (t == NULL)
        t = px__thread_pop_idle(e);
    if (t != NULL && px__own_take(&w->own, seen)) {
        taken = true;
        if (waiter) {
            w->waiters = t->next_wait;
            atomic_fetch_sub(&w->nwaiters, 1);
        } else {
            w->displaced++; /* the thread that released; a waiter was one already */
        }
    } else if (t != NULL && !waiter) {
        px__thread_push_idle(e, t);
    }
    pthread_mutex_unlock(&w->hand_lock);
    if (taken) {
        /* Between the take and the give nobody else touches w. */
        w->takeovers++;
        PX_STAT_ADD(&w->stats, handoffs, 1);
        px__thread_give(t, w);
        return 1;
    }
    if (t != NULL)
        return 0; /* reacquired meanwhile */
    if (px__thread_spawn_spare(e, 1) < 0)
        PX_STAT_ADD(&w->stats, errors, 1);
    return -EAGAIN;
}

/* The supervisor first (it starts threads), then every thread. Threads exit
 * once every worker has finished. */
void px__threads_join(px_engine_t *e)
{
    px_thread_t *t;

    px__supervisor_join(e);
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

void px__threads_init(px_engine_t *e)
{
    pthread_mutex_init(&e->threads_lock, NULL);
    px__supervisor_init(e);
}

void px__threads_destroy(px_engine_t *e)
{
    px_thread_t *t, *next;

    for (t = e->threads; t; t = next) {
        next = t->next;
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
    }
    e->threads = NULL;
    px__supervisor_destroy(e);
    pthread_mutex_destroy(&e->threads_lock);
}
