/*
 * Checks the timer wheel: firing order, stop and re-arm, deadlines many
 * revolutions away, callbacks that re-arm themselves or stop other due timers,
 * big jumps of the clock, the sleep hint, and 100,000 random timers that must
 * each fire in the first advance that reaches their deadline, never earlier.
 */
#include <time.h>

#include "px/timer.h"
#include "px_test.h"

#define T0 1000000u /* arbitrary start, not a multiple of the wheel size */

struct tt {
    px_timer_t timer;
    px_wheel_t *w;
    uint64_t deadline; /* what the test expects */
    uint64_t fired_at; /* w->now when it last fired */
    int fires;
    int id;
    uint64_t period;      /* periodic: re-arm with this delay */
    struct tt *victim;    /* stop this one when firing */
    struct tt *rearm;     /* re-arm this one when firing... */
    uint64_t rearm_delay; /* ...with this delay */
};

static int order[64];
static int norder;
static uint64_t prev_now; /* w->now before the current advance */

static struct tt *tt_of(px_timer_t *t)
{
    return PX_CONTAINER_OF(t, struct tt, timer);
}

static void on_fire(px_timer_t *t)
{
    struct tt *x = tt_of(t);

    PX_CHECK(!px_timer_armed(t));
    x->fires++;
    x->fired_at = x->w->now;
    if (norder < (int)PX_ARRAY_SIZE(order))
        order[norder++] = x->id;
    if (x->victim != NULL)
        px_timer_stop(x->w, &x->victim->timer);
    if (x->rearm != NULL)
        px_timer_start(x->w, &x->rearm->timer, x->rearm_delay);
    if (x->period != 0)
        px_timer_start(x->w, t, x->period);
}

static void tt_init(struct tt *x, px_wheel_t *w, int id)
{
    memset(x, 0, sizeof(*x));
    px_timer_init(&x->timer, on_fire);
    x->w = w;
    x->id = id;
}

static void tt_start(struct tt *x, uint64_t delay)
{
    px_timer_start(x->w, &x->timer, delay);
    x->deadline = x->w->now + delay;
}

static void test_order(void)
{
    static px_wheel_t w;
    struct tt x[6];
    const uint64_t delay[6] = {5, 1, 3, 0, 1, 1024};
    const int want[6] = {3, 1, 4, 2, 0, 5};

    px_wheel_init(&w, T0);
    for (int i = 0; i < 6; i++) {
        tt_init(&x[i], &w, i);
        PX_CHECK(!px_timer_armed(&x[i].timer));
        tt_start(&x[i], delay[i]);
        PX_CHECK(px_timer_armed(&x[i].timer));
    }
    PX_CHECK_EQ(w.count, 6);
    norder = 0;
    PX_CHECK_EQ(px_wheel_advance(&w, T0), 1); /* no delay: due right away */
    PX_CHECK_EQ(px_wheel_advance(&w, T0), 0);
    for (uint64_t now = T0 + 1; now <= T0 + 2000; now++)
        px_wheel_advance(&w, now);
    PX_CHECK_EQ(norder, 6);
    for (int i = 0; i < 6; i++) {
        PX_CHECK_EQ(order[i], want[i]);
        PX_CHECK_EQ(x[i].fires, 1);
        PX_CHECK_EQ(x[i].fired_at, x[i].deadline);
        PX_CHECK(!px_timer_armed(&x[i].timer));
    }
    PX_CHECK_EQ(w.count, 0);

    /* One advance over several deadlines fires them in deadline order. */
    for (int i = 0; i < 6; i++)
        tt_start(&x[i], delay[i]);
    norder = 0;
    PX_CHECK_EQ(px_wheel_advance(&w, w.now + 10), 5);
    for (int i = 0; i < 5; i++)
        PX_CHECK_EQ(order[i], want[i]);
    PX_CHECK_EQ(w.count, 1);
    PX_CHECK_EQ(px_wheel_advance(&w, x[5].deadline), 1);
    PX_CHECK_EQ(x[5].fired_at, x[5].deadline);
}

static void test_stop_rearm(void)
{
    static px_wheel_t w;
    struct tt a, b, c;

    px_wheel_init(&w, 5);
    tt_init(&a, &w, 0);
    tt_init(&b, &w, 1);
    tt_init(&c, &w, 2);
    px_timer_stop(&w, &c.timer); /* never armed: harmless */
    PX_CHECK_EQ(w.count, 0);

    tt_start(&a, 10);
    tt_start(&b, 10);
    px_timer_stop(&w, &a.timer);
    px_timer_stop(&w, &a.timer); /* twice: harmless */
    PX_CHECK(!px_timer_armed(&a.timer));
    PX_CHECK_EQ(w.count, 1);
    PX_CHECK_EQ(px_wheel_advance(&w, 100), 1);
    PX_CHECK_EQ(a.fires, 0);
    PX_CHECK_EQ(b.fires, 1);

    /* Re-arm later, then earlier, then across a revolution. */
    tt_start(&a, 10);
    tt_start(&a, 50);
    PX_CHECK_EQ(w.count, 1);
    for (uint64_t now = 101; now <= 200; now++)
        px_wheel_advance(&w, now);
    PX_CHECK_EQ(a.fires, 1);
    PX_CHECK_EQ(a.fired_at, 150);
    tt_start(&a, 50);
    tt_start(&a, 3);
    for (uint64_t now = 201; now <= 300; now++)
        px_wheel_advance(&w, now);
    PX_CHECK_EQ(a.fires, 2);
    PX_CHECK_EQ(a.fired_at, 203);
    tt_start(&a, 7);
    tt_start(&a, 7 + PX_WHEEL_SLOTS); /* same slot, next round */
    for (uint64_t now = 301; now <= 300 + 3 * PX_WHEEL_SLOTS; now++)
        px_wheel_advance(&w, now);
    PX_CHECK_EQ(a.fires, 3);
    PX_CHECK_EQ(a.fired_at, 307 + PX_WHEEL_SLOTS);
    PX_CHECK_EQ(w.count, 0);
}

static void test_far(void)
{
    static px_wheel_t w;
    struct tt x[5];
    const uint64_t delay[5] = {5000, 100000, PX_WHEEL_SLOTS, 2 * PX_WHEEL_SLOTS,
                               2 * PX_WHEEL_SLOTS - 1};

    px_wheel_init(&w, T0);
    for (int i = 0; i < 5; i++) {
        tt_init(&x[i], &w, i);
        tt_start(&x[i], delay[i]);
    }
    for (uint64_t now = T0 + 1; now <= T0 + 100001; now++) {
        px_wheel_advance(&w, now);
        for (int i = 0; i < 5; i++)
            PX_CHECK_EQ(x[i].fires, now >= x[i].deadline);
    }
    for (int i = 0; i < 5; i++)
        PX_CHECK_EQ(x[i].fired_at, x[i].deadline);
    PX_CHECK_EQ(w.count, 0);
}

static void test_periodic(void)
{
    static px_wheel_t w;
    struct tt p;

    px_wheel_init(&w, 0);
    tt_init(&p, &w, 0);
    p.period = 7;
    tt_start(&p, 7);
    for (uint64_t now = 1; now <= 700; now++) {
        px_wheel_advance(&w, now);
        PX_CHECK_EQ(p.fires, (int)(now / 7));
        if (now % 7 == 0)
            PX_CHECK_EQ(p.fired_at, now);
    }
    PX_CHECK(px_timer_armed(&p.timer));
    PX_CHECK_EQ(w.count, 1);
    /* A re-armed timer is relative to the new time, so it fires at most once
     * per advance, even across a big jump. */
    PX_CHECK_EQ(px_wheel_advance(&w, 5000), 1);
    PX_CHECK_EQ(p.fires, 101);
    PX_CHECK_EQ(px_wheel_advance(&w, 5006), 0);
    PX_CHECK_EQ(px_wheel_advance(&w, 5007), 1);

    /* Re-armed with no delay from its own callback: due again at once, yet
     * it fires once per advance (even one that does not move the clock) and
     * never loops inside one. */
    p.period = 0;
    p.rearm = &p;
    p.rearm_delay = 0;
    tt_start(&p, 0);
    PX_CHECK_EQ(px_wheel_advance(&w, 5007), 1);
    PX_CHECK_EQ(px_wheel_advance(&w, 5007), 1);
    PX_CHECK_EQ(px_wheel_advance(&w, 6000), 1);
    PX_CHECK_EQ(p.fires, 105);
    PX_CHECK(px_timer_armed(&p.timer));
    px_timer_stop(&w, &p.timer);
    PX_CHECK_EQ(w.count, 0);
}

static void test_callback_stops_and_rearms(void)
{
    static px_wheel_t w;
    struct tt a, b, c, d;

    /* Same tick: a fires first (started first) and stops b. */
    px_wheel_init(&w, 0);
    tt_init(&a, &w, 0);
    tt_init(&b, &w, 1);
    a.victim = &b;
    tt_start(&a, 10);
    tt_start(&b, 10);
    PX_CHECK_EQ(px_wheel_advance(&w, 10), 1);
    PX_CHECK_EQ(a.fires, 1);
    PX_CHECK_EQ(b.fires, 0);
    PX_CHECK(!px_timer_armed(&b.timer));
    PX_CHECK_EQ(w.count, 0);

    /* Different ticks, one advance: b is already collected as due when a
     * stops it. */
    tt_start(&a, 5);
    tt_start(&b, 8);
    PX_CHECK_EQ(px_wheel_advance(&w, 30), 1);
    PX_CHECK_EQ(a.fires, 2);
    PX_CHECK_EQ(b.fires, 0);
    PX_CHECK_EQ(w.count, 0);

    /* Same across a jump of several revolutions. */
    tt_start(&a, 5);
    tt_start(&b, 3000);
    PX_CHECK_EQ(px_wheel_advance(&w, 50000), 1);
    PX_CHECK_EQ(b.fires, 0);
    PX_CHECK_EQ(w.count, 0);

    /* a re-arms the due c for later (c fires then, not now), and stops
     * itself, which it may do although it is already disarmed. */
    tt_init(&c, &w, 2);
    tt_init(&d, &w, 3);
    a.victim = &a;
    a.rearm = &c;
    a.rearm_delay = 20;
    tt_start(&a, 1);
    tt_start(&c, 2);
    tt_start(&d, 3);
    PX_CHECK_EQ(px_wheel_advance(&w, w.now + 5), 2); /* a and d */
    PX_CHECK_EQ(c.fires, 0);
    PX_CHECK_EQ(d.fires, 1);
    PX_CHECK(!px_timer_armed(&a.timer));
    PX_CHECK(px_timer_armed(&c.timer));
    PX_CHECK_EQ(w.count, 1);
    PX_CHECK_EQ(px_wheel_advance(&w, w.now + 19), 0);
    PX_CHECK_EQ(px_wheel_advance(&w, w.now + 1), 1);
    PX_CHECK_EQ(c.fires, 1);
    PX_CHECK_EQ(w.count, 0);
}

static void test_jumps(void)
{
    static px_wheel_t w;
    struct tt x[9];
    const uint64_t delay[9] = {1, 10, 500, 1023, 1024, 1025, 5000, 1999999, 3000000};

    px_wheel_init(&w, T0);
    for (int i = 0; i < 9; i++) {
        tt_init(&x[i], &w, i);
        tt_start(&x[i], delay[i]);
    }
    PX_CHECK_EQ(px_wheel_advance(&w, T0 + 2000000), 8);
    for (int i = 0; i < 8; i++) {
        PX_CHECK_EQ(x[i].fires, 1);
        PX_CHECK_EQ(x[i].fired_at, T0 + 2000000);
    }
    PX_CHECK_EQ(x[8].fires, 0);
    PX_CHECK_EQ(w.count, 1);
    PX_CHECK_EQ(px_wheel_advance(&w, T0 + 2999999), 0);
    PX_CHECK_EQ(px_wheel_advance(&w, T0 + 3000000), 1);
    PX_CHECK_EQ(x[8].fired_at, x[8].deadline);

    /* Jumps of exactly one revolution, give or take one tick. */
    for (uint64_t jump = PX_WHEEL_SLOTS - 2; jump <= PX_WHEEL_SLOTS + 2; jump++) {
        for (int i = 0; i < 9; i++)
            tt_start(&x[i], (uint64_t)i * 200 % (jump + 2)); /* some in */
        for (int i = 0; i < 9; i++)
            x[i].fires = 0;
        px_wheel_advance(&w, w.now + jump);
        for (int i = 0; i < 9; i++)
            PX_CHECK_EQ(x[i].fires, x[i].deadline <= w.now);
        px_wheel_advance(&w, w.now + 2);
        PX_CHECK_EQ(w.count, 0);
    }

    /* The clock never runs backwards; a delay-0 timer still fires. */
    tt_start(&x[0], 0);
    PX_CHECK_EQ(px_wheel_advance(&w, 3), 1);
    PX_CHECK_EQ(x[0].fired_at, x[0].deadline);
    PX_CHECK_EQ(w.now, x[0].deadline);
}

/* The minimum deadline, for checking the sleep hint. */
static uint64_t earliest(struct tt *x, size_t n)
{
    uint64_t min = UINT64_MAX;

    for (size_t i = 0; i < n; i++)
        if (px_timer_armed(&x[i].timer) && x[i].deadline < min)
            min = x[i].deadline;
    return min;
}

static uint32_t rng_state = 2463534242u;

static uint32_t rnd(void)
{
    return px_test_rand32(&rng_state);
}

/* What the hint must be, slot by slot: 0 for a due timer, else the distance
 * to the nearest occupied slot, a full revolution for the current slot's later
 * rounds; capped. Catches a hint that is early without cause. */
static uint64_t expected_timeout(const px_wheel_t *w, struct tt *x, size_t n, uint64_t cap)
{
    uint64_t best = UINT64_MAX;

    if (cap == 0 || w->count == 0)
        return cap;
    for (size_t i = 0; i < n; i++) {
        uint64_t d;

        if (!px_timer_armed(&x[i].timer))
            continue;
        d = x[i].deadline <= w->now ? 0 : (x[i].deadline - w->now) % PX_WHEEL_SLOTS;
        if (d == 0 && x[i].deadline > w->now)
            d = PX_WHEEL_SLOTS;
        best = PX_MIN(best, d);
    }
    return PX_MIN(best, cap);
}

static void check_timeout(px_wheel_t *w, struct tt *x, size_t n, uint64_t cap)
{
    uint64_t min = earliest(x, n), got = px_wheel_timeout(w, cap);

    PX_CHECK_LE(got, cap);
    if (min != UINT64_MAX)
        PX_CHECK_LE(got, min - w->now);
    PX_CHECK_EQ(got, expected_timeout(w, x, n, cap));
}

static void test_timeout(void)
{
    static px_wheel_t w;
    static struct tt x[64];

    px_wheel_init(&w, T0);
    PX_CHECK_EQ(px_wheel_timeout(&w, 250), 250); /* nothing armed */
    PX_CHECK_EQ(px_wheel_timeout(&w, 0), 0);
    for (int i = 0; i < 64; i++)
        tt_init(&x[i], &w, i);

    tt_start(&x[0], 10);
    PX_CHECK_EQ(px_wheel_timeout(&w, 1000), 10);
    PX_CHECK_EQ(px_wheel_timeout(&w, 4), 4);
    tt_start(&x[0], 0);
    PX_CHECK_EQ(px_wheel_timeout(&w, 1000), 0);
    /* Later rounds may make it early, never late. */
    tt_start(&x[0], 5000);
    PX_CHECK_LE(px_wheel_timeout(&w, 100000), 5000);
    PX_CHECK_GT(px_wheel_timeout(&w, 100000), 0);
    tt_start(&x[0], PX_WHEEL_SLOTS); /* only the current slot, next round */
    PX_CHECK_EQ(px_wheel_timeout(&w, 100000), PX_WHEEL_SLOTS);
    tt_start(&x[0], 3 * PX_WHEEL_SLOTS);
    PX_CHECK_EQ(px_wheel_timeout(&w, 100000), PX_WHEEL_SLOTS);
    PX_CHECK_EQ(px_wheel_timeout(&w, 30), 30);
    px_timer_stop(&w, &x[0].timer);

    /* Random sets of timers; sleep for the hint, then advance. */
    for (int round = 0; round < 2000; round++) {
        int i = (int)(rnd() % 64);

        if (rnd() % 4 == 0)
            px_timer_stop(&w, &x[i].timer);
        else
            tt_start(&x[i], rnd() % (rnd() % 2 ? 50 : 20000));
        check_timeout(&w, x, 64, 1000000);
        check_timeout(&w, x, 64, rnd() % 3000);
        px_wheel_advance(&w, w.now + px_wheel_timeout(&w, 1000000));
        check_timeout(&w, x, 64, 1000000);
    }
    /* Sleeping exactly for the hint, again and again, loses no timer. */
    for (int i = 0; i < 64; i++)
        x[i].fires = 0;
    while (w.count > 0) {
        uint64_t before = w.now;

        px_wheel_advance(&w, w.now + px_wheel_timeout(&w, 1000000));
        PX_CHECK_LE(w.now - before, PX_WHEEL_SLOTS);
        for (int i = 0; i < 64; i++)
            if (x[i].fires)
                PX_CHECK_EQ(x[i].fired_at, x[i].deadline);
    }
}

/* 100,000 random timers, some stopped or re-armed on the way. */
#define NRANDOM 100000
#define WINDOW 300000

static void on_fire_random(px_timer_t *t)
{
    struct tt *x = tt_of(t);

    x->fires++;
    x->fired_at = x->w->now;
    /* Never early, and in the first advance that reached the deadline. */
    PX_CHECK_GE(x->w->now, x->deadline);
    PX_CHECK_LT(prev_now, x->deadline);
}

static void random_round(bool one_ms_steps)
{
    static px_wheel_t w;
    static struct tt x[NRANDOM];
    size_t stopped = 0, fired = 0;

    px_wheel_init(&w, T0);
    for (size_t i = 0; i < NRANDOM; i++) {
        tt_init(&x[i], &w, (int)i);
        x[i].timer.cb = on_fire_random;
        /* Mostly spread over the window, some close together. */
        tt_start(&x[i], rnd() % (i % 4 ? WINDOW : 3000) + 1);
    }
    PX_CHECK_EQ(w.count, NRANDOM);
    while (w.count > 0) {
        uint64_t step = one_ms_steps ? 1 : rnd() % 4096 + 1;
        int disturb = one_ms_steps ? rnd() % 8 == 0 : 4;

        /* Disturb a few timers that have not fired yet. */
        for (int k = 0; k < disturb && w.now < T0 + WINDOW; k++) {
            struct tt *y = &x[rnd() % NRANDOM];

            if (!px_timer_armed(&y->timer))
                continue;
            if (rnd() % 2) {
                px_timer_stop(&w, &y->timer);
                stopped++;
            } else {
                tt_start(y, rnd() % 5000 + 1);
            }
        }
        prev_now = w.now;
        fired += px_wheel_advance(&w, w.now + step);
    }
    PX_CHECK_EQ(w.count, 0);
    PX_CHECK_EQ(fired + stopped, NRANDOM);
    for (size_t i = 0; i < NRANDOM; i++) {
        PX_CHECK_LE(x[i].fires, 1);
        if (one_ms_steps && x[i].fires)
            PX_CHECK_EQ(x[i].fired_at, x[i].deadline);
    }
}

static void test_now(void)
{
    uint64_t a = px_now_ms(), b;
    struct timespec ts = {0, 3 * 1000 * 1000};

    nanosleep(&ts, NULL);
    b = px_now_ms();
    PX_CHECK_GE(b, a + 3);
    PX_CHECK_LT(b, a + 60000);
}

int main(void)
{
    test_now();
    test_order();
    test_stop_rearm();
    test_far();
    test_periodic();
    test_callback_stops_and_rearms();
    test_jumps();
    test_timeout();
    random_round(true);
    random_round(false);
    printf("ok\n");
    return 0;
}
