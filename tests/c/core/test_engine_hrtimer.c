/*
 * Precise timers on a running worker, on each backend: a chain of timers 300 us
 * apart fires on the worker, never before its deadline, and the sleeping worker
 * wakes for each (with nothing else armed it would sleep up to a second per
 * wait) to well under a millisecond: the median lateness of one of three runs
 * must be below 250 us (waits rounded to milliseconds give about 500 us; a run
 * may be spoiled by other processes taking the CPU, hence three).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "px/engine.h"
#include "px_test.h"
#include "px_test_engine.h"

#define STEPS 40
#define STEP_NS 300000u

typedef struct chain {
    px_msg_t msg;
    px_hrtimer_t timer;
    px_worker_t *w;
    uint64_t start, deadline;
    uint64_t late[STEPS];
    int fired;
    bool early;
    _Atomic bool done;
} chain_t;

static void on_timer(px_hrtimer_t *t)
{
    chain_t *ch = PX_CONTAINER_OF(t, chain_t, timer);
    uint64_t now = px_now_ns();

    if (now < ch->deadline)
        ch->early = true;
    else
        ch->late[ch->fired] = now - ch->deadline;
    if (px_worker_current() != ch->w)
        ch->early = true; /* wrong thread: reported as a failure below */
    if (++ch->fired == STEPS) {
        atomic_store(&ch->done, true);
        return;
    }
    ch->deadline += STEP_NS;
    if (px_worker_hrtimer_start(ch->w, t, ch->deadline) < 0)
        atomic_store(&ch->done, true);
}

static void start_chain(px_worker_t *w, px_msg_t *m)
{
    chain_t *ch = PX_CONTAINER_OF(m, chain_t, msg);

    ch->w = w;
    ch->start = px_now_ns();
    ch->deadline = ch->start + STEP_NS;
    PX_CHECK_EQ(px_worker_hrtimer_start(w, &ch->timer, ch->deadline), 0);
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_engine_t *e;
    chain_t ch;
    uint64_t t0;

    memset(&ch, 0, sizeof(ch));
    px_hrtimer_init(&ch.timer, on_timer);
    ch.msg.fn = start_chain;
    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return 0;
    PX_CHECK_EQ(px_engine_start(e), 0);
    usleep(20000); /* let the worker go to sleep first */
    t0 = px_now_ns();
    px_worker_post(px_engine_worker(e, 0), &ch.msg);
    while (!atomic_load(&ch.done) && px_now_ns() - t0 < 5000000000u)
        usleep(1000);
    PX_CHECK(atomic_load(&ch.done));
    PX_CHECK_EQ(ch.fired, STEPS);
    PX_CHECK(!ch.early);
    /* Without the wake-up for the earliest precise timer the idle worker would
     * sleep up to the wheel's one-second cap per timer. */
    qsort(ch.late, STEPS, sizeof(ch.late[0]), by_value);
    PX_CHECK_LT(ch.late[STEPS - 1], 200000000u);
    printf("%s: %d timers, lateness median %llu ns, max %llu ns\n", px_engine_backend_name(e),
           ch.fired, (unsigned long long)ch.late[STEPS / 2],
           (unsigned long long)ch.late[STEPS - 1]);
    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    px_engine_destroy(e);
    return ch.late[STEPS / 2];
}

static void check_precise(px_backend_kind_t kind)
{
    uint64_t best = UINT64_MAX;

    for (int i = 0; i < 3 && best >= 250000u; i++) {
        uint64_t median = run(kind); /* once: PX_MIN evaluates twice */
        best = PX_MIN(best, median);
    }
    PX_CHECK_LT(best, 250000u);
}

int main(void)
{
    check_precise(PX_BACKEND_URING);
    check_precise(PX_BACKEND_EPOLL);
    return 0;
}
