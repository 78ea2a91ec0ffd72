/* The STM core's per-thread record, its logs and a helper, shared by the files
 * of the core only (never by its users, who see px_stm_thread_t as opaque). */
#ifndef PX_CORE_STM_THREAD_H
#define PX_CORE_STM_THREAD_H

#include "px/stm.h"

typedef struct read_entry {
    px_stm_loc_t *loc;
    uint64_t version;
} read_entry_t;

typedef struct write_entry {
    px_stm_loc_t *loc;
    void *value;
    uint64_t old; /* the lock word before this commit locked it */
} write_entry_t;

typedef struct undo_entry {
    uint32_t index;
    void *value;
} undo_entry_t;

typedef struct limbo_entry {
    void *value;
    uint64_t epoch;
} limbo_entry_t;

struct px_stm_thread {
    /* Written by this thread at every transaction, read by reclaimers and the
     * irrevocable mode: alone on its cache line. */
    _Alignas(PX_CACHELINE) _Atomic uint64_t active; /* epoch while pinned, else 0 */
    _Atomic bool in_tx;
    /* Read by other threads (the registry walks, stm_stats), rarely written. */
    _Alignas(PX_CACHELINE) struct px_stm_thread *next; /* immutable once published */
    _Atomic bool in_use;
    void *user;
    uint64_t baseline[PX_STM_NCOUNTERS]; /* at the last reset; under registry_mutex */
    /* Written by this thread only, read by stm_stats. */
    _Alignas(PX_CACHELINE) _Atomic uint64_t count[PX_STM_NCOUNTERS];
    /* The transaction: only this thread touches what follows (on lines of
     * their own, which another thread's walk of the registry never reads). */
    _Alignas(PX_CACHELINE) uint32_t pin_depth;
    uint64_t rv;
    bool serial, doomed;
    px_stm_loc_t *conflict;
    read_entry_t *reads;
    uint32_t nreads, cap_reads;
    write_entry_t *writes;
    uint32_t nwrites, cap_writes;
    uint32_t *index; /* open addressing: write entry + 1, or 0 */
    uint32_t index_mask;
    undo_entry_t *undo;
    uint32_t nundo, cap_undo;
    uint32_t sp_writes; /* writes older than the innermost savepoint */
    uint32_t nlocked;
    limbo_entry_t *limbo; /* a ring */
    uint32_t limbo_head, nlimbo, cap_limbo, since_advance;
    uint64_t seed;
};

/* Ask for a written location's line in the exclusive state: the read before
 * the write brought it shared (from the core that committed to it last), and
 * commit's lock would otherwise wait for a second trip between the cores. */
static inline void prefetch_for_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    /* prefetchw (0F 0D /1): a no-op hint on processors without it. */
    __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

#endif
