/*
 * Checks the log-linear histogram: the buckets tile the whole uint64_t range
 * with no gap or overlap and none is wider than 1/16 of its values; quantiles
 * of random samples are within half a bucket of the exact ones; merging equals
 * recording everything in one histogram; and a reader merging while the owner
 * records sees counts that only grow and end exact.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "px/histogram.h"
#include "px_test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng(void)
{
    /* xorshift64*: reproducible, good enough to spread values over buckets */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

static void check_buckets(void)
{
    unsigned i;

    PX_CHECK_EQ(px_hist_lower(0), 0);
    PX_CHECK(px_hist_upper(PX_HIST_BUCKETS - 1) == UINT64_MAX);
    for (i = 0; i < PX_HIST_BUCKETS; i++) {
        uint64_t lo = px_hist_lower(i), hi = px_hist_upper(i);

        PX_CHECK(lo <= hi);
        PX_CHECK_EQ(px_hist_index(lo), i);
        PX_CHECK_EQ(px_hist_index(hi), i);
        PX_CHECK_EQ(px_hist_index(lo + (hi - lo) / 2), i);
        if (i + 1 < PX_HIST_BUCKETS)
            PX_CHECK(hi + 1 == px_hist_lower(i + 1));
        /* width - 1 <= lower / 16: the relative precision the header promises */
        PX_CHECK((hi - lo) * PX_HIST_SUB <= lo || lo < 2 * PX_HIST_SUB);
    }
    PX_CHECK_EQ(px_hist_index(UINT64_MAX), PX_HIST_BUCKETS - 1);
    PX_CHECK_EQ(px_hist_index(31), 31);
    PX_CHECK_EQ(px_hist_index(32), 32);
    PX_CHECK_EQ(px_hist_index(1000), px_hist_index(1001)); /* 1000..1023 share one */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#define NSAMPLES 200000

static void check_quantiles(void)
{
    static px_histogram_t h;
    static uint64_t v[NSAMPLES];
    static const double qs[] = {0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0};
    px_hist_snapshot_t s;
    uint64_t sum = 0, max = 0;
    size_t i, k;

    px_hist_init(&h);
    for (i = 0; i < NSAMPLES; i++) {
        /* latencies of 1 us .. ~1 s, log-spread, as a server sees them */
        uint64_t x = 1000u + (rng() >> (rng() % 44 + 20));
        v[i] = x;
        sum += x;
        max = x > max ? x : max;
        px_hist_record(&h, x);
    }
    px_hist_snapshot_init(&s);
    px_hist_merge(&s, &h);
    PX_CHECK_EQ(s.count, NSAMPLES);
    PX_CHECK(s.sum == sum);
    PX_CHECK(s.max == max);
    qsort(v, NSAMPLES, sizeof(v[0]), cmp_u64);
    for (k = 0; k < PX_ARRAY_SIZE(qs); k++) {
        size_t rank = (size_t)(qs[k] * NSAMPLES);
        uint64_t exact, got, err;

        if ((double)rank < qs[k] * NSAMPLES)
            rank++;
        exact = v[rank ? rank - 1 : 0];
        got = px_hist_quantile(&s, qs[k]);
        err = got > exact ? got - exact : exact - got;
        /* half a bucket at most, i.e. 1/32 of the value */
        if (err * 32 > exact)
            PX_FAIL_("q=%g: got %" PRIu64 ", exact %" PRIu64, qs[k], got, exact);
    }
    PX_CHECK(px_hist_quantile(&s, 1.0) == max);
}

static void check_small_exact(void)
{
    px_histogram_t h;
    px_hist_snapshot_t s;
    uint64_t i;

    px_hist_init(&h);
    px_hist_snapshot_init(&s);
    PX_CHECK_EQ(px_hist_quantile(&s, 0.5), 0); /* empty */
    for (i = 1; i <= 20; i++)
        px_hist_record(&h, i);
    px_hist_merge(&s, &h);
    PX_CHECK_EQ(px_hist_quantile(&s, 0.5), 10);
    PX_CHECK_EQ(px_hist_quantile(&s, 0.9), 18);
    PX_CHECK_EQ(px_hist_quantile(&s, 0.0), 1);
    PX_CHECK_EQ(px_hist_quantile(&s, 1.0), 20);
    PX_CHECK_EQ(s.sum, 210);
}

static void check_merge(void)
{
    static px_histogram_t a, b, all;
    px_hist_snapshot_t sa, sall;
    int i;

    px_hist_init(&a);
    px_hist_init(&b);
    px_hist_init(&all);
    for (i = 0; i < 50000; i++) {
        uint64_t x = rng() >> (rng() % 60);
        px_hist_record(i & 1 ? &a : &b, x);
        px_hist_record(&all, x);
    }
    px_hist_snapshot_init(&sa);
    px_hist_merge(&sa, &a);
    px_hist_merge(&sa, &b);
    px_hist_snapshot_init(&sall);
    px_hist_merge(&sall, &all);
    PX_CHECK_MEM(&sa, &sall, sizeof(sa));
}

/* One owner records while this thread merges: counts never go back. */
static px_histogram_t shared;
static _Atomic bool writer_done;
#define NWRITES 2000000

static void *writer(void *arg)
{
    int i;
    (void)arg;
    for (i = 0; i < NWRITES; i++)
        px_hist_record(&shared, (uint64_t)(i % 5000) * 100u);
    atomic_store(&writer_done, true);
    return NULL;
}

static void check_concurrent_reader(void)
{
    pthread_t t;
    uint64_t last = 0;
    px_hist_snapshot_t s;
    int reads = 0;

    px_hist_init(&shared);
    PX_CHECK_EQ(pthread_create(&t, NULL, writer, NULL), 0);
    while (!atomic_load(&writer_done)) {
        px_hist_snapshot_init(&s);
        px_hist_merge(&s, &shared);
        PX_CHECK(s.count >= last);
        PX_CHECK(s.count <= NWRITES);
        last = s.count;
        reads++;
    }
    pthread_join(t, NULL);
    px_hist_snapshot_init(&s);
    px_hist_merge(&s, &shared);
    PX_CHECK_EQ(s.count, NWRITES);
    PX_CHECK_EQ(s.max, 4999u * 100u);
    PX_CHECK(reads > 0);
}

int main(void)
{
    check_buckets();
    check_small_exact();
    check_quantiles();
    check_merge();
    check_concurrent_reader();
    printf("histogram: ok\n");
    return 0;
}
