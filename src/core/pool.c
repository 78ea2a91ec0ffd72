/*
 * Slab pool and bump arena.
 *
 * A slab is one mapping: a 16-byte header (the slab list link and an idle
 * mark) followed by per_slab objects. Free objects hold the free-list link in
 * their first bytes. An arena chunk is a pool object whose first 16 bytes link
 * the arena's chunk list; oversized requests are separate allocations with a
 * 16-byte header too.
 *
 * Slabs are mapped, not taken from malloc, so that a released slab is returned
 * to the system at once: glibc keeps freed memory in its per-thread arenas (and
 * raises its mmap threshold after a large free), so a burst's slabs would stay
 * resident until a malloc_trim that walks every arena of the process.
 *
 * Under AddressSanitizer, free pool objects and the unused tail of an arena
 * chunk are poisoned, so a use after free or an overrun is reported even
 * though the memory stays inside our own slabs.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* A slab's header (HDR bytes). */
struct slab {
    struct slab *next;
    size_t idle; /* every object was free at the last px_pool_release_idle */
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

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    return (n + page - 1) / page * page;
}

/* The size of a slab's mapping. */
static size_t slab_bytes(const px_pool_t *p)
{
    return page_round(HDR + p->per_slab * p->obj_size);
}

int px_pool_init(px_pool_t *p, size_t obj_size, size_t per_slab)
{
    if (obj_size == 0 || per_slab == 0 || obj_size > SIZE_MAX - ALIGN)
        return -EINVAL;
    obj_size = round_up(obj_size);
    if (per_slab > (SIZE_MAX / 2 - HDR) / obj_size)
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
    struct slab *slab = mmap(NULL, slab_bytes(p), PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *objs;

    if (slab == MAP_FAILED)
        return -ENOMEM;
    slab->next = p->_slabs;
    slab->idle = 0;
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

/* The slab (in slabs, sorted by address) that holds obj. */
static size_t slab_index(struct slab **slabs, size_t n, const void *obj)
{
    size_t lo = 0, hi = n;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((const char *)slabs[mid] <= (const char *)obj)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int by_address(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;

    return (x > y) - (x < y);
}

static void unmap_slab(const px_pool_t *p, struct slab *slab)
{
    unpoison(slab, slab_bytes(p)); /* the shadow would outlive the mapping */
    munmap(slab, slab_bytes(p));
}

size_t px_pool_release_idle(px_pool_t *p)
{
    size_t n = p->per_slab ? p->capacity / p->per_slab : 0, i, released = 0;
    struct slab **slabs, *slab, **link;
    struct link *obj;
    size_t *nfree;

    if (n == 0)
        return 0;
    slabs = malloc(n * sizeof(*slabs));
    nfree = calloc(n, sizeof(*nfree));
    if (slabs == NULL || nfree == NULL) {
        free(slabs);
        free(nfree);
        return 0; /* kept for now; tried again at the next call */
    }
    for (i = 0, slab = p->_slabs; slab != NULL; slab = slab->next)
        slabs[i++] = slab;
    qsort(slabs, n, sizeof(*slabs), by_address);
    for (obj = p->_free; obj != NULL;) {
        struct link *next;

        unpoison(obj, sizeof(*obj));
        next = obj->next;
        poison(obj, sizeof(*obj));
        nfree[slab_index(slabs, n, obj)]++;
        obj = next;
    }
    /* Free at two calls in a row: idle for at least the interval between them.
     * nfree[i] becomes 1 for the slabs to release. */
    for (i = 0; i < n; i++) {
        bool all_free = nfree[i] == p->per_slab;

        nfree[i] = all_free && slabs[i]->idle;
        slabs[i]->idle = all_free;
        released += nfree[i];
    }
    if (released > 0) {
        struct link *head = NULL, *tail = NULL, *next;

        for (obj = p->_free; obj != NULL; obj = next) {
            unpoison(obj, sizeof(*obj));
            next = obj->next;
            poison(obj, sizeof(*obj));
            if (nfree[slab_index(slabs, n, obj)])
                continue;
            if (tail != NULL) {
                unpoison(tail, sizeof(*tail));
                tail->next = obj;
                poison(tail, sizeof(*tail));
            } else {
                head = obj;
            }
            tail = obj;
        }
        if (tail != NULL) {
            unpoison(tail, sizeof(*tail));
            tail->next = NULL;
            poison(tail, sizeof(*tail));
        }
        p->_free = head;
        for (link = (struct slab **)&p->_slabs; (slab = *link) != NULL;) {
            if (nfree[slab_index(slabs, n, slab)]) {
                *link = slab->next;
                unmap_slab(p, slab);
            } else {
                link = &slab->next;
            }
        }
        p->capacity -= released * p->per_slab;
    }
    free(slabs);
    free(nfree);
    return released * slab_bytes(p);
}

void px_pool_destroy(px_pool_t *p)
{
    struct slab *slab = p->_slabs, *next;

    while (slab != NULL) {
        next = slab->next;
        unmap_slab(p, slab);
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
