/*
 * Checks the hot-path clock: before calibration ticks are nanoseconds; after
 * it, an interval timed in ticks agrees with CLOCK_MONOTONIC (to 1 % plus the
 * jitter of the reads), whichever source the kernel's choice led to; ticks
 * never go back on one thread; a negative difference counts as 0.
 */
#include <time.h>

#include "px/clock.h"
#include "px_test.h"

static void check_interval(unsigned ms)
{
    struct timespec pause = {0, (long)ms * 1000000L};
    uint64_t t0 = px_ticks(), n0 = px_now_ns(), t1, n1, ticks_ns, wall, err;

    nanosleep(&pause, NULL);
    t1 = px_ticks();
    n1 = px_now_ns();
    ticks_ns = px_ticks_ns((int64_t)(t1 - t0));
    wall = n1 - n0;
    err = ticks_ns > wall ? ticks_ns - wall : wall - ticks_ns;
    if (err > wall / 100 + 200000)
        PX_FAIL_("%u ms: ticks say %" PRIu64 " ns, the clock %" PRIu64 " ns", ms, ticks_ns, wall);
}

int main(void)
{
    uint64_t a, b;
    int i;

    PX_CHECK(!px_clock_uses_tsc());
    a = px_ticks();
    b = px_now_ns();
    PX_CHECK(b >= a && b - a < 1000000000u); /* ticks are ns before calibration */
    PX_CHECK_EQ(px_ticks_ns(1234), 1234);

    px_clock_init();
    px_clock_init(); /* once per process */
    printf("clock: %s\n", px_clock_uses_tsc() ? "TSC" : "CLOCK_MONOTONIC");
    check_interval(20);
    check_interval(120);
    PX_CHECK_EQ(px_ticks_ns(-5), 0);
    PX_CHECK_EQ(px_ticks_ns(0), 0);
    a = px_ticks();
    for (i = 0; i < 1000000; i++) {
        b = px_ticks();
        PX_CHECK(b >= a);
        a = b;
    }
    return 0;
}
