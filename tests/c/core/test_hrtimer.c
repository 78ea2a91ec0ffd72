/*
 * Checks the precise-timer heap: deadline order with ties in arming order, stop
 * and re-arm anywhere in the heap, callbacks that re-arm themselves for a passed
 * deadline (fired at the next call, not in a loop), callbacks that stop other
 * due timers, and 50,000 random timers that each fire in the first call that
 * reaches their deadline, in order, never earlier.
 */
#include <time.h>

#include "px/hrtimer.h"
#include "px/timer.h"
#include "px_test.h"

struct ht {
    px_hrtimer_t timer;
    px_hrtimers_t *q;
    uint64_t deadline; /* what the test expects */
    int fires;
    int id;
    struct ht *victim; /* stop this one when firing */
    bool rearm_now;    /* re-arm itself for a deadline already passed */
};

static int order[64];
static int norder;
static uint64_t fire_now; /* now_ns of the current fire call */
static uint64_t last_deadline;

static void on_fire(px_hrtimer_t *t)
{
    struct ht *x = PX_CONTAINER_OF(t, struct ht, timer);

    PX_CHECK(!px_hrtimer_armed(t));
    PX_CHECK_LE(x->deadline, fire_now);
    PX_CHECK_GE(x->deadline, last_deadline); /* earliest first */
    last_deadline = x->deadline;
    x->fires++;
    if (norder < (int)PX_ARRAY_SIZE(order))
        order[norder++] = x->id;
    if (x->victim != NULL)
        px_hrtimer_stop(x->q, &x->victim->timer);
    if (x->rearm_now) {
        x->rearm_now = false;
        x->deadline = fire_now - 1;
        PX_CHECK_EQ(px_hrtimer_start(x->q, t, x->deadline), 0);
    }
}

static void ht_init(struct ht *x, px_hrtimers_t *q, int id)
{
    memset(x, 0, sizeof(*x));
    px_hrtimer_init(&x->timer, on_fire);
    x->q = q;
    x->id = id;
}

static void arm(struct ht *x, uint64_t deadline)
{
    x->deadline = deadline;
    PX_CHECK_EQ(px_hrtimer_start(x->q, &x->timer, deadline), 0);
    PX_CHECK(px_hrtimer_armed(&x->timer));
}

static size_t fire(px_hrtimers_t *q, uint64_t now)
{
    fire_now = now;
    last_deadline = 0;
    norder = 0;
    return px_hrtimers_fire(q, now);
}

static void test_order_and_ties(void)
{
    px_hrtimers_t q;
    struct ht t[6];
    uint64_t deadlines[6] = {500, 100, 300, 100, 200, 100};
    int want[6] = {1, 3, 5, 4, 2, 0}; /* ties keep their arming order */

    px_hrtimers_init(&q);
    PX_CHECK_EQ(px_hrtimers_next(&q), UINT64_MAX);
    for (int i = 0; i < 6; i++) {
        ht_init(&t[i], &q, i);
        arm(&t[i], deadlines[i]);
    }
    PX_CHECK_EQ(q.count, 6);
    PX_CHECK_EQ(px_hrtimers_next(&q), 100);
    PX_CHECK_EQ(fire(&q, 99), 0);
    PX_CHECK_EQ(fire(&q, 1000), 6);
    for (int i = 0; i < 6; i++)
        PX_CHECK_EQ(order[i], want[i]);
    PX_CHECK_EQ(q.count, 0);
    PX_CHECK_EQ(px_hrtimers_next(&q), UINT64_MAX);
    px_hrtimers_destroy(&q);
}

static void test_stop_and_rearm(void)
{
    px_hrtimers_t q;
    struct ht t[40];

    px_hrtimers_init(&q);
    for (int i = 0; i < 40; i++) {
        ht_init(&t[i], &q, i);
        arm(&t[i], 1000 + (uint64_t)((i * 7) % 40) * 10);
    }
    /* Stop every third one wherever it sits; stopping twice is harmless. */
    for (int i = 0; i < 40; i += 3) {
        px_hrtimer_stop(&q, &t[i].timer);
        px_hrtimer_stop(&q, &t[i].timer);
        PX_CHECK(!px_hrtimer_armed(&t[i].timer));
    }
    /* Re-arm one that is armed: it moves, it is not duplicated. */
    arm(&t[1], 5);
    PX_CHECK_EQ(px_hrtimers_next(&q), 5);
    PX_CHECK_EQ(fire(&q, 5), 1);
    PX_CHECK_EQ(order[0], 1);
    PX_CHECK_EQ(fire(&q, (uint64_t)1 << 62), 40 - 14 - 1);
    for (int i = 0; i < 40; i++)
        PX_CHECK_EQ(t[i].fires, i % 3 == 0 ? 0 : 1);
    px_hrtimers_destroy(&q);
}

static void test_callbacks(void)
{
    px_hrtimers_t q;
    struct ht a, b, c;

    px_hrtimers_init(&q);
    ht_init(&a, &q, 1);
    ht_init(&b, &q, 2);
    ht_init(&c, &q, 3);
    /* a re-arms itself for the past: not again in this call, but in the next. */
    a.rearm_now = true;
    arm(&a, 10);
    /* b stops c, which is due too. */
    b.victim = &c;
    arm(&b, 20);
    arm(&c, 30);
    PX_CHECK_EQ(fire(&q, 100), 2);
    PX_CHECK_EQ(a.fires, 1);
    PX_CHECK_EQ(b.fires, 1);
    PX_CHECK_EQ(c.fires, 0);
    PX_CHECK(px_hrtimer_armed(&a.timer));
    PX_CHECK_EQ(px_hrtimers_next(&q), 99);
    PX_CHECK_EQ(fire(&q, 100), 1);
    PX_CHECK_EQ(a.fires, 2);
    PX_CHECK_EQ(q.count, 0);
    px_hrtimers_destroy(&q);
}

static uint64_t rnd(void)
{
    return ((uint64_t)rand() << 31) ^ (uint64_t)rand();
}

/* Random deadlines, random stops and re-arms, a clock advancing in random
 * steps: every armed timer fires exactly once, at the first call that reaches
 * its deadline. */
static void test_random(void)
{
    enum {
        N = 50000
    };
    static struct ht t[N];
    px_hrtimers_t q;
    uint64_t now = 0;
    size_t armed = 0, fired = 0;

    px_hrtimers_init(&q);
    for (int i = 0; i < N; i++) {
        ht_init(&t[i], &q, i);
        arm(&t[i], rnd() % 10000000u);
        armed++;
    }
    for (int i = 0; i < N; i += 5) {
        if (i % 10 == 0) {
            px_hrtimer_stop(&q, &t[i].timer);
            t[i].deadline = UINT64_MAX;
            armed--;
        } else {
            arm(&t[i], rnd() % 10000000u);
        }
    }
    while (q.count > 0) {
        now += rnd() % 20000u;
        fired += fire(&q, now);
        for (int i = 0; i < N; i += 997) {
            if (t[i].deadline <= now)
                PX_CHECK_EQ(t[i].fires, 1);
            else
                PX_CHECK_EQ(t[i].fires, 0);
        }
    }
    PX_CHECK_EQ(fired, armed);
    for (int i = 0; i < N; i++)
        PX_CHECK_EQ(t[i].fires, t[i].deadline == UINT64_MAX ? 0 : 1);
    px_hrtimers_destroy(&q);
}

static void test_clock(void)
{
    uint64_t a = px_now_ns(), ms = px_now_ms(), b = px_now_ns();

    PX_CHECK_LE(a, b);
    /* Both read CLOCK_MONOTONIC: the millisecond reading lies between. */
    PX_CHECK_LE(a / 1000000u, ms);
    PX_CHECK_LE(ms, b / 1000000u);
}

int main(void)
{
    srand(7);
    test_order_and_ties();
    test_stop_and_rearm();
    test_callbacks();
    test_random();
    test_clock();
    printf("hrtimer: ok\n");
    return 0;
}
