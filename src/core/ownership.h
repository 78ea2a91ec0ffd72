/*
 * The ownership word of a worker: who may run its engine code.
 *
 * Exactly one thread at a time runs a worker's engine code (its ring, slab,
 * wheel, pools, lists). That thread may "release" the worker around code that
 * can block (a Python callback) and "reclaim" it afterwards. While released,
 * the supervisor may "take" it for another thread; the reclaim then fails and
 * the released thread waits until the worker is handed back to it.
 *
 * The word: bit 0 RELEASED, bit 1 HINT (the owner had local work queued when it
 * released), the rest a sequence number bumped by every release and every take,
 * so that a reclaim can tell "nobody took it" from "taken and given back"
 * (no ABA) and the supervisor can tell one long callback from many short ones.
 *
 * Only the owner writes the word while it is not released (so its relaxed
 * loads are exact); while released, the releasing thread and the supervisor
 * race with compare-and-swap and exactly one wins.
 */
#ifndef PX_CORE_OWNERSHIP_H
#define PX_CORE_OWNERSHIP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define PX_OWN_RELEASED ((uint64_t)1)
#define PX_OWN_HINT ((uint64_t)2)
#define PX_OWN_FLAGS ((uint64_t)3)
#define PX_OWN_SEQ_ONE ((uint64_t)4)

static inline bool px__own_is_released(uint64_t word)
{
    return word & PX_OWN_RELEASED;
}

/* Owner: let the worker be taken while it runs code that may block. Returns the
 * word stored, which the same thread passes to px__own_reclaim. Release
 * ordering: a thread that takes the worker sees everything written before. */
static inline uint64_t px__own_release(_Atomic uint64_t *own, bool hint)
{
    uint64_t cur = atomic_load_explicit(own, memory_order_relaxed);
    uint64_t next = ((cur & ~PX_OWN_FLAGS) + PX_OWN_SEQ_ONE) | PX_OWN_RELEASED |
                    (hint ? PX_OWN_HINT : 0);

    atomic_store_explicit(own, next, memory_order_release);
    return next;
}

/* The thread that released (with token = what px__own_release returned): true
 * when it owns the worker again, false when the worker was taken meanwhile. */
static inline bool px__own_reclaim(_Atomic uint64_t *own, uint64_t token)
{
    uint64_t expect = token;

    return atomic_compare_exchange_strong_explicit(own, &expect, token & ~PX_OWN_FLAGS,
                                                   memory_order_acquire, memory_order_relaxed);
}

/* The supervisor: take the worker from the release it observed as `seen`.
 * True when taken; the caller then gives the worker to another thread, which
 * owns it from then on. Acquire: the taker sees what the releaser wrote. */
static inline bool px__own_take(_Atomic uint64_t *own, uint64_t seen)
{
    uint64_t expect = seen;

    if (!px__own_is_released(seen))
        return false;
    return atomic_compare_exchange_strong_explicit(own, &expect,
                                                   (seen & ~PX_OWN_FLAGS) + PX_OWN_SEQ_ONE,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

#endif
