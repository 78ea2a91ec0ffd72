/*
 * Per-worker counters. Only the owning worker writes them (plain relaxed
 * stores, no read-modify-write atomics on the hot path); any thread may read a
 * consistent-enough snapshot and sum across workers on demand.
 */
#ifndef PX_STATS_H
#define PX_STATS_H

#include <stdatomic.h>
#include "px/common.h"

#define PX_STATS_FIELDS(X)                                                                     \
    X(connections) /* open now */                                                              \
    X(accepts)                                                                                 \
    X(refused) /* over max_connections */                                                      \
    X(connects)                                                                                \
    X(closes)                                                                                  \
    X(timeouts) /* idle timeouts */                                                            \
    X(bytes_in)                                                                                \
    X(bytes_out)                                                                               \
    X(recvs)                                                                                   \
    X(sends)                                                                                   \
    X(sendfiles)                                                                               \
    X(callbacks)        /* calls into the application: open, data, eof, drain, close */        \
    X(requests)         /* HTTP requests answered, static routes included */                   \
    X(handoffs)         /* times a blocked handler's worker went to another thread */          \
    X(errors)           /* callbacks that raised, failed syscalls */                           \
    X(hogs)             /* turns in which a connection used its whole budget */                \
    X(paused)           /* backpressure pauses */                                              \
    X(buffer_shortages) /* receive buffer ring ran dry */                                      \
    X(loops)                                                                                   \
    X(messages)                                                                                \
    X(pool_bytes)       /* memory reserved by this worker's pools */                           \
    X(pool_in_use)      /* bytes of it in use */                                               \
    X(unhandled_errors) /* callback exceptions no exception_handler took: connection closed */ \
    X(accept_pauses)    /* accepting paused: out of descriptors (EMFILE, ENFILE) or memory */  \
    X(pipeline_waits)   /* pipelined requests left waiting for the output to drain */          \
    X(budget_held)      /* bytes of request bodies and unsent output held now */               \
    X(budget_refused)   /* request bodies refused (503) over the memory budget */              \
    X(budget_closed)    /* slow readers closed to get back under the budget */                 \
    X(proxy_refused)    /* connections closed for a missing or malformed PROXY header */       \
    X(ws_upgrades)      /* connections that became WebSockets */                               \
    X(ws_messages_in)   /* WebSocket messages received whole */                                \
    X(ws_messages_out)  /* WebSocket messages sent (any thread) */

typedef struct px_worker_stats {
#define PX_STATS_DECL(name) _Atomic uint64_t name;
    PX_STATS_FIELDS(PX_STATS_DECL)
#undef PX_STATS_DECL
} px_worker_stats_t;

/* Owner-only updates: a relaxed load and store, which compile to plain moves. */
#define PX_STAT_ADD(s, field, n)                                                         \
    atomic_store_explicit(&(s)->field,                                                   \
                          atomic_load_explicit(&(s)->field, memory_order_relaxed) + (n), \
                          memory_order_relaxed)
#define PX_STAT_SUB(s, field, n) PX_STAT_ADD(s, field, -(uint64_t)(n))
#define PX_STAT_SET(s, field, v) atomic_store_explicit(&(s)->field, (v), memory_order_relaxed)
#define PX_STAT_GET(s, field) atomic_load_explicit(&(s)->field, memory_order_relaxed)

#endif
