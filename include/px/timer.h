/*
 * Per-worker hashed timer wheel with millisecond ticks.
 *
 * Timers are intrusive (embedded in connections and other objects), so starting
 * and stopping never allocates and is O(1). Deadlines beyond one revolution stay
 * in their slot until their round comes. A wheel belongs to one thread at a time.
 *
 * Due timers wait in a list of the wheel itself (not of the advancing call), so
 * that when a callback blocks and another thread takes the wheel over, that
 * thread's advance fires the rest, and the blocked call, once back, finds them
 * gone.
 */
#ifndef PX_TIMER_H
#define PX_TIMER_H

#include "px/common.h"

#define PX_WHEEL_SLOTS 1024 /* power of two */

typedef struct px_timer px_timer_t;
typedef void (*px_timer_cb)(px_timer_t *t);

struct px_timer {
    px_timer_t *_next, *_prev; /* slot list; NULL when not armed */
    uint64_t _deadline;        /* absolute, in ms on the wheel's clock */
    px_timer_cb cb;
};

typedef struct px_wheel {
    uint64_t now;                      /* last time passed to px_wheel_advance, ms */
    size_t count;                      /* armed timers */
    px_timer_t _due;                   /* due, being fired by px_wheel_advance (sentinel) */
    px_timer_t _slots[PX_WHEEL_SLOTS]; /* list heads (sentinels) */
    /* Bit i set when slot i holds a timer: finding the next timer costs 16 words, not 1,023 lists.
     */
    uint64_t _occupied[PX_WHEEL_SLOTS / 64];
} px_wheel_t;

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t px_now_ms(void);

/* Prepare an empty wheel whose clock reads now_ms. */
void px_wheel_init(px_wheel_t *w, uint64_t now_ms);

/* Prepare a timer (not armed). */
void px_timer_init(px_timer_t *t, px_timer_cb cb);

/* Arm t to fire delay_ms after w->now (re-arms if already armed). */
void px_timer_start(px_wheel_t *w, px_timer_t *t, uint64_t delay_ms);

/* Disarm t; harmless when it is not armed. */
void px_timer_stop(px_wheel_t *w, px_timer_t *t);

static inline bool px_timer_armed(const px_timer_t *t)
{
    return t->_next != NULL;
}

/* Milliseconds from w->now until the earliest slot that holds a timer, capped at
 * cap_ms; cap_ms when nothing is armed; 0 while due timers wait to be fired. May be early (a slot
 * may hold timers of a later round), never late: the caller sleeps at most this long. */
uint64_t px_wheel_timeout(const px_wheel_t *w, uint64_t cap_ms);

/* Move the clock to now_ms and fire, in deadline-slot order, every timer whose
 * deadline is <= now_ms. A callback may start or stop any timer, itself included.
 * Returns how many fired. */
size_t px_wheel_advance(px_wheel_t *w, uint64_t now_ms);

#endif
