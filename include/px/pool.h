/*
 * Per-worker memory: a fixed-size object pool (connection slabs, send chunks)
 * and a bump arena for per-request data, cleared in one step.
 *
 * Neither is thread-safe: each belongs to one worker. Allocation failures return
 * NULL (never abort: we live inside a Python process).
 */
#ifndef PX_POOL_H
#define PX_POOL_H

#include "px/common.h"

typedef struct px_pool {
    size_t obj_size; /* rounded up to 16 */
    size_t per_slab; /* objects per slab allocation */
    void *_free;     /* free list */
    void *_slabs;    /* list of slabs, for destroy */
    size_t in_use;   /* objects handed out */
    size_t capacity; /* objects in all slabs */
} px_pool_t;

/* Returns 0 or -EINVAL (obj_size 0, per_slab 0, or a slab too big for size_t).
 * Allocates nothing yet. */
int px_pool_init(px_pool_t *p, size_t obj_size, size_t per_slab);

/* An uninitialised object of obj_size bytes, 16-byte aligned; NULL on ENOMEM. */
void *px_pool_alloc(px_pool_t *p);

/* Return obj (from this pool) for reuse. NULL is ignored. */
void px_pool_free(px_pool_t *p, void *obj);

/* Bytes reserved from the system by this pool. */
size_t px_pool_bytes(const px_pool_t *p);

/* Return to the system every slab that had no object in use at this call and
 * at the previous one (so, called every T ms, a slab goes after 1 to 2 T
 * unused). Returns the bytes released. O(free objects x log slabs): for a
 * timer, not for the hot path, which stays untouched. */
size_t px_pool_release_idle(px_pool_t *p);

/* Release every slab. Objects still in use become invalid. */
void px_pool_destroy(px_pool_t *p);

/* A bump allocator over chunks taken from a pool of fixed-size chunks. Each
 * chunk keeps a 16-byte header, so requests larger than the chunk size minus 16
 * get a dedicated allocation, released by the next reset. */
typedef struct px_arena {
    px_pool_t *chunks; /* chunk source; its obj_size is the chunk size */
    void *_chunk_list; /* chunks in use, newest first */
    void *_big_list;   /* oversized allocations */
    char *_cur, *_end; /* free space in the newest chunk */
    size_t used;       /* bytes handed out since the last reset (each
                          request rounded up to 16) */
} px_arena_t;

void px_arena_init(px_arena_t *a, px_pool_t *chunks);

/* size bytes, 16-byte aligned, valid until the next reset; NULL on ENOMEM. */
void *px_arena_alloc(px_arena_t *a, size_t size);

/* Free everything allocated since init or the last reset, keeping nothing but
 * returning the chunks to their pool (an idle request holds no memory). */
void px_arena_reset(px_arena_t *a);

#endif
