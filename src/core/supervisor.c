/*
 * The supervisor: the thread that decides when a worker is handed off.
 *
 * It watches the workers' ownership words (ownership.h). When one has stayed
 * released in the same callback for handoff_ms while work waits for it
 * (completions, timers, messages, queued output, a thread that wants it back)
 * and the callback's thread is blocked rather than running (it used under a
 * fifth of that time on a CPU), it takes the worker and gives it to a thread
 * that waits for it back, else to a spare (threads.c; started on demand), and
 * from then on for a while that worker's releases hand it off at once when
 * work waits (threads.c: a burst of blocking callbacks queued on one worker
 * would otherwise cost handoff_ms each, one after the other). A callback that
 * waits for a CPU (runnable, in the kernel's words) is not blocked; one that
 * waits on a futex is mostly in the runtime's own short waits (with two
 * workers, 3.13t's stop-the-world collector pauses the other one for 2-4 ms a
 * few dozen times a second) and is handed off after LOCK_MS only. A
 * callback that keeps its CPU busy holds its core like any running thread
 * (the IOCP rule: another thread is released only when one blocks), until
 * SPIN_MS: then its worker's other clients have waited long enough and it is
 * handed off as well.
 *
 * It ticks every millisecond or so while callbacks are running and sleeps
 * otherwise; the first release after it fell asleep wakes it
 * (px__supervisor_wake).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SUP_IDLE_TICKS 50  /* ticks without a released worker before sleeping */
#define SUP_SLEEP_MS 100   /* a missed wake-up costs at most this */
#define SUP_MAX_TICK_MS 10 /* the longest tick, whatever handoff_ms is */
#define SPIN_MS 100        /* a busy callback is handed off after this long */
#define BLOCKED_SHARE 5    /* blocked: used less than 1/5 of the time on a CPU */
#define LOCK_MS 20         /* a callback waiting on a futex is handed off after this */

void px__cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

bool px__cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, unsigned ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / PX_MS_PER_SEC;
    ts.tv_nsec += (long)(ms % PX_MS_PER_SEC) * (long)PX_NS_PER_MS;
    if (ts.tv_nsec >= (long)PX_NS_PER_SEC) {
        ts.tv_sec++;
        ts.tv_nsec -= (long)PX_NS_PER_SEC;
    }
    return pthread_cond_timedwait(cond, lock, &ts) != ETIMEDOUT;
}

typedef struct watch {
    uint64_t seen;  /* the released word last observed */
    uint64_t since; /* when it was first observed, ns */
    uint64_t cpu;   /* the releasing thread's CPU time then, ns (0: unknown) */
    px_thread_t *thread;
} watch_t;

static uint64_t ns_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * PX_NS_PER_SEC + (uint64_t)ts->tv_nsec;
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

/* What the kernel says the callback's thread does. */
typedef enum {
    RUNS,    /* running, or runnable waiting for a CPU: another thread would only
                compete with it for the same CPUs */
    LOCKED,  /* waiting on a futex: mostly the runtime's own short waits (a
                stop-the-world pause of the collector, a contended lock) */
    BLOCKED, /* asleep elsewhere: a sleep, a socket, a pipe, a disk */
} thread_state_t;

static ssize_t read_proc(const px_thread_t *t, const char *what, char *buf, size_t size)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)t->ktid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

/* Unknown counts as blocked. */
static thread_state_t thread_state(const px_thread_t *t)
{
    char buf[256];
    const char *paren;

    if (t->ktid <= 0 || read_proc(t, "stat", buf, sizeof(buf)) <= 0)
        return BLOCKED;
    /* "tid (name) S ...": the name may hold anything, the state follows the last ')' */
    paren = strrchr(buf, ')');
    if (paren != NULL && paren[1] == ' ' && paren[2] == 'R')
        return RUNS;
    /* "202 ...": the number of the system call it sleeps in */
    if (read_proc(t, "syscall", buf, sizeof(buf)) > 0 && atoi(buf) == SYS_futex)
        return LOCKED;
    return BLOCKED;
}

/* Blocked (asleep, waiting) rather than running its callback or waiting for a
 * CPU: RUNS when it used a fifth of the time or more on a CPU, else what the
 * kernel says. Unknown counts as blocked. */
static thread_state_t callback_state(const watch_t *wt, uint64_t now)
{
    uint64_t cpu = wt->cpu ? cpu_ns(wt->thread) : 0;

    if (wt->cpu == 0 || cpu == 0 || atomic_load_explicit(&wt->thread->waits, memory_order_relaxed))
        return BLOCKED;
    if ((cpu - wt->cpu) * BLOCKED_SHARE >= now - wt->since)
        return RUNS;
    return thread_state(wt->thread);
}

/* Messages count by their backlog, not only by the wake-up: one posted while
 * the loop was acknowledging an earlier wake-up has none of its own, and a
 * handler released to wait for a message on its own worker (a body reader's
 * resume) would wait for ever. */
static bool work_waits(px_worker_t *w, uint64_t word, uint64_t now)
{
    return (word & PX_OWN_HINT) || atomic_load_explicit(&w->nwaiters, memory_order_relaxed) > 0 ||
           atomic_load_explicit(&w->wake_pending, memory_order_relaxed) ||
           atomic_load_explicit(&w->backlog, memory_order_relaxed) > 0 ||
           now >= atomic_load_explicit(&w->timer_due, memory_order_relaxed) ||
           w->be->kernel_work(w);
}

/* One look at every worker; true when some worker was released. */
static bool scan(px_engine_t *e, watch_t *watch)
{
    uint64_t now_ms = px_now_ms(), now = now_ns();
    uint64_t after = (uint64_t)e->cfg.handoff_ms * PX_NS_PER_MS;
    uint64_t spin = (uint64_t)PX_MAX(SPIN_MS, e->cfg.handoff_ms) * PX_NS_PER_MS;
    uint64_t lock = (uint64_t)PX_MAX(LOCK_MS, e->cfg.handoff_ms) * PX_NS_PER_MS;
    thread_state_t state;
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
        if (!work_waits(w, word, now_ms))
            continue;
        state = callback_state(&watch[i], now);
        if (state == BLOCKED) {
            /* Its next callbacks are likely to block too: hand them off at once. */
            if (px__worker_take(e, w, word) > 0)
                px__worker_blocking(w);
        } else if (now - watch[i].since >= (state == LOCKED ? lock : spin)) {
            px__worker_take(e, w, word);
        }
    }
    return any;
}

static void *supervisor_main(void *arg)
{
    px_engine_t *e = arg;
    unsigned tick = PX_MAX(1u, PX_MIN(e->cfg.handoff_ms / 2, (unsigned)SUP_MAX_TICK_MS));
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
            px__cond_wait_ms(&e->sup_cond, &e->sup_lock, SUP_SLEEP_MS);
            atomic_store(&e->sup_parked, 0);
            idle = 0;
        } else {
            px__cond_wait_ms(&e->sup_cond, &e->sup_lock, tick);
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

int px__supervisor_start(px_engine_t *e)
{
    int rc;

    if (e->cfg.handoff_ms == 0)
        return 0;
    rc = pthread_create(&e->sup_thread, NULL, supervisor_main, e);
    if (rc != 0)
        return -rc;
    e->sup_started = true;
    return 0;
}

void px__supervisor_wake(px_engine_t *e)
{
    if (atomic_exchange(&e->sup_parked, 0)) {
        pthread_mutex_lock(&e->sup_lock);
        pthread_cond_signal(&e->sup_cond);
        pthread_mutex_unlock(&e->sup_lock);
    }
}

void px__supervisor_stop(px_engine_t *e)
{
    pthread_mutex_lock(&e->sup_lock);
    e->sup_stop = true;
    pthread_cond_signal(&e->sup_cond);
    pthread_mutex_unlock(&e->sup_lock);
}

void px__supervisor_join(px_engine_t *e)
{
    if (e->sup_started) {
        pthread_join(e->sup_thread, NULL);
        e->sup_started = false;
    }
}

void px__supervisor_init(px_engine_t *e)
{
    pthread_mutex_init(&e->sup_lock, NULL);
    px__cond_init_monotonic(&e->sup_cond);
    atomic_init(&e->sup_parked, 0);
}

void px__supervisor_destroy(px_engine_t *e)
{
    pthread_cond_destroy(&e->sup_cond);
    pthread_mutex_destroy(&e->sup_lock);
}
