/*
 * Checks the object pool and the arena: argument checks, reuse, 16-byte
 * alignment, capacity/in_use/bytes accounting, 100,000 objects under random
 * alloc/free patterns with no two live objects overlapping, arena small and
 * oversized allocations, that a reset gives every chunk back, and that slabs
 * unused at two calls of px_pool_release_idle go back to the system.
 */
#include <errno.h>
#include <unistd.h>

#include "px/pool.h"
#include "px_test.h"

static uint32_t rng_state = 88172645u;

static uint32_t rnd(void)
{
    return px_test_rand32(&rng_state);
}

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

/* Byte i of the object tagged tag: overlaps or stray writes break it. */
static unsigned char pattern(size_t tag, size_t i)
{
    return (unsigned char)(tag * 131 + i * 7 + (tag >> 8));
}

static void fill(void *p, size_t n, size_t tag)
{
    unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        b[i] = pattern(tag, i);
}

static void verify(const void *p, size_t n, size_t tag)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern(tag, i))
            PX_FAIL_("object %zu corrupted at byte %zu", tag, i);
}

/* n rounded up to whole pages: the granularity of a slab. */
static size_t pages(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    return (n + page - 1) / page * page;
}

static void test_init(void)
{
    px_pool_t p;

    PX_CHECK_EQ(px_pool_init(&p, 0, 8), -EINVAL);
    PX_CHECK_EQ(px_pool_init(&p, 16, 0), -EINVAL);
    PX_CHECK_EQ(px_pool_init(&p, SIZE_MAX, 1), -EINVAL);
    /* The slab size would overflow. */
    PX_CHECK_EQ(px_pool_init(&p, SIZE_MAX / 4, 8), -EINVAL);

    PX_CHECK_EQ(px_pool_init(&p, 1, 8), 0);
    PX_CHECK_EQ(p.obj_size, 16);
    PX_CHECK_EQ(p.capacity, 0);
    PX_CHECK_EQ(p.in_use, 0);
    PX_CHECK_EQ(px_pool_bytes(&p), 0); /* allocates nothing yet */
    px_pool_destroy(&p);
    PX_CHECK_EQ(px_pool_init(&p, 24, 8), 0);
    PX_CHECK_EQ(p.obj_size, 32);
    PX_CHECK_EQ(px_pool_init(&p, 48, 8), 0);
    PX_CHECK_EQ(p.obj_size, 48);
    px_pool_destroy(&p);
}

static void test_basic(void)
{
    px_pool_t p;
    void *obj[20], *again;
    size_t one_slab;

    PX_CHECK_EQ(px_pool_init(&p, 40, 8), 0);
    obj[0] = px_pool_alloc(&p);
    PX_CHECK(obj[0] != NULL && aligned16(obj[0]));
    PX_CHECK_EQ(p.in_use, 1);
    PX_CHECK_EQ(p.capacity, 8);
    one_slab = px_pool_bytes(&p);
    PX_CHECK_GE(one_slab, 8 * p.obj_size);
    /* A small slab header; slabs are whole pages (mapped). */
    PX_CHECK_LE(one_slab, pages(8 * p.obj_size + 64));

    /* The last object freed is the next one handed out (still warm). */
    px_pool_free(&p, obj[0]);
    PX_CHECK_EQ(p.in_use, 0);
    again = px_pool_alloc(&p);
    PX_CHECK(again == obj[0]);
    px_pool_free(&p, NULL); /* ignored */
    PX_CHECK_EQ(p.in_use, 1);

    for (int i = 1; i < 20; i++) {
        obj[i] = px_pool_alloc(&p);
        PX_CHECK(obj[i] != NULL && aligned16(obj[i]));
        fill(obj[i], p.obj_size, (size_t)i);
    }
    PX_CHECK_EQ(p.in_use, 20);
    PX_CHECK_EQ(p.capacity, 24); /* three slabs of 8 */
    PX_CHECK_EQ(px_pool_bytes(&p), 3 * one_slab);
    for (int i = 1; i < 20; i++)
        verify(obj[i], p.obj_size, (size_t)i);
    for (int i = 0; i < 20; i++)
        px_pool_free(&p, obj[i]);
    PX_CHECK_EQ(p.in_use, 0);
    PX_CHECK_EQ(p.capacity, 24); /* slabs stay until destroy */

    /* Freed objects are reused before any new slab. */
    for (int i = 0; i < 24; i++)
        PX_CHECK(px_pool_alloc(&p) != NULL);
    PX_CHECK_EQ(p.capacity, 24);
    px_pool_destroy(&p);
    PX_CHECK_EQ(p.capacity, 0);
    PX_CHECK_EQ(p.in_use, 0);
    PX_CHECK_EQ(px_pool_bytes(&p), 0);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a;
    uintptr_t y = (uintptr_t) * (void *const *)b;

    return x < y ? -1 : x > y;
}

#define NOBJ 100000

/* No two live objects may share a byte. */
static void check_disjoint(void **live, size_t n, size_t size)
{
    static void *sorted[NOBJ];

    memcpy(sorted, live, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_ptr);
    for (size_t i = 1; i < n; i++)
        PX_CHECK_GE((uintptr_t)sorted[i] - (uintptr_t)sorted[i - 1], size);
}

static void test_random(void)
{
    static void *obj[NOBJ];
    static size_t tag[NOBJ];
    static void *live[NOBJ];
    px_pool_t p;
    size_t n = 0, peak = 0, next_tag = 1;

    PX_CHECK_EQ(px_pool_init(&p, 40, 64), 0);
    for (size_t i = 0; i < NOBJ; i++) {
        obj[i] = px_pool_alloc(&p);
        PX_CHECK(obj[i] != NULL && aligned16(obj[i]));
        tag[i] = next_tag++;
        fill(obj[i], p.obj_size, tag[i]);
    }
    n = peak = NOBJ;
    PX_CHECK_EQ(p.in_use, NOBJ);
    PX_CHECK_EQ(p.capacity, (NOBJ + 63) / 64 * 64);

    /* Rounds of random frees (sometimes most, sometimes few) and refills
     * with fresh tags; every live object keeps its pattern throughout. */
    for (int round = 0; round < 8; round++) {
        uint32_t keep = rnd() % 100;
        size_t live_n = 0;

        for (size_t i = 0; i < NOBJ; i++) {
            if (obj[i] == NULL || rnd() % 100 < keep)
                continue;
            verify(obj[i], p.obj_size, tag[i]);
            px_pool_free(&p, obj[i]);
            obj[i] = NULL;
            n--;
        }
        PX_CHECK_EQ(p.in_use, n);
        for (size_t i = 0; i < NOBJ; i++) {
            if (obj[i] != NULL || rnd() % 4 == 0)
                continue;
            obj[i] = px_pool_alloc(&p);
            PX_CHECK(obj[i] != NULL && aligned16(obj[i]));
            tag[i] = next_tag++;
            fill(obj[i], p.obj_size, tag[i]);
            n++;
        }
        PX_CHECK_EQ(p.in_use, n);
        peak = PX_MAX(peak, n);
        /* No slab beyond what the peak needed. */
        PX_CHECK_EQ(p.capacity, (peak + 63) / 64 * 64);
        for (size_t i = 0; i < NOBJ; i++) {
            if (obj[i] == NULL)
                continue;
            verify(obj[i], p.obj_size, tag[i]);
            live[live_n++] = obj[i];
        }
        PX_CHECK_EQ(live_n, n);
        check_disjoint(live, live_n, p.obj_size);
    }
    PX_CHECK_GE(px_pool_bytes(&p), p.capacity * p.obj_size);
    PX_CHECK_LE(px_pool_bytes(&p), p.capacity / 64 * pages(64 * p.obj_size + 64));
    for (size_t i = 0; i < NOBJ; i++)
        px_pool_free(&p, obj[i]);
    PX_CHECK_EQ(p.in_use, 0);
    px_pool_destroy(&p);
}

#define CHUNK 4096

/* Slabs free at two calls in a row go back; the rest, and the objects in use,
 * stay intact, and the pool grows again after. */
static void test_release_idle(void)
{
    px_pool_t p;
    void *obj[32];
    size_t one_slab;

    PX_CHECK_EQ(px_pool_init(&p, 100, 8), 0);
    PX_CHECK_EQ(px_pool_release_idle(&p), 0); /* nothing yet */
    for (size_t i = 0; i < 32; i++) {         /* four slabs */
        obj[i] = px_pool_alloc(&p);
        PX_CHECK(obj[i] != NULL);
        fill(obj[i], p.obj_size, i);
    }
    one_slab = px_pool_bytes(&p) / 4;
    /* Keep the first slab's objects in use, free the other three slabs. */
    for (size_t i = 8; i < 32; i++)
        px_pool_free(&p, obj[i]);
    PX_CHECK_EQ(px_pool_release_idle(&p), 0); /* free once: marked, kept */
    PX_CHECK_EQ(p.capacity, 32);
    PX_CHECK_EQ(px_pool_release_idle(&p), 3 * one_slab);
    PX_CHECK_EQ(p.capacity, 8);
    PX_CHECK_EQ(px_pool_bytes(&p), one_slab);
    for (size_t i = 0; i < 8; i++)
        verify(obj[i], p.obj_size, i);
    /* In use at a call: kept, and its mark cleared. */
    px_pool_free(&p, obj[7]);
    PX_CHECK_EQ(px_pool_release_idle(&p), 0);
    obj[7] = px_pool_alloc(&p);
    fill(obj[7], p.obj_size, 7);
    PX_CHECK_EQ(p.capacity, 8);
    for (size_t i = 8; i < 32; i++) { /* grows again */
        obj[i] = px_pool_alloc(&p);
        PX_CHECK(obj[i] != NULL);
        fill(obj[i], p.obj_size, i);
    }
    check_disjoint(obj, 32, p.obj_size);
    for (size_t i = 0; i < 32; i++) {
        verify(obj[i], p.obj_size, i);
        px_pool_free(&p, obj[i]);
    }
    PX_CHECK_EQ(px_pool_release_idle(&p), 0);
    PX_CHECK_EQ(px_pool_release_idle(&p), 4 * one_slab);
    PX_CHECK_EQ(p.capacity, 0);
    PX_CHECK(px_pool_alloc(&p) != NULL); /* usable after losing every slab */
    px_pool_destroy(&p);
}

static void test_arena(void)
{
    px_pool_t chunks;
    px_arena_t a;
    static void *ptr[2000];
    static size_t len[2000];
    const size_t sizes[] = {1, 7, 16, 17, 100, 0, 15, 33};
    size_t used = 0, usable, cap, before;
    void *big, *p;

    PX_CHECK_EQ(px_pool_init(&chunks, CHUNK, 4), 0);
    px_arena_init(&a, &chunks);
    PX_CHECK_EQ(a.used, 0);
    PX_CHECK_EQ(chunks.in_use, 0); /* nothing taken before the first alloc */

    /* Small sizes: aligned, disjoint, counted rounded up to 16. */
    for (size_t i = 0; i < PX_ARRAY_SIZE(sizes); i++) {
        ptr[i] = px_arena_alloc(&a, sizes[i]);
        PX_CHECK(ptr[i] != NULL && aligned16(ptr[i]));
        len[i] = sizes[i];
        fill(ptr[i], len[i], i);
        used += sizes[i] == 0 ? 16 : (sizes[i] + 15) / 16 * 16;
        PX_CHECK_EQ(a.used, used);
    }
    PX_CHECK(ptr[5] != ptr[4] && ptr[5] != ptr[6]); /* size 0 is distinct */
    PX_CHECK_EQ(chunks.in_use, 1);
    for (size_t i = 0; i < PX_ARRAY_SIZE(sizes); i++)
        verify(ptr[i], len[i], i);

    /* Enough to need many chunks; then oversized requests. */
    for (size_t i = 0; i < 2000; i++) {
        len[i] = rnd() % 300 + 1;
        ptr[i] = px_arena_alloc(&a, len[i]);
        PX_CHECK(ptr[i] != NULL && aligned16(ptr[i]));
        fill(ptr[i], len[i], i);
    }
    PX_CHECK_GT(chunks.in_use, 60);
    for (size_t i = 0; i < 2000; i++)
        verify(ptr[i], len[i], i);

    /* The largest request that fits a chunk takes one; one byte more is
     * allocated on its own and costs no chunk. */
    usable = CHUNK - 16;
    before = chunks.in_use;
    p = px_arena_alloc(&a, usable);
    PX_CHECK(p != NULL && aligned16(p));
    fill(p, usable, 7);
    PX_CHECK_EQ(chunks.in_use, before + 1);
    big = px_arena_alloc(&a, usable + 1);
    PX_CHECK(big != NULL && aligned16(big));
    fill(big, usable + 1, 9);
    PX_CHECK_EQ(chunks.in_use, before + 1);
    for (int i = 0; i < 10; i++) {
        void *q = px_arena_alloc(&a, 100000 + (size_t)i * 4097);

        PX_CHECK(q != NULL && aligned16(q));
        fill(q, 100000, (size_t)i);
    }
    PX_CHECK_EQ(chunks.in_use, before + 1);
    verify(p, usable, 7);
    verify(big, usable + 1, 9);

    /* Sizes that cannot be represented fail cleanly. */
    used = a.used;
    PX_CHECK(px_arena_alloc(&a, SIZE_MAX) == NULL);
    PX_CHECK(px_arena_alloc(&a, SIZE_MAX - 15) == NULL);
    PX_CHECK_EQ(a.used, used);

    /* Reset: every chunk back in the pool, big blocks freed (the leak
     * checker would notice otherwise), nothing counted. */
    px_arena_reset(&a);
    PX_CHECK_EQ(a.used, 0);
    PX_CHECK_EQ(chunks.in_use, 0);
    px_arena_reset(&a); /* twice: harmless */
    PX_CHECK_EQ(chunks.in_use, 0);

    /* Request after request: the chunks are reused, the pool stops growing. */
    cap = chunks.capacity;
    for (int req = 0; req < 1000; req++) {
        size_t n = rnd() % 50;

        for (size_t i = 0; i < n; i++) {
            size_t sz = rnd() % 8 == 0 ? rnd() % 6000 : rnd() % 200;

            p = px_arena_alloc(&a, sz);
            PX_CHECK(p != NULL && aligned16(p));
            memset(p, 0xa5, sz);
        }
        px_arena_reset(&a);
        PX_CHECK_EQ(chunks.in_use, 0);
    }
    PX_CHECK_EQ(chunks.capacity, cap);
    px_pool_destroy(&chunks);

    /* Chunks with no room beyond the header: everything goes big. */
    PX_CHECK_EQ(px_pool_init(&chunks, 16, 4), 0);
    px_arena_init(&a, &chunks);
    p = px_arena_alloc(&a, 1);
    PX_CHECK(p != NULL && aligned16(p));
    PX_CHECK_EQ(chunks.in_use, 0);
    px_arena_reset(&a);
    px_pool_destroy(&chunks);
}

int main(void)
{
    test_init();
    test_basic();
    test_random();
    test_release_idle();
    test_arena();
    printf("ok\n");
    return 0;
}
