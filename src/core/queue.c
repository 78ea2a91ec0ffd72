/*
 * Vyukov's intrusive MPSC queue, plus a parking mark for lost-wake-up safety.
 *
 * Nodes form a singly linked list from _tail (oldest, consumer side) to _head
 * (newest, producer side). A push swaps itself into _head, then links the
 * previous head to itself; between those two steps the list is broken and the
 * consumer cannot see past the previous head. The stub node keeps the list
 * non-empty so producers never touch _tail.
 *
 * The break is why "prev was the stub" alone is not a safe wake-up signal: the
 * consumer may stop at a real node whose link is still missing and go to
 * sleep, while the late producer saw a non-empty queue. So whenever pop comes
 * back empty-handed it writes PARKED into the link it is waiting on, and the
 * producer that later fills that link sees PARKED and reports a wake-up.
 */
#include "px/queue.h"

/* Never pushed, never dereferenced: only its address is used, as a mark. */
static px_mpsc_node_t parked_mark;
#define PARKED (&parked_mark)

static px_mpsc_node_t *load_next(px_mpsc_node_t *n)
{
    /* Acquire: the node we may step onto was filled in before its link. */
    px_mpsc_node_t *next = atomic_load_explicit(&n->next, memory_order_acquire);

    return next == PARKED ? NULL : next;
}

void px_mpsc_init(px_mpsc_t *q)
{
    atomic_init(&q->_stub.next, NULL);
    atomic_init(&q->_head, &q->_stub);
    q->_tail = &q->_stub;
}

bool px_mpsc_push(px_mpsc_t *q, px_mpsc_node_t *n)
{
    px_mpsc_node_t *prev, *old;

    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* Release hands n (with its NULL link) to the producer that links after
     * it; acquire takes prev's NULL link from the producer that pushed prev,
     * so our link below is ordered after it. */
    prev = atomic_exchange_explicit(&q->_head, n, memory_order_acq_rel);
    /* Release publishes n's payload to the consumer. An exchange, not a store,
     * so that we learn whether the consumer parked on this link. */
    old = atomic_exchange_explicit(&prev->next, n, memory_order_release);
    return prev == &q->_stub || old == PARKED;
}

px_mpsc_node_t *px_mpsc_pop(px_mpsc_t *q)
{
    px_mpsc_node_t *tail, *next, *head, *expected;

again:
    tail = q->_tail;
    next = load_next(tail);
    if (tail == &q->_stub) {
        if (next == NULL)
            goto park;
        q->_tail = next;
        tail = next;
        next = load_next(next);
    }
    if (next != NULL) {
        q->_tail = next;
        return tail;
    }
    /* tail is the only node we can reach. Relaxed is enough: having reached
     * tail through acquire loads, we cannot read a head older than tail. */
    head = atomic_load_explicit(&q->_head, memory_order_relaxed);
    if (tail != head)
        goto park; /* a producer swapped _head but has not linked tail yet */
    /* Put the stub behind tail so that tail can be handed out while the list
     * stays non-empty. */
    px_mpsc_push(q, &q->_stub);
    next = load_next(tail);
    if (next != NULL) {
        q->_tail = next;
        return tail;
    }
    /* A producer got in before the stub and has not linked tail yet. */

park:
    /* Relaxed: the mark carries no data, and on failure we start over with
     * acquire loads. */
    expected = NULL;
    if (atomic_compare_exchange_strong_explicit(&tail->next, &expected, PARKED,
                                                memory_order_relaxed, memory_order_relaxed) ||
        expected == PARKED)
        return NULL;
    goto again; /* the link arrived meanwhile */
}

bool px_mpsc_empty(px_mpsc_t *q)
{
    return q->_tail == &q->_stub && load_next(&q->_stub) == NULL;
}
