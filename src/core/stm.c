/* Software transactional memory: TL2 with a GV5 clock, snapshot extension,
 * epoch-based reclamation and an irrevocable mode (see px/stm.h). */
#include "px/stm.h"

#include "stm_thread.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCKED 1u
/* How often a reader re-reads a location a committer holds, and a committer
 * tries a lock another committer holds, before giving up: commit windows are
 * a few hundred nanoseconds, a retry costs a whole run. */
#define READ_SPINS 64
#define LOCK_SPINS 128
/* Retired values gathered before a thread tries to move the epoch: a try
 * reads every thread's announcement and moves a line every thread reads, so
 * it must stay rare next to commits (a transfer retires two values). */
#define ADVANCE_EVERY 128
/* A thread outside transactions releases what is due once it holds this many. */
#define LIMBO_OUTSIDE 128

/* The version clock and the epoch are read by every transaction and written
 * now and then: each on a line of its own, so that a write to one does not
 * move the other, or a neighbour, away from the readers. */
typedef struct own_line {
    _Alignas(PX_CACHELINE) _Atomic uint64_t value;
} own_line_t;
static own_line_t clock_line, epoch_line = {1};
#define clock_ (clock_line.value)
#define epoch_ (epoch_line.value)

static _Atomic(px_stm_thread_t *) registry;
static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static void (*release_fn)(void *);
static bool defer_release;
static _Atomic bool set_up;

static _Atomic int serial_flag;
static pthread_mutex_t serial_mutex = PTHREAD_MUTEX_INITIALIZER;

/* A full barrier. GCC's TSan rejects atomic_thread_fence, so under it a
 * sequentially consistent read-modify-write stands in (a locked instruction,
 * the same barrier on x86). */
#if defined(__SANITIZE_THREAD__)
static _Thread_local _Atomic int fence_word;
#define full_fence() ((void)atomic_fetch_add(&fence_word, 0))
#else
#define full_fence() atomic_thread_fence(memory_order_seq_cst)
#endif

static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static _Thread_local px_stm_thread_t *this_thread;

void px_stm_setup(void (*release)(void *value), bool defer)
{
    bool expected = false;
    if (atomic_compare_exchange_strong(&set_up, &expected, true)) {
        release_fn = release;
        defer_release = defer;
    }
}

uint64_t px_stm_clock(void)
{
    return atomic_load(&clock_);
}

static void bump(_Atomic uint64_t *c)
{
    /* Only this thread writes its counters: no locked instruction. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void px_stm_count(px_stm_thread_t *th, enum px_stm_counter c)
{
    bump(&th->count[c]);
}

/* ---- threads ------------------------------------------------------------------ */

static void thread_exit(void *arg)
{
    px_stm_thread_t *th = arg;
    atomic_store(&th->in_use, false); /* its counters and limbo go to the next user */
}

/* In a child of fork only the forking thread lives on: the others' records
 * are let go (no longer pinned, in a transaction or in use), and the mutexes
 * they may have held are made anew. A location a committer held locked at
 * the fork stays locked in the child: fork outside transactions. */
static void after_fork_child(void)
{
    px_stm_thread_t *me = this_thread;
    bool serial = me != NULL && me->serial;
    (void)pthread_mutex_init(&registry_mutex, NULL);
    (void)pthread_mutex_init(&serial_mutex, NULL);
    atomic_store(&serial_flag, serial);
    if (serial)
        (void)pthread_mutex_lock(&serial_mutex);
    for (px_stm_thread_t *th = atomic_load(&registry); th != NULL; th = th->next) {
        if (th == me)
            continue;
        th->pin_depth = 0;
        th->nlocked = 0;
        atomic_store(&th->active, 0);
        atomic_store(&th->in_tx, false);
        atomic_store(&th->in_use, false);
    }
}

static void make_key(void)
{
    (void)pthread_key_create(&thread_key, thread_exit);
    (void)pthread_atfork(NULL, NULL, after_fork_child);
}

px_stm_thread_t *px_stm_thread(void)
{
    px_stm_thread_t *th = this_thread;
    if (PX_LIKELY(th != NULL))
        return th;
    (void)pthread_once(&key_once, make_key);
    for (th = atomic_load(&registry); th != NULL; th = th->next) {
        bool expected = false;
        if (!atomic_load(&th->in_use) &&
            atomic_compare_exchange_strong(&th->in_use, &expected, true))
            break;
    }
    if (th == NULL) {
        th = aligned_alloc(PX_CACHELINE,
                           (sizeof *th + PX_CACHELINE - 1) / PX_CACHELINE * PX_CACHELINE);
        if (th == NULL)
            return NULL;
        memset(th, 0, sizeof *th);
        atomic_init(&th->in_use, true);
        th->seed = (uint64_t)(uintptr_t)th * 0x9E3779B97F4A7C15u | 1;
        pthread_mutex_lock(&registry_mutex);
        th->next = atomic_load(&registry);
        atomic_store(&registry, th);
        pthread_mutex_unlock(&registry_mutex);
    }
    (void)pthread_setspecific(thread_key, th);
    this_thread = th;
    return th;
}

void px_stm_totals(uint64_t out[PX_STM_NCOUNTERS], bool reset)
{
    memset(out, 0, sizeof(uint64_t) * PX_STM_NCOUNTERS);
    pthread_mutex_lock(&registry_mutex);
    for (px_stm_thread_t *th = atomic_load(&registry); th != NULL; th = th->next)
        for (int i = 0; i < PX_STM_NCOUNTERS; i++) {
            uint64_t now = atomic_load_explicit(&th->count[i], memory_order_relaxed);
            out[i] += now - th->baseline[i];
            if (reset)
                th->baseline[i] = now;
        }
    pthread_mutex_unlock(&registry_mutex);
}

/* ---- epochs ------------------------------------------------------------------- */

void px_stm_pin(px_stm_thread_t *th)
{
    if (th->pin_depth++ > 0)
        return; /* the outer pin's epoch is older: it covers this one */
    atomic_store_explicit(&th->active, atomic_load(&epoch_), memory_order_relaxed);
    /* The announcement is visible before any location is read. */
    full_fence();
}

void px_stm_unpin(px_stm_thread_t *th)
{
    if (--th->pin_depth == 0)
        atomic_store_explicit(&th->active, 0, memory_order_release);
}

void **px_stm_user(px_stm_thread_t *th)
{
    return &th->user;
}

px_stm_thread_t *px_stm_threads_next(px_stm_thread_t *th)
{
    return th == NULL ? atomic_load(&registry) : th->next;
}

/* Move the epoch on if every pinned thread runs in the current one. */
static void try_advance(void)
{
    uint64_t e;
    full_fence();
    e = atomic_load(&epoch_);
    for (px_stm_thread_t *th = atomic_load(&registry); th != NULL; th = th->next) {
        uint64_t a = atomic_load_explicit(&th->active, memory_order_acquire);
        if (a != 0 && a != e)
            return;
    }
    atomic_compare_exchange_strong(&epoch_, &e, e + 1);
}

static int retire(px_stm_thread_t *th, void *value, uint64_t epoch)
{
    if (value == NULL)
        return 0;
    if (th->nlimbo == th->cap_limbo) {
        uint32_t cap = th->cap_limbo ? th->cap_limbo * 2 : 64;
        limbo_entry_t *ring = malloc(sizeof *ring * cap);
        if (ring == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < th->nlimbo; i++)
            ring[i] = th->limbo[(th->limbo_head + i) & (th->cap_limbo - 1)];
        free(th->limbo);
        th->limbo = ring;
        th->limbo_head = 0;
        th->cap_limbo = cap;
    }
    th->limbo[(th->limbo_head + th->nlimbo) & (th->cap_limbo - 1)] = (limbo_entry_t){value, epoch};
    th->nlimbo++;
    return 0;
}

/* Take over what threads that have ended left waiting in their limbo. */
static void adopt(px_stm_thread_t *th)
{
    for (px_stm_thread_t *o = atomic_load(&registry); o != NULL; o = o->next) {
        bool expected = false;
        if (o == th || atomic_load_explicit(&o->in_use, memory_order_relaxed) ||
            !atomic_compare_exchange_strong(&o->in_use, &expected, true))
            continue;
        while (o->nlimbo > 0) {
            limbo_entry_t *e = &o->limbo[o->limbo_head];
            if (retire(th, e->value, e->epoch) < 0)
                break;
            o->limbo_head = (o->limbo_head + 1) & (o->cap_limbo - 1);
            o->nlimbo--;
        }
        atomic_store(&o->in_use, false);
    }
}

/* Release what no reader can hold any more. One entry at a time: the release
 * function may run transactions that come back here. */
static void reclaim(px_stm_thread_t *th)
{
    if (defer_release && ++th->since_advance >= ADVANCE_EVERY) {
        th->since_advance = 0;
        try_advance();
        adopt(th);
    }
    while (th->nlimbo > 0) {
        limbo_entry_t *e = &th->limbo[th->limbo_head];
        void *value = e->value;
        if (defer_release && e->epoch != 0 &&
            e->epoch + 2 > atomic_load_explicit(&epoch_, memory_order_acquire))
            break;
        th->limbo_head = (th->limbo_head + 1) & (th->cap_limbo - 1);
        th->nlimbo--;
        release_fn(value);
    }
}

int px_stm_retire(px_stm_thread_t *th, void *p)
{
    int err;
    full_fence(); /* stamp after the unlinking stores */
    th->since_advance++;
    err = retire(th, p, atomic_load(&epoch_));
    /* A thread that frees containers but runs no transactions must not pile
     * up its limbo: release what is due here, when it holds nothing. */
    if (th->pin_depth == 0 && th->nlimbo >= LIMBO_OUTSIDE)
        reclaim(th);
    return err;
}

/* ---- reads -------------------------------------------------------------------- */

int px_stm_peek(px_stm_loc_t *loc, void **value)
{
    for (unsigned spins = 0; spins < 2 * READ_SPINS; spins++) {
        uint64_t v1 = atomic_load_explicit(&loc->vlock, memory_order_acquire);
        *value = atomic_load_explicit(&loc->value, memory_order_acquire);
        if (!(v1 & LOCKED) && atomic_load_explicit(&loc->vlock, memory_order_acquire) == v1)
            return 0;
        if (spins > READ_SPINS)
            sched_yield(); /* a committer was preempted while it held loc */
    }
    return -EBUSY;
}

static void grow(void **array, uint32_t *cap, size_t size, int *err)
{
    uint32_t n = *cap ? *cap * 2 : 16;
    void *p = realloc(*array, size * n);
    if (p == NULL) {
        *err = -ENOMEM;
        return;
    }
    *array = p;
    *cap = n;
}

static int32_t find_write(const px_stm_thread_t *th, const px_stm_loc_t *loc)
{
    if (th->nwrites <= 8) {
        for (uint32_t i = 0; i < th->nwrites; i++)
            if (th->writes[i].loc == loc)
                return (int32_t)i;
        return -1;
    }
    for (uint32_t h = (uint32_t)(((uintptr_t)loc >> 4) * 0x9E3779B1u) & th->index_mask;;
         h = (h + 1) & th->index_mask) {
        uint32_t slot = th->index[h];
        if (slot == 0)
            return -1;
        if (th->writes[slot - 1].loc == loc)
            return (int32_t)slot - 1;
    }
}

static int doom(px_stm_thread_t *th, px_stm_loc_t *loc, int err)
{
    th->doomed = true;
    th->conflict = loc;
    bump(&th->count[err == -EBUSY ? PX_STM_ABORT_LOCKED : PX_STM_ABORT_STALE]);
    return err;
}

/* Every location read is still at the version it was read at (or locked by
 * this transaction's commit, from that version). */
static bool validate(px_stm_thread_t *th, px_stm_loc_t **bad)
{
    uintptr_t me = (uintptr_t)th | LOCKED;
    for (uint32_t i = 0; i < th->nreads; i++) {
        read_entry_t *r = &th->reads[i];
        uint64_t v = atomic_load_explicit(&r->loc->vlock, memory_order_acquire);
        if (v == me) {
            int32_t w = find_write(th, r->loc);
            if (w < 0 || (uint32_t)w >= th->nlocked || th->writes[w].old != r->version) {
                *bad = r->loc;
                return false;
            }
        } else if (v != r->version) {
            *bad = r->loc;
            return false;
        }
    }
    return true;
}

/* The clock has fallen behind version v (GV5): move it up to v at least and
 * take it as the new snapshot if what was read so far still holds. */
static int extend(px_stm_thread_t *th, uint64_t v)
{
    px_stm_loc_t *bad;
    uint64_t now = atomic_load(&clock_);
    while (now < v && !atomic_compare_exchange_weak(&clock_, &now, v))
        ;
    now = atomic_load(&clock_);
    if (!validate(th, &bad))
        return doom(th, bad, -ESTALE);
    th->rv = now;
    bump(&th->count[PX_STM_EXTENSIONS]);
    return 0;
}

bool px_stm_written(px_stm_thread_t *th, px_stm_loc_t *loc, void **value)
{
    int32_t i = th->nwrites ? find_write(th, loc) : -1;
    if (i < 0)
        return false;
    *value = th->writes[i].value;
    return true;
}

int px_stm_read(px_stm_thread_t *th, px_stm_loc_t *loc, void **value)
{
    int err = 0;
    if (th->nwrites && px_stm_written(th, loc, value))
        return 0;
    for (unsigned spins = 0;; spins++) {
        uint64_t v1 = atomic_load_explicit(&loc->vlock, memory_order_acquire);
        void *val = atomic_load_explicit(&loc->value, memory_order_acquire);
        uint64_t v2 = atomic_load_explicit(&loc->vlock, memory_order_acquire);
        if (v1 & LOCKED || v1 != v2) {
            if (th->serial)
                continue; /* only a peeker's view can be mid-change: wait it out */
            if (spins >= READ_SPINS)
                return doom(th, loc, -EBUSY);
            if (spins > READ_SPINS / 2)
                sched_yield();
            continue;
        }
        if (v1 >> 1 > th->rv) {
            err = extend(th, v1 >> 1);
            if (err < 0)
                return err;
            continue;
        }
        if (th->nreads == th->cap_reads) {
            grow((void **)&th->reads, &th->cap_reads, sizeof *th->reads, &err);
            if (err < 0)
                return err;
        }
        th->reads[th->nreads++] = (read_entry_t){loc, v1};
        *value = val;
        return 0;
    }
}

/* ---- writes ------------------------------------------------------------------- */

static int reindex(px_stm_thread_t *th)
{
    uint32_t size = 16;
    while (size < th->nwrites * 2 + 2)
        size *= 2;
    if (size - 1 != th->index_mask || th->index == NULL) {
        uint32_t *index = malloc(sizeof *index * size);
        if (index == NULL)
            return -ENOMEM;
        free(th->index);
        th->index = index;
        th->index_mask = size - 1;
    }
    memset(th->index, 0, sizeof *th->index * size);
    for (uint32_t i = 0; i < th->nwrites; i++) {
        uint32_t h = (uint32_t)(((uintptr_t)th->writes[i].loc >> 4) * 0x9E3779B1u) & th->index_mask;
        while (th->index[h] != 0)
            h = (h + 1) & th->index_mask;
        th->index[h] = i + 1;
    }
    return 0;
}

int px_stm_write(px_stm_thread_t *th, px_stm_loc_t *loc, void *value)
{
    int err = 0;
    int32_t i = th->nwrites ? find_write(th, loc) : -1;
    if (i >= 0) {
        write_entry_t *w = &th->writes[i];
        if ((uint32_t)i < th->sp_writes) { /* an outer block's write: keep it for undo */
            if (th->nundo == th->cap_undo) {
                grow((void **)&th->undo, &th->cap_undo, sizeof *th->undo, &err);
                if (err < 0)
                    return err;
            }
            th->undo[th->nundo++] = (undo_entry_t){(uint32_t)i, w->value};
        } else if (retire(th, w->value, 0) < 0) {
            return -ENOMEM;
        }
        w->value = value;
        return 0;
    }
    if (th->nwrites == th->cap_writes) {
        grow((void **)&th->writes, &th->cap_writes, sizeof *th->writes, &err);
        if (err < 0)
            return err;
    }
    th->writes[th->nwrites++] = (write_entry_t){loc, value, 0};
    prefetch_for_write(&loc->vlock);
    if (th->nwrites > 8 && (th->nwrites * 2 + 2 > th->index_mask + 1 || th->nwrites == 9))
        return reindex(th) < 0 ? (th->nwrites--, -ENOMEM) : 0;
    if (th->nwrites > 8) {
        uint32_t h = (uint32_t)(((uintptr_t)loc >> 4) * 0x9E3779B1u) & th->index_mask;
        while (th->index[h] != 0)
            h = (h + 1) & th->index_mask;
        th->index[h] = th->nwrites;
    }
    return 0;
}

px_stm_savepoint_t px_stm_savepoint(px_stm_thread_t *th)
{
    px_stm_savepoint_t sp = {th->nwrites, th->nundo, th->sp_writes};
    th->sp_writes = th->nwrites;
    return sp;
}

void px_stm_keep(px_stm_thread_t *th, px_stm_savepoint_t sp)
{
    th->sp_writes = sp.prev;
}

void px_stm_rollback(px_stm_thread_t *th, px_stm_savepoint_t sp)
{
    while (th->nundo > sp.undo) {
        undo_entry_t *u = &th->undo[--th->nundo];
        (void)retire(th, th->writes[u->index].value, 0);
        th->writes[u->index].value = u->value;
    }
    while (th->nwrites > sp.writes)
        (void)retire(th, th->writes[--th->nwrites].value, 0);
    if (th->nwrites > 8)
        (void)reindex(th);
    th->sp_writes = sp.prev;
}

/* ---- begin, commit, end --------------------------------------------------------- */

int px_stm_begin(px_stm_thread_t *th, bool serial)
{
    /* in_tx before the flag is read; the irrevocable mode sets the flag
     * before it looks at in_tx (all sequentially consistent). Not left to
     * px_stm_pin's fence: a nested pin (a transaction begun by a finalizer
     * while its thread is pinned) does not fence. */
    atomic_store(&th->in_tx, true);
    px_stm_pin(th);
    if (!serial && PX_UNLIKELY(atomic_load(&serial_flag))) {
        atomic_store(&th->in_tx, false);
        px_stm_unpin(th);
        return -EAGAIN;
    }
    th->rv = atomic_load(&clock_);
    th->serial = serial;
    th->doomed = false;
    th->conflict = NULL;
    th->nreads = th->nwrites = th->nundo = th->sp_writes = th->nlocked = 0;
    return 0;
}

bool px_stm_active(const px_stm_thread_t *th)
{
    return atomic_load_explicit(&th->in_tx, memory_order_relaxed);
}

px_stm_loc_t *px_stm_conflict(const px_stm_thread_t *th)
{
    return th->conflict;
}

static int lock_writes(px_stm_thread_t *th, uint64_t *wv)
{
    uintptr_t me = (uintptr_t)th | LOCKED;
    uint64_t top = 0;
    for (uint32_t i = 0; i < th->nwrites; i++) {
        write_entry_t *w = &th->writes[i];
        for (unsigned spins = 0;; spins++) {
            uint64_t v = atomic_load_explicit(&w->loc->vlock, memory_order_relaxed);
            if (!(v & LOCKED)) {
                if (atomic_compare_exchange_weak(&w->loc->vlock, &v, me)) {
                    w->old = v;
                    top = PX_MAX(top, v >> 1);
                    th->nlocked = i + 1;
                    break;
                }
                continue;
            }
            if (th->serial)
                continue; /* a committer that began before: it finishes */
            if (spins >= LOCK_SPINS) {
                th->doomed = true;
                th->conflict = w->loc;
                bump(&th->count[PX_STM_ABORT_BUSY]);
                return -EBUSY;
            }
            if (spins > LOCK_SPINS / 2)
                sched_yield();
        }
    }
    /* GV5: one past the clock, and past every version overwritten, without
     * writing the clock. */
    *wv = PX_MAX(atomic_load(&clock_), top) + 1;
    return 0;
}

static void unlock_writes(px_stm_thread_t *th)
{
    for (uint32_t i = 0; i < th->nlocked; i++)
        atomic_store_explicit(&th->writes[i].loc->vlock, th->writes[i].old, memory_order_release);
    th->nlocked = 0;
}

int px_stm_commit(px_stm_thread_t *th)
{
    px_stm_loc_t *bad;
    uint64_t wv, epoch;
    int err;

    if (th->nwrites == 0) {
        bump(&th->count[PX_STM_COMMITS]);
        bump(&th->count[PX_STM_READ_ONLY]);
        return 1;
    }
    err = lock_writes(th, &wv);
    if (err >= 0 && !validate(th, &bad)) {
        th->doomed = true;
        th->conflict = bad;
        bump(&th->count[PX_STM_ABORT_STALE]);
        err = -ESTALE;
    }
    if (err < 0) {
        /* Unlock before returning: the caller runs code (a finalizer, a
         * stop-the-world) that may wait for a thread reading these. */
        unlock_writes(th);
        return err;
    }
    for (uint32_t i = 0; i < th->nwrites; i++) {
        write_entry_t *w = &th->writes[i];
        /* The old value goes to limbo; the location owns the new one. One
         * exchange: a clear of the location (the collector's, which takes
         * no lock) must not retire the same old value a second time. */
        void *old = atomic_exchange_explicit(&w->loc->value, w->value, memory_order_acq_rel);
        atomic_store_explicit(&w->loc->vlock, wv << 1, memory_order_release);
        w->value = old;
    }
    th->nlocked = 0;
    /* Stamp after the new values are visible: a reader pinned in a later
     * epoch can only find the new ones. */
    full_fence();
    epoch = atomic_load(&epoch_);
    for (uint32_t i = 0; i < th->nwrites; i++) {
        if (retire(th, th->writes[i].value, epoch) < 0) {
            /* No memory to wait with: keep the value for good rather than
             * release it under a reader. */
        }
        th->writes[i].value = NULL;
        th->since_advance++;
    }
    bump(&th->count[PX_STM_COMMITS]);
    return 0;
}

void px_stm_end(px_stm_thread_t *th)
{
    unlock_writes(th);
    for (uint32_t i = 0; i < th->nwrites; i++)
        (void)retire(th, th->writes[i].value, 0);
    for (uint32_t i = 0; i < th->nundo; i++)
        (void)retire(th, th->undo[i].value, 0);
    th->nwrites = th->nundo = th->nreads = th->sp_writes = 0;
    th->serial = false;
    px_stm_unpin(th);
    atomic_store_explicit(&th->in_tx, false, memory_order_release);
}

void px_stm_reclaim(px_stm_thread_t *th)
{
    if (!px_stm_active(th))
        reclaim(th);
}

/* ---- the irrevocable mode, backoff ------------------------------------------------ */

void px_stm_serial_enter(px_stm_thread_t *th)
{
    pthread_mutex_lock(&serial_mutex);
    atomic_store(&serial_flag, 1);
    /* Wait for the transactions that began before the flag to end. */
    for (unsigned spins = 0;; spins++) {
        bool busy = false;
        for (px_stm_thread_t *o = atomic_load(&registry); o != NULL && !busy; o = o->next)
            busy = o != th && atomic_load(&o->in_tx);
        if (!busy)
            return;
        if (spins < 64)
            sched_yield();
        else
            nanosleep(&(struct timespec){0, 50000}, NULL);
    }
}

void px_stm_serial_exit(px_stm_thread_t *th)
{
    (void)th;
    atomic_store(&serial_flag, 0);
    pthread_mutex_unlock(&serial_mutex);
}

void px_stm_wait_serial(void)
{
    pthread_mutex_lock(&serial_mutex);
    pthread_mutex_unlock(&serial_mutex);
}

void px_stm_backoff(px_stm_thread_t *th, unsigned attempt)
{
    uint64_t x = th->seed, cap_ns;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    th->seed = x;
    if (attempt <= 2) {
        sched_yield();
        return;
    }
    cap_ns = PX_MIN(1000000u, 2000u << PX_MIN(attempt, 9u));
    nanosleep(&(struct timespec){0, (long)(x % cap_ns)}, NULL);
}
