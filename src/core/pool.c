/*
 * Slab pool and bump arena.
 *
 * A slab is one allocation: a 16-byte header (the slab list link) followed by
 * per_slab objects. Free objects hold the free-list link in their first bytes.
 * An arena chunk is a pool object whose first 16 bytes link the arena's chunk
 * list; oversized requests are separate allocations with the same header.
 *
 * Under AddressSanitizer, free pool objects and the unused tail of an arena
 * chunk are poisoned, so a use after free or an overrun is reported even
 * though the memory stays inside our own slabs.
 */
#include <errno.h>
#include <stdlib.h>

#include "px/pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

#ifdef HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define poison(p, n) ((void)(p), (void)(n))
#define unpoison(p, n) ((void)(p), (void)(n))
#endif

/* Keeps what follows a header 16-byte aligned. */
#define HDR 16u
#define ALIGN 16u

struct link {
    struct link *next;
};

static size_t round_up(size_t n)
{
    return (n + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
}

/* size bytes behind a 16-byte header, 16-byte aligned; NULL on failure. */
static struct link *alloc_with_header(size_t size)
{
    void *mem;

    if (size > SIZE_MAX - HDR || posix_memalign(&mem, ALIGN, HDR + size) != 0)
        return NULL;
    return mem;
}

static size_t slab_bytes(const px_pool_t *p)
{
    return HDR + p->per_slab * p->obj_size;
}

int px_pool_init(px_pool_t *p, size_t obj_size, size_t per_slab)
{
    if (obj_size == 0 || per_slab == 0 || obj_size > SIZE_MAX - ALIGN)
        return -EINVAL;
    obj_size = round_up(obj_size);
    if (per_slab > (SIZE_MAX - HDR) / obj_size)
        return -EINVAL;
    p->obj_size = obj_size;
    p->per_slab = per_slab;
    p->_free = NULL;
    p->_slabs = NULL;
    p->in_use = 0;
    p->capacity = 0;
    return 0;
}

static int grow(px_pool_t *p)
{
    struct link *slab = alloc_with_header(p->per_slab * p->obj_size);
    char *objs;

    if (slab == NULL)
        return -ENOMEM;
    slab->next = p->_slabs;
    p->_slabs = slab;
    objs = (char *)slab + HDR;
    /* Thread back to front so that allocation walks the slab in address
     * order. */
    for (size_t i = p->per_slab; i-- > 0;) {
        struct link *obj = (struct link *)(objs + i * p->obj_size);

        obj->next = p->_free;
        p->_free = obj;
        poison(obj, p->obj_size);
    }
    p->capacity += p->per_slab;
    return 0;
}

void *px_pool_alloc(px_pool_t *p)
{
    struct link *obj;

    if (p->_free == NULL && grow(p) < 0)
        return NULL;
    obj = p->_free;
    unpoison(obj, p->obj_size);
    p->_free = obj->next;
    p->in_use++;
    return obj;
}

void px_pool_free(px_pool_t *p, void *obj)
{
    struct link *l = obj;

    if (l == NULL)
        return;
    l->next = p->_free;
    p->_free = l;
    p->in_use--;
    poison(l, p->obj_size);
}

size_t px_pool_bytes(const px_pool_t *p)
{
    return p->capacity / p->per_slab * slab_bytes(p);
}

void px_pool_destroy(px_pool_t *p)
{
    struct link *slab = p->_slabs, *next;

    while (slab != NULL) {
        next = slab->next;
        unpoison(slab, slab_bytes(p));
        free(slab);
        slab = next;
    }
    p->_free = NULL;
    p->_slabs = NULL;
    p->in_use = 0;
    p->capacity = 0;
}

void px_arena_init(px_arena_t *a, px_pool_t *chunks)
{
    a->chunks = chunks;
    a->_chunk_list = NULL;
    a->_big_list = NULL;
    a->_cur = NULL;
    a->_end = NULL;
    a->used = 0;
}

/* Free bytes in the newest chunk (none before the first one). */
static size_t room(const px_arena_t *a)
{
    return a->_cur == NULL ? 0 : (size_t)(a->_end - a->_cur);
}

static void *alloc_big(px_arena_t *a, size_t size)
{
    struct link *big = alloc_with_header(size);

    if (big == NULL)
        return NULL;
    big->next = a->_big_list;
    a->_big_list = big;
    return (char *)big + HDR;
}

void *px_arena_alloc(px_arena_t *a, size_t size)
{
    size_t chunk_size = a->chunks->obj_size;
    size_t rounded;
    struct link *chunk;
    char *p;

    if (size > SIZE_MAX - 2 * HDR)
        return NULL;
    /* Each call gets its own address, even for size 0. */
    rounded = size == 0 ? ALIGN : round_up(size);
    if (rounded > room(a)) {
        if (chunk_size <= HDR || rounded > chunk_size - HDR) {
            p = alloc_big(a, size);
            if (p == NULL)
                return NULL;
            a->used += rounded;
            return p;
        }
        /* The rest of the current chunk is abandoned until the next reset. */
        chunk = px_pool_alloc(a->chunks);
        if (chunk == NULL)
            return NULL;
        chunk->next = a->_chunk_list;
        a->_chunk_list = chunk;
        a->_cur = (char *)chunk + HDR;
        a->_end = (char *)chunk + chunk_size;
        poison(a->_cur, room(a));
    }
    p = a->_cur;
    a->_cur += rounded;
    a->used += rounded;
    unpoison(p, size);
    return p;
}

void px_arena_reset(px_arena_t *a)
{
    struct link *l, *next;

    for (l = a->_chunk_list; l != NULL; l = next) {
        next = l->next;
        px_pool_free(a->chunks, l);
    }
    for (l = a->_big_list; l != NULL; l = next) {
        next = l->next;
        free(l);
    }
    a->_chunk_list = NULL;
    a->_big_list = NULL;
    a->_cur = NULL;
    a->_end = NULL;
    a->used = 0;
}
