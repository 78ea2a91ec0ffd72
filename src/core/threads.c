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
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define MAX_SPARES 256 /* threads beyond one per worker, at most */

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
     * costs it one long sleep. */
    if (atomic_load_explicit(&e->sup_parked, memory_order_relaxed))
        px__supervisor_wake(e);
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

px_thread_t *px__thread_pop_idle(px_engine_t *e)
{
    px_thread_t *t;

    pthread_mutex_lock(&e->threads_lock);
    t = e->idle;
    if (t != NULL)
        e->idle = t->next_wait;
    pthread_mutex_unlock(&e->threads_lock);
    return t;
}

void px__thread_push_idle(px_engine_t *e, px_thread_t *t)
{
    pthread_mutex_lock(&e->threads_lock);
    t->next_wait = e->idle;
    e->idle = t;
    pthread_mutex_unlock(&e->threads_lock);
}

/* A spare for the supervisor, unless one is starting already (one start at a
 * time) or there are MAX_SPARES. */
int px__thread_spawn_spare(px_engine_t *e)
{
    unsigned nthreads;

    pthread_mutex_lock(&e->threads_lock);
    nthreads = e->spawning ? UINT_MAX : e->nthreads;
    pthread_mutex_unlock(&e->threads_lock);
    if (nthreads >= (unsigned)e->nworkers + MAX_SPARES)
        return 0;
    return px__thread_spawn(e, NULL);
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
