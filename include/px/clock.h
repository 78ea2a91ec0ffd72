/*
 * Clocks for timing on hot paths. px_ticks() reads the CPU's time-stamp counter
 * where the kernel itself keeps time with it (its clocksource is "tsc": the
 * counter is invariant and synchronised across CPUs), which costs a third of a
 * clock_gettime() call; elsewhere it is CLOCK_MONOTONIC in nanoseconds.
 * px_ticks_ns() turns a difference of ticks into nanoseconds.
 *
 * px_clock_init() decides and calibrates once per process (a few milliseconds
 * the first time; later calls return at once; any thread). Before it has run,
 * ticks are nanoseconds.
 */
#ifndef PX_CLOCK_H
#define PX_CLOCK_H

#include <stdatomic.h>
#include "px/common.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#define PX_NS_PER_SEC 1000000000u
#define PX_NS_PER_MS 1000000u
#define PX_MS_PER_SEC 1000u

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t px_now_ns(void);

void px_clock_init(void);

/* True once px_clock_init chose the TSC. */
bool px_clock_uses_tsc(void);

/* Internal state read by the inline functions below. */
extern _Atomic bool px__clock_tsc;
extern _Atomic uint64_t px__clock_mult; /* ns per tick, 32.32 fixed point */

static inline uint64_t px_ticks(void)
{
#if defined(__x86_64__)
    if (PX_LIKELY(atomic_load_explicit(&px__clock_tsc, memory_order_relaxed)))
        return __rdtsc();
#endif
    return px_now_ns();
}

/* Nanoseconds in a difference of two px_ticks() values (taken after the same
 * px_clock_init). A negative difference (counters a few cycles apart on two
 * CPUs) counts as 0. */
static inline uint64_t px_ticks_ns(int64_t delta)
{
    if (delta <= 0)
        return 0;
    if (!atomic_load_explicit(&px__clock_tsc, memory_order_relaxed))
        return (uint64_t)delta;
    return (uint64_t)(((unsigned __int128)(uint64_t)delta *
                       atomic_load_explicit(&px__clock_mult, memory_order_relaxed)) >>
                      32);
}

#endif
