/*
 * Software transactional memory: the Python-free core of atomic blocks.
 *
 * TL2 (transactional locking II) over *locations*: each location is a value
 * pointer and a versioned lock word. A transaction reads a consistent snapshot
 * (opacity: a location newer than its snapshot moves the snapshot forward only
 * if nothing read so far has changed), buffers its writes, and commits by
 * locking the locations it writes, validating what it read and publishing the
 * new values with a new version. Read-only transactions lock nothing and write
 * no shared memory except their own thread's record.
 *
 * The version clock is TL2's "GV5" variant: a commit takes the clock plus one
 * as its version without writing the clock, and the clock moves only when a
 * reader meets a version newer than its snapshot. Commits over disjoint
 * locations therefore share no written cache line at all (a TL2 fetch-and-add
 * per commit would bounce one line between every committing core).
 *
 * Values are opaque pointers owned by their location. A value that a commit
 * replaces may still be in use by a reader that loaded it an instant before,
 * so it is retired, not released: each thread announces the epoch it runs in
 * while it reads (px_stm_pin / a transaction), and a retired value is handed to
 * the release function once every thread has been seen quiescent or in a later
 * epoch (epoch-based reclamation). px_stm_setup(defer=false) releases at the
 * end of the transaction instead, for callers whose reads are already
 * serialised (a GIL).
 *
 * One transaction at a time per thread; its state lives in the thread's record
 * (px_stm_thread). Functions that may block (px_stm_serial_enter,
 * px_stm_wait_serial, px_stm_backoff) must be called with nothing else held
 * that the other transactions could need (for a binding: the GIL released).
 */
#ifndef PX_STM_H
#define PX_STM_H

#include <stdatomic.h>
#include "px/common.h"

/* One transactional location; px_stm_loc_init before use, no destructor (its
 * value is the owner's to release when the location goes). */
typedef struct px_stm_loc {
    _Atomic uint64_t vlock; /* version << 1 when free; owner | 1 when locked */
    _Atomic(void *) value;
} px_stm_loc_t;

static inline void px_stm_loc_init(px_stm_loc_t *loc, void *value)
{
    atomic_init(&loc->vlock, 0);
    atomic_init(&loc->value, value);
}

/* The value a location holds, without a transaction, for its owner's
 * destructor (nobody else may use the location any more). */
static inline void *px_stm_loc_value(px_stm_loc_t *loc)
{
    return atomic_load_explicit(&loc->value, memory_order_relaxed);
}

/* Counters per thread. Aborts are counted by cause. */
enum px_stm_counter {
    PX_STM_COMMITS,         /* transactions that committed (read-only included) */
    PX_STM_READ_ONLY,       /* of which wrote nothing */
    PX_STM_ABORT_LOCKED,    /* a read met a location locked by a committer */
    PX_STM_ABORT_STALE,     /* a location read had changed (snapshot or commit) */
    PX_STM_ABORT_BUSY,      /* commit could not lock a location it writes */
    PX_STM_ABORT_EXCEPTION, /* the transaction's own code raised */
    PX_STM_RETRIES,         /* runs started again after a conflict */
    PX_STM_SERIAL,          /* transactions that ran irrevocably */
    PX_STM_EXTENSIONS,      /* snapshots moved forward instead of aborting */
    PX_STM_NCOUNTERS,
};

typedef struct px_stm_thread px_stm_thread_t;

/* Once per process, before anything else: how values are released and
 * whether releases wait for an epoch (see above). Later calls are ignored. */
void px_stm_setup(void (*release)(void *value), bool defer);

/* The calling thread's record, made on first use (NULL: out of memory). It
 * outlives the thread and is reused by a later one, counters included. */
px_stm_thread_t *px_stm_thread(void);

/* Reads outside transactions: between pin and unpin, px_stm_peek gives the
 * last committed value, valid (not released) until unpin. Pins nest, and a
 * transaction pins too. -EBUSY: a committer held loc for a while (bounded
 * spin); the caller may wait elsewhere (release its interpreter) and retry. */
void px_stm_pin(px_stm_thread_t *th);
void px_stm_unpin(px_stm_thread_t *th);
int px_stm_peek(px_stm_loc_t *loc, void **value);

/* Start a transaction. -EAGAIN: an irrevocable one runs; px_stm_wait_serial()
 * and begin again. serial: the caller holds the irrevocable mode
 * (px_stm_serial_enter), and this transaction cannot conflict. */
int px_stm_begin(px_stm_thread_t *th, bool serial);
bool px_stm_active(const px_stm_thread_t *th);

/* The value of loc in this transaction: its own write, else the snapshot's.
 * *value stays valid until px_stm_end. -EBUSY (locked by a committer) or
 * -ESTALE (the snapshot cannot include loc): the transaction is doomed, and
 * px_stm_conflict names loc. */
int px_stm_read(px_stm_thread_t *th, px_stm_loc_t *loc, void **value);

/* Buffer a write; value (a reference the transaction now owns) is published
 * at commit or released at px_stm_end. -ENOMEM (value not taken). */
int px_stm_write(px_stm_thread_t *th, px_stm_loc_t *loc, void *value);

/* The value this transaction wrote to loc, if it did (true). */
bool px_stm_written(px_stm_thread_t *th, px_stm_loc_t *loc, void **value);

/* Nested blocks: a savepoint, then either keep (the inner block's writes join
 * the outer) or rollback (they are undone). Strictly nested. */
typedef struct px_stm_savepoint {
    uint32_t writes, undo, prev;
} px_stm_savepoint_t;
px_stm_savepoint_t px_stm_savepoint(px_stm_thread_t *th);
void px_stm_keep(px_stm_thread_t *th, px_stm_savepoint_t sp);
void px_stm_rollback(px_stm_thread_t *th, px_stm_savepoint_t sp);

/* Commit: 0 published, 1 read-only (nothing to publish), -EBUSY/-ESTALE
 * aborted (as for px_stm_read; no location is left locked). px_stm_end
 * follows in every case. */
int px_stm_commit(px_stm_thread_t *th);

/* End the transaction (committed or not): unlock, drop unpublished writes,
 * leave the epoch. Releases nothing: see px_stm_reclaim. */
void px_stm_end(px_stm_thread_t *th);

/* Release what may be released, outside any transaction: after px_stm_end
 * and after px_stm_serial_exit, because the release function may start
 * transactions of its own (a finalizer), which would wait for the
 * irrevocable mode this thread still held. */
void px_stm_reclaim(px_stm_thread_t *th);

/* The location the last abort of this thread happened at (NULL: none). */
px_stm_loc_t *px_stm_conflict(const px_stm_thread_t *th);

/* The irrevocable mode: enter waits until no other transaction runs, and keeps
 * new ones waiting (px_stm_begin's -EAGAIN) until exit. Blocking. */
void px_stm_serial_enter(px_stm_thread_t *th);
void px_stm_serial_exit(px_stm_thread_t *th);
void px_stm_wait_serial(void);

/* Randomised exponential backoff after the attempt-th conflict. Blocking. */
void px_stm_backoff(px_stm_thread_t *th, unsigned attempt);

void px_stm_count(px_stm_thread_t *th, enum px_stm_counter c);

/* Retire p, which the caller has just made unreachable to new readers: it
 * goes to the release function once no pinned reader can hold it. -ENOMEM:
 * not retired (the caller keeps it). Outside transactions and pins, values
 * that are due may be released here. */
int px_stm_retire(px_stm_thread_t *th, void *p);

/* A slot for the caller's per-thread data (kept with the record). */
void **px_stm_user(px_stm_thread_t *th);
/* Every record: pass NULL for the first; NULL after the last. */
px_stm_thread_t *px_stm_threads_next(px_stm_thread_t *th);

/* The counters summed over every thread since the last reset; reset: start
 * again from zero. */
void px_stm_totals(uint64_t out[PX_STM_NCOUNTERS], bool reset);

/* The version clock (for tests: read-only transactions leave it). */
uint64_t px_stm_clock(void);

#endif
