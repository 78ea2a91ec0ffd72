/*
 * The hot-path clock: whether to use the TSC, and its rate. The kernel already
 * decided whether the TSC can be trusted (it keeps time with it only when it is
 * invariant and synchronised), so we follow its choice instead of guessing from
 * CPU flags; the rate is measured against CLOCK_MONOTONIC over a few
 * milliseconds, each end read as a (tsc, clock, tsc) bracket so that a
 * preemption between the reads cannot skew it.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "px/clock.h"

#define CALIBRATION_READS 16 /* paired reads, the tightest bracket wins */
#define CALIBRATION_MS 5     /* time between the two paired reads */

_Atomic bool px__clock_tsc;
_Atomic uint64_t px__clock_mult;

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;

uint64_t px_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * PX_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

bool px_clock_uses_tsc(void)
{
    return atomic_load(&px__clock_tsc);
}

#if defined(__x86_64__)
static bool kernel_keeps_time_with_tsc(void)
{
    char name[32] = "";
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");

    if (f == NULL)
        return false;
    if (fgets(name, sizeof(name), f) == NULL)
        name[0] = '\0';
    fclose(f);
    return strncmp(name, "tsc\n", 4) == 0 || strcmp(name, "tsc") == 0;
}

/* A clock reading and the TSC at that moment, from the tightest of a few brackets. */
static void paired_read(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    int i;

    for (i = 0; i < CALIBRATION_READS; i++) {
        uint64_t a = __rdtsc(), t = px_now_ns(), b = __rdtsc();
        if (b - a < best) {
            best = b - a;
            *tsc = a + (b - a) / 2;
            *ns = t;
        }
    }
}

static void calibrate(void)
{
    struct timespec pause = {0, CALIBRATION_MS * (long)PX_NS_PER_MS};
    uint64_t tsc0 = 0, ns0 = 0, tsc1 = 0, ns1 = 0;

    if (!kernel_keeps_time_with_tsc())
        return;
    paired_read(&tsc0, &ns0);
    nanosleep(&pause, NULL);
    paired_read(&tsc1, &ns1);
    if (tsc1 <= tsc0 || ns1 <= ns0)
        return;
    atomic_store(&px__clock_mult,
                 (uint64_t)(((unsigned __int128)(ns1 - ns0) << 32) / (tsc1 - tsc0)));
    atomic_store(&px__clock_tsc, true);
}
#else
static void calibrate(void) {}
#endif

void px_clock_init(void)
{
    pthread_once(&clock_once, calibrate);
}
