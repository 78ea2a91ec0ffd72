/*
 * Intrusive multi-producer single-consumer queue (Vyukov's node-based design).
 *
 * Any thread may push; exactly one thread (the owner: a worker or the main
 * thread) pops. No allocation: the caller embeds a px_mpsc_node_t in its
 * message and recovers the message with PX_CONTAINER_OF. A node belongs to the
 * queue from push until pop returns it.
 */
#ifndef PX_QUEUE_H
#define PX_QUEUE_H

#include <stdatomic.h>
#include "px/common.h"

typedef struct px_mpsc_node {
    _Atomic(struct px_mpsc_node *) next;
} px_mpsc_node_t;

typedef struct px_mpsc {
    _Alignas(PX_CACHELINE) _Atomic(px_mpsc_node_t *) _head; /* producers */
    _Alignas(PX_CACHELINE) px_mpsc_node_t *_tail;           /* consumer */
    px_mpsc_node_t _stub;
} px_mpsc_t;

/* Initialise an empty queue. Not thread-safe; call before sharing the queue. */
void px_mpsc_init(px_mpsc_t *q);

/* Append n. Any thread, wait-free. Returns true when the queue looked empty
 * before this push, or when the consumer's last pop came back empty waiting for
 * this very push to finish: i.e. when the consumer may be asleep and needs a
 * wake-up. */
bool px_mpsc_push(px_mpsc_t *q, px_mpsc_node_t *n);

/* Remove the oldest node. Consumer thread only. Returns NULL when the queue is
 * empty, and also (briefly) while a producer is half-way through a push: the
 * consumer then retries on its next wake-up, which that producer's push causes. */
px_mpsc_node_t *px_mpsc_pop(px_mpsc_t *q);

/* True when nothing is queued (consumer thread only; a racing push may follow). */
bool px_mpsc_empty(px_mpsc_t *q);

#endif
