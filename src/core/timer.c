/*
 * Hashed timer wheel: a timer lives in slot (deadline % PX_WHEEL_SLOTS), so a
 * slot may hold timers of several revolutions; each is fired only once the
 * wheel's clock reaches its own deadline.
 */
#include <string.h>
#include <time.h>

#include "px/clock.h"
#include "px/timer.h"

#define SLOT_MASK ((uint64_t)PX_WHEEL_SLOTS - 1)

_Static_assert((PX_WHEEL_SLOTS & (PX_WHEEL_SLOTS - 1)) == 0 && PX_WHEEL_SLOTS % 64 == 0,
               "PX_WHEEL_SLOTS must be a power of two, a multiple of 64");

static void list_init(px_timer_t *head)
{
    head->_next = head;
    head->_prev = head;
}

static bool list_empty(const px_timer_t *head)
{
    return head->_next == head;
}

static void list_append(px_timer_t *head, px_timer_t *t)
{
    t->_prev = head->_prev;
    t->_next = head;
    head->_prev->_next = t;
    head->_prev = t;
}

static void list_unlink(px_timer_t *t)
{
    t->_prev->_next = t->_next;
    t->_next->_prev = t->_prev;
    t->_next = NULL;
    t->_prev = NULL;
}

static void mark(px_wheel_t *w, uint64_t slot)
{
    w->_occupied[slot / 64] |= UINT64_C(1) << (slot % 64);
}

/* Clears the slot's bit once its list is empty (the bit mirrors emptiness). */
static void unmark_if_empty(px_wheel_t *w, uint64_t slot)
{
    if (list_empty(&w->_slots[slot]))
        w->_occupied[slot / 64] &= ~(UINT64_C(1) << (slot % 64));
}

/* The distance 1..limit from `from` to the next occupied slot, going round; 0 if none. */
static uint64_t next_occupied(const px_wheel_t *w, uint64_t from, uint64_t limit)
{
    uint64_t i = 1;

    while (i <= limit) {
        uint64_t slot = (from + i) & SLOT_MASK;
        uint64_t bits = w->_occupied[slot / 64] >> (slot % 64);

        if (bits != 0) {
            uint64_t d = i + (uint64_t)__builtin_ctzll(bits);
            return d <= limit ? d : 0;
        }
        i += 64 - slot % 64; /* to the next word */
    }
    return 0;
}

uint64_t px_now_ms(void)
{
    struct timespec ts;

    /* Cannot fail for CLOCK_MONOTONIC with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * PX_MS_PER_SEC + (uint64_t)ts.tv_nsec / PX_NS_PER_MS;
}

void px_wheel_init(px_wheel_t *w, uint64_t now_ms)
{
    w->now = now_ms;
    w->count = 0;
    memset(w->_occupied, 0, sizeof(w->_occupied));
    list_init(&w->_due);
    w->_due._deadline = UINT64_MAX;
    w->_due.cb = NULL;
    for (size_t i = 0; i < PX_WHEEL_SLOTS; i++) {
        list_init(&w->_slots[i]);
        w->_slots[i]._deadline = UINT64_MAX;
        w->_slots[i].cb = NULL;
    }
}

void px_timer_init(px_timer_t *t, px_timer_cb cb)
{
    t->_next = NULL;
    t->_prev = NULL;
    t->_deadline = 0;
    t->cb = cb;
}

void px_timer_start(px_wheel_t *w, px_timer_t *t, uint64_t delay_ms)
{
    uint64_t deadline = w->now + delay_ms;

    if (deadline < w->now)
        deadline = UINT64_MAX; /* saturate: "never", in practice */
    px_timer_stop(w, t);
    t->_deadline = deadline;
    list_append(&w->_slots[deadline & SLOT_MASK], t);
    mark(w, deadline & SLOT_MASK);
    w->count++;
}

void px_timer_stop(px_wheel_t *w, px_timer_t *t)
{
    if (!px_timer_armed(t))
        return;
    /* Works whether t sits in a slot or in advance's list of due timers. */
    list_unlink(t);
    unmark_if_empty(w, t->_deadline & SLOT_MASK);
    w->count--;
}

uint64_t px_wheel_timeout(const px_wheel_t *w, uint64_t cap_ms)
{
    uint64_t limit = PX_MIN(cap_ms, (uint64_t)PX_WHEEL_SLOTS - 1);
    const px_timer_t *head, *t;
    uint64_t next;

    if (w->count == 0 || cap_ms == 0)
        return cap_ms;
    if (!list_empty(&w->_due))
        return 0; /* an advance was interrupted by a callback that blocked */
    /* The current slot is special: a timer of a later round there is a whole
     * revolution away, and counting it as due would make the caller spin. */
    head = &w->_slots[w->now & SLOT_MASK];
    for (t = head->_next; t != head; t = t->_next)
        if (t->_deadline <= w->now)
            return 0;
    if ((next = next_occupied(w, w->now, limit)) != 0)
        return next;
    /* Only later rounds of the current slot remain. */
    return PX_MIN(cap_ms, (uint64_t)PX_WHEEL_SLOTS);
}

/* Move the timers of one slot that are due by now_ms to the end of due. */
static void collect(px_timer_t *head, uint64_t now_ms, px_timer_t *due)
{
    px_timer_t *t = head->_next, *next;

    while (t != head) {
        next = t->_next;
        if (t->_deadline <= now_ms) {
            list_unlink(t);
            list_append(due, t);
        }
        t = next;
    }
}

size_t px_wheel_advance(px_wheel_t *w, uint64_t now_ms)
{
    px_timer_t *due = &w->_due, *t;
    uint64_t ticks;
    size_t fired = 0;

    if (now_ms < w->now)
        now_ms = w->now; /* never run the clock backwards */
    /* The current tick is scanned again: timers started with no delay since
     * the last advance sit there. Past one revolution every slot is visited
     * once, whatever the size of the jump. */
    ticks = PX_MIN(now_ms - w->now + 1, (uint64_t)PX_WHEEL_SLOTS);
    for (uint64_t i = 0; i < ticks; i++) {
        uint64_t slot = (w->now + i) & SLOT_MASK;

        collect(&w->_slots[slot], now_ms, due);
        unmark_if_empty(w, slot);
    }
    /* Callbacks see the new time, so what they start is relative to it and
     * cannot become due during this advance. */
    w->now = now_ms;
    /* Firing from the due list lets a callback stop any due timer (it just
     * leaves this list) or re-arm one (it moves back into a slot). */
    while (!list_empty(due)) {
        t = due->_next;
        list_unlink(t);
        w->count--;
        fired++;
        if (t->cb != NULL)
            t->cb(t);
    }
    return fired;
}
