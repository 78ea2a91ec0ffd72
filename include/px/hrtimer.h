/*
 * Precise timers: absolute deadlines in nanoseconds of CLOCK_MONOTONIC, kept in
 * a binary min-heap.
 *
 * The timer wheel (px/timer.h) ticks in milliseconds, which is right for idle
 * timeouts and deadlines but too coarse to pace work to the microsecond (a load
 * generator sending requests at their scheduled instants). A worker keeps one
 * heap of these next to its wheel and cuts its sleep short for the earliest.
 *
 * Timers are intrusive; the heap's array of pointers grows on demand, so
 * starting a timer may fail with -ENOMEM; stopping never fails. A heap belongs to
 * one thread at a time.
 */
#ifndef PX_HRTIMER_H
#define PX_HRTIMER_H

#include "px/clock.h" /* px_now_ns(), the clock of the deadlines */
#include "px/common.h"

typedef struct px_hrtimer px_hrtimer_t;
typedef void (*px_hrtimer_cb)(px_hrtimer_t *t);

struct px_hrtimer {
    uint64_t _deadline; /* ns, CLOCK_MONOTONIC */
    uint64_t _seq;      /* arming order: what a callback arms waits for the next fire */
    size_t _index;      /* position in the heap; SIZE_MAX when not armed */
    px_hrtimer_cb cb;
};

typedef struct px_hrtimers {
    px_hrtimer_t **_heap;
    size_t count; /* armed timers */
    size_t _cap;
    uint64_t _seq;
} px_hrtimers_t;

/* Prepare an empty heap (allocates nothing yet). */
void px_hrtimers_init(px_hrtimers_t *q);

/* Release the heap's array; timers still armed are forgotten (not fired), and
 * must not be stopped afterwards. */
void px_hrtimers_destroy(px_hrtimers_t *q);

/* Prepare a timer (not armed). */
void px_hrtimer_init(px_hrtimer_t *t, px_hrtimer_cb cb);

/* Arm t for the absolute time deadline_ns (re-arms if armed). A deadline already
 * passed fires at the next px_hrtimers_fire. 0, or -ENOMEM (t is then not armed). */
int px_hrtimer_start(px_hrtimers_t *q, px_hrtimer_t *t, uint64_t deadline_ns);

/* Disarm t; harmless when it is not armed. */
void px_hrtimer_stop(px_hrtimers_t *q, px_hrtimer_t *t);

static inline bool px_hrtimer_armed(const px_hrtimer_t *t)
{
    return t->_index != SIZE_MAX;
}

/* The earliest armed deadline, or UINT64_MAX when nothing is armed. */
uint64_t px_hrtimers_next(const px_hrtimers_t *q);

/* Fire, earliest first, the timers due at now_ns (deadline <= now_ns) that were
 * armed before this call. A callback may start or stop any timer, itself
 * included; a timer it arms for a passed deadline fires at the next call, never
 * in this one, so a callback that re-arms itself cannot spin. Returns how many
 * fired. */
size_t px_hrtimers_fire(px_hrtimers_t *q, uint64_t now_ns);

#endif
