/*
 * Checks px_worker_submit and px_worker_wheel on each backend: submitted
 * messages run on the worker they were given to, in order, also when queued
 * before the engine starts; a message can start a timer on its worker's wheel,
 * which fires there no earlier than asked; while other threads keep submitting
 * and the engine shuts down, every accepted message runs exactly once and every
 * refused one (-ESHUTDOWN) never runs; after the join everything is refused.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "px/engine.h"
#include "px/timer.h"
#include "px_test.h"
#include "px_test_engine.h"

#define EARLY 10     /* messages queued before the engine starts */
#define SUBMITTERS 3 /* threads submitting while the engine shuts down */
#define PER_THREAD 20000

typedef struct probe {
    px_msg_t msg;
    px_worker_t *expected;
    int seq;
    _Atomic int runs;
} probe_t;

static _Atomic int order_violations;
static int last_seq = -1; /* only touched on worker 0 */

static void probe_fn(px_worker_t *w, px_msg_t *m)
{
    probe_t *p = PX_CONTAINER_OF(m, probe_t, msg);

    PX_CHECK(w == p->expected);
    PX_CHECK(px_worker_current() == w);
    if (p->seq != last_seq + 1)
        atomic_fetch_add(&order_violations, 1);
    last_seq = p->seq;
    atomic_fetch_add(&p->runs, 1);
}

/* A message that arms a timer on the wheel of the worker running it. */
typedef struct timed {
    px_msg_t msg;
    px_timer_t timer;
    px_worker_t *armed_on;
    uint64_t started_ms;
    _Atomic uint64_t fired_ms;
    _Atomic(px_worker_t *) fired_on;
} timed_t;

static void timed_fire(px_timer_t *t)
{
    timed_t *x = PX_CONTAINER_OF(t, timed_t, timer);

    atomic_store(&x->fired_on, px_worker_current());
    atomic_store(&x->fired_ms, px_now_ms());
}

static void timed_arm(px_worker_t *w, px_msg_t *m)
{
    timed_t *x = PX_CONTAINER_OF(m, timed_t, msg);

    x->armed_on = w;
    x->started_ms = px_now_ms();
    px_timer_init(&x->timer, timed_fire);
    px_timer_start(px_worker_wheel(w), &x->timer, 30);
}

/* Messages of the shutdown race: each counts its own runs. */
typedef struct counted {
    px_msg_t msg;
    _Atomic int runs;
    int accepted;
} counted_t;

static void counted_fn(px_worker_t *w, px_msg_t *m)
{
    (void)w;
    atomic_fetch_add(&PX_CONTAINER_OF(m, counted_t, msg)->runs, 1);
}

typedef struct submitter {
    pthread_t thread;
    px_engine_t *e;
    counted_t *msgs;
    _Atomic int *go;
} submitter_t;

static void *submit_many(void *arg)
{
    submitter_t *s = arg;
    int nworkers = px_engine_worker_count(s->e), i;

    while (!atomic_load(s->go))
        ;
    for (i = 0; i < PER_THREAD; i++) {
        counted_t *c = &s->msgs[i];
        c->msg.fn = counted_fn;
        c->accepted = px_worker_submit(px_engine_worker(s->e, i % nworkers), &c->msg);
        PX_CHECK(c->accepted == 0 || c->accepted == -ESHUTDOWN);
    }
    return NULL;
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_engine_t *e;
    px_worker_t *w0;
    probe_t early[EARLY], late;
    timed_t timed = {0};
    submitter_t subs[SUBMITTERS];
    _Atomic int go = 0;
    int i, j, accepted = 0, refused = 0;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    w0 = px_engine_worker(e, 0);
    last_seq = -1;
    atomic_store(&order_violations, 0);

    /* Accepted before the start: queued, run once the worker runs, in order. */
    for (i = 0; i < EARLY; i++) {
        early[i] = (probe_t){.msg.fn = probe_fn, .expected = w0, .seq = i};
        PX_CHECK_EQ(px_worker_submit(w0, &early[i].msg), 0);
    }
    PX_CHECK_EQ(px_worker_backlog(w0), EARLY);
    PX_CHECK_EQ(px_engine_start(e), 0);

    timed.msg.fn = timed_arm;
    PX_CHECK_EQ(px_worker_submit(px_engine_worker(e, 1), &timed.msg), 0);
    PX_WAIT_UNTIL(atomic_load(&timed.fired_ms) != 0, 3000);
    PX_CHECK(atomic_load(&timed.fired_ms) != 0);
    PX_CHECK(timed.armed_on == px_engine_worker(e, 1));
    PX_CHECK(atomic_load(&timed.fired_on) == px_engine_worker(e, 1));
    PX_CHECK_GE(atomic_load(&timed.fired_ms) - timed.started_ms, 30);
    for (i = 0; i < EARLY; i++)
        PX_CHECK_EQ(atomic_load(&early[i].runs), 1);
    PX_CHECK_EQ(atomic_load(&order_violations), 0);
    PX_CHECK_EQ(px_worker_backlog(w0), 0);

    /* Submissions racing the shutdown: accepted means run, exactly once. */
    for (i = 0; i < SUBMITTERS; i++) {
        subs[i] = (submitter_t){.e = e, .go = &go};
        subs[i].msgs = calloc(PER_THREAD, sizeof(counted_t));
        PX_CHECK(subs[i].msgs != NULL);
        PX_CHECK_EQ(pthread_create(&subs[i].thread, NULL, submit_many, &subs[i]), 0);
    }
    atomic_store(&go, 1);
    usleep(1000);
    px_engine_shutdown(e, 1000);
    for (i = 0; i < SUBMITTERS; i++)
        pthread_join(subs[i].thread, NULL);
    px_engine_join(e);
    PX_CHECK(px_engine_finished(e));
    for (i = 0; i < SUBMITTERS; i++) {
        for (j = 0; j < PER_THREAD; j++) {
            counted_t *c = &subs[i].msgs[j];
            if (c->accepted == 0) {
                accepted++;
                PX_CHECK_EQ(atomic_load(&c->runs), 1);
            } else {
                refused++;
                PX_CHECK_EQ(atomic_load(&c->runs), 0);
            }
        }
        free(subs[i].msgs);
    }
    PX_CHECK_EQ(accepted + refused, SUBMITTERS * PER_THREAD);

    /* After the join nothing is accepted, and the message stays the caller's. */
    late = (probe_t){.msg.fn = probe_fn, .expected = w0, .seq = -5};
    PX_CHECK_EQ(px_worker_submit(w0, &late.msg), -ESHUTDOWN);
    PX_CHECK_EQ(atomic_load(&late.runs), 0);
    printf("%s: ok (%d accepted, %d refused during the shutdown race)\n", px_engine_backend_name(e),
           accepted, refused);
    px_engine_destroy(e);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
