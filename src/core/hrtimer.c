/*
 * Binary min-heap of precise timers, ordered by (deadline, arming order) so that
 * timers with equal deadlines fire in the order they were armed.
 */
#include <errno.h>
#include <stdlib.h>

#include "px/hrtimer.h"

#define HEAP_FIRST_CAP 16 /* timers the heap has room for at first; it doubles */

void px_hrtimers_init(px_hrtimers_t *q)
{
    q->_heap = NULL;
    q->count = 0;
    q->_cap = 0;
    q->_seq = 0;
}

void px_hrtimers_destroy(px_hrtimers_t *q)
{
    free(q->_heap);
    px_hrtimers_init(q);
}

void px_hrtimer_init(px_hrtimer_t *t, px_hrtimer_cb cb)
{
    t->_deadline = 0;
    t->_seq = 0;
    t->_index = SIZE_MAX;
    t->cb = cb;
}

static bool earlier(const px_hrtimer_t *a, const px_hrtimer_t *b)
{
    return a->_deadline < b->_deadline || (a->_deadline == b->_deadline && a->_seq < b->_seq);
}

static void place(px_hrtimers_t *q, px_hrtimer_t *t, size_t i)
{
    q->_heap[i] = t;
    t->_index = i;
}

static void sift_up(px_hrtimers_t *q, size_t i)
{
    px_hrtimer_t *t = q->_heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(t, q->_heap[parent]))
            break;
        place(q, q->_heap[parent], i);
        i = parent;
    }
    place(q, t, i);
}

static void sift_down(px_hrtimers_t *q, size_t i)
{
    px_hrtimer_t *t = q->_heap[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->count)
            break;
        if (child + 1 < q->count && earlier(q->_heap[child + 1], q->_heap[child]))
            child++;
        if (!earlier(q->_heap[child], t))
            break;
        place(q, q->_heap[child], i);
        i = child;
    }
    place(q, t, i);
}

/* Take the entry at i out of the heap and restore the order around the hole. */
static void remove_at(px_hrtimers_t *q, size_t i)
{
    px_hrtimer_t *last;

    q->_heap[i]->_index = SIZE_MAX;
    last = q->_heap[--q->count];
    if (i == q->count)
        return;
    place(q, last, i);
    if (i > 0 && earlier(last, q->_heap[(i - 1) / 2]))
        sift_up(q, i);
    else
        sift_down(q, i);
}

int px_hrtimer_start(px_hrtimers_t *q, px_hrtimer_t *t, uint64_t deadline_ns)
{
    px_hrtimer_stop(q, t);
    if (q->count == q->_cap) {
        size_t cap = q->_cap ? q->_cap * 2 : HEAP_FIRST_CAP;
        px_hrtimer_t **heap = realloc(q->_heap, cap * sizeof(*heap));
        if (heap == NULL)
            return -ENOMEM;
        q->_heap = heap;
        q->_cap = cap;
    }
    t->_deadline = deadline_ns;
    t->_seq = q->_seq++;
    place(q, t, q->count++);
    sift_up(q, t->_index);
    return 0;
}

void px_hrtimer_stop(px_hrtimers_t *q, px_hrtimer_t *t)
{
    if (px_hrtimer_armed(t))
        remove_at(q, t->_index);
}

uint64_t px_hrtimers_next(const px_hrtimers_t *q)
{
    return q->count ? q->_heap[0]->_deadline : UINT64_MAX;
}

size_t px_hrtimers_fire(px_hrtimers_t *q, uint64_t now_ns)
{
    uint64_t armed_before = q->_seq;
    size_t fired = 0;

    /* The earliest timer, if armed during this call, ends the round: timers it
     * hides fire at the next call, a turn later, rather than out of order. */
    while (q->count > 0) {
        px_hrtimer_t *t = q->_heap[0];
        if (t->_deadline > now_ns || t->_seq >= armed_before)
            break;
        remove_at(q, 0);
        fired++;
        if (t->cb != NULL)
            t->cb(t);
    }
    return fired;
}
