/*
 * Checks the results histogram (src/loadgen/hdr_histogram.h): bucket boundaries (exact
 * below 256, contiguous, within 1/128 of every value above), percentiles of
 * known distributions against exact answers, whole ranks kept whole, a rare
 * stall that must show at p99.9 and max but not at p99, min/max/mean/stdev,
 * clamping of huge values, merging (the same as recording everything in one),
 * and the percentile spectrum's shape.
 */
#include <math.h>

#include "hdr_histogram.h" /* private to the load generator */
#include "px_test.h"

/* |got - want| <= want / 128 (plus one for small values): the promised precision. */
#define CHECK_CLOSE(got, want)                                                          \
    do {                                                                                \
        uint64_t g_ = (got), w_ = (want);                                               \
        uint64_t d_ = g_ > w_ ? g_ - w_ : w_ - g_;                                      \
        if (d_ > w_ / 128 + 1)                                                          \
            PX_FAIL_("%s = %llu, want %llu within 1/128", #got, (unsigned long long)g_, \
                     (unsigned long long)w_);                                           \
    } while (0)

static px_hdr_t h, h2, h3;

static uint64_t rnd64(void)
{
    return ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
}

static void test_buckets(void)
{
    PX_CHECK_EQ(PX_HDR_BUCKETS, 3328);
    for (uint64_t v = 0; v < 256; v++) {
        PX_CHECK_EQ(px__hdr_bucket(v), v);
        PX_CHECK_EQ(px__hdr_bucket_low(v), v);
        PX_CHECK_EQ(px__hdr_bucket_high(v), v);
    }
    PX_CHECK_EQ(px__hdr_bucket_low(0), 0);
    for (size_t b = 0; b + 1 < PX_HDR_BUCKETS; b++) {
        uint64_t lo = px__hdr_bucket_low(b), hi = px__hdr_bucket_high(b);
        PX_CHECK_LE(lo, hi);
        PX_CHECK_EQ(hi + 1, px__hdr_bucket_low(b + 1));
        PX_CHECK_EQ(px__hdr_bucket(lo), b);
        PX_CHECK_EQ(px__hdr_bucket(hi), b);
        PX_CHECK_LE((hi - lo) * 128, lo); /* width within 1/128 of the values */
    }
    PX_CHECK_EQ(px__hdr_bucket_high(PX_HDR_BUCKETS - 1), PX_HDR_MAX_VALUE);
    PX_CHECK_EQ(px__hdr_bucket(PX_HDR_MAX_VALUE), PX_HDR_BUCKETS - 1);
    PX_CHECK_EQ(px__hdr_bucket(PX_HDR_MAX_VALUE + 1), PX_HDR_BUCKETS - 1);
    PX_CHECK_EQ(px__hdr_bucket(UINT64_MAX), PX_HDR_BUCKETS - 1);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = rnd64() % (PX_HDR_MAX_VALUE + 1);
        size_t b = px__hdr_bucket(v);
        PX_CHECK_LE(px__hdr_bucket_low(b), v);
        PX_CHECK_GE(px__hdr_bucket_high(b), v);
    }
}

static void test_uniform(void)
{
    px__hdr_init(&h);
    PX_CHECK_EQ(px__hdr_value_at(&h, 50), 0);
    PX_CHECK_EQ(px__hdr_spectrum(&h, 5, NULL, 0), 0);
    for (uint64_t v = 1; v <= 100000; v++)
        px__hdr_record(&h, v);
    PX_CHECK_EQ(h.total, 100000);
    PX_CHECK_EQ(h.min, 1);
    PX_CHECK_EQ(h.max, 100000);
    PX_CHECK_EQ(px__hdr_value_at(&h, 0), 1);
    CHECK_CLOSE(px__hdr_value_at(&h, 50), 50000);
    CHECK_CLOSE(px__hdr_value_at(&h, 90), 90000);
    CHECK_CLOSE(px__hdr_value_at(&h, 99), 99000);
    CHECK_CLOSE(px__hdr_value_at(&h, 99.9), 99900);
    PX_CHECK_EQ(px__hdr_value_at(&h, 100), 100000);
    /* Reported values are the top of their bucket: never below the truth. */
    PX_CHECK_GE(px__hdr_value_at(&h, 50), 50000);
    PX_CHECK_EQ(px__hdr_value_at(&h, 0.05), 50); /* exact range */
    PX_CHECK(fabs(px__hdr_mean(&h) - 50000.5) < 1e-6);
    PX_CHECK(fabs(px__hdr_stdev(&h) - 28867.513) < 0.01);
}

/* A server that answers in 1 ms, with a 50 ms stall for 0.2 % of the requests:
 * the stall shows from p99.9 on, not at p99 nor p50. */
static void test_stall(void)
{
    px__hdr_init(&h);
    for (int i = 0; i < 100000; i++)
        px__hdr_record(&h, i % 500 == 0 ? 50000 + (uint64_t)(i % 7) : 1000 + (uint64_t)(i % 50));
    CHECK_CLOSE(px__hdr_value_at(&h, 50), 1025);
    PX_CHECK_LT(px__hdr_value_at(&h, 99), 1060);
    PX_CHECK_GE(px__hdr_value_at(&h, 99.9), 50000);
    PX_CHECK_EQ(px__hdr_value_at(&h, 100), 50006);
}

/* Percentiles whose rank is a whole number must not be rounded up by the
 * floating-point error of p / 100 * total. */
static void test_exact_ranks(void)
{
    px__hdr_init(&h);
    for (int i = 0; i < 5994; i++)
        px__hdr_record(&h, 1);
    for (int i = 0; i < 6; i++)
        px__hdr_record(&h, 50000);
    PX_CHECK_EQ(px__hdr_value_at(&h, 99.9), 1);      /* rank 5994 of 6000 */
    PX_CHECK_GE(px__hdr_value_at(&h, 99.91), 50000); /* rank 5995 */
    px__hdr_init(&h);
    for (int i = 0; i < 999; i++)
        px__hdr_record(&h, 7);
    px__hdr_record(&h, 1000);
    PX_CHECK_EQ(px__hdr_value_at(&h, 99.9), 7);
    PX_CHECK_EQ(px__hdr_value_at(&h, 99.99), 1000);
    for (int total = 1; total <= 3000; total++) {
        /* p = 100 k / total for every k: the k-th value exactly. */
        px__hdr_init(&h);
        for (int i = 1; i <= total; i++)
            px__hdr_record(&h, (uint64_t)i);
        for (int k = 1; k <= total; k += 97)
            PX_CHECK_EQ(px__hdr_value_at(&h, 100.0 * k / total),
                        (uint64_t)k <= 255 ? (uint64_t)k
                        : px__hdr_bucket_high(px__hdr_bucket((uint64_t)k)) > (uint64_t)total
                            ? (uint64_t)total
                            : px__hdr_bucket_high(px__hdr_bucket((uint64_t)k)));
    }
}

static void test_clamp(void)
{
    px__hdr_init(&h);
    px__hdr_record(&h, 5);
    px__hdr_record(&h, UINT64_C(1) << 40);
    PX_CHECK_EQ(h.clamped, 1);
    PX_CHECK_EQ(h.counts[PX_HDR_BUCKETS - 1], 1);
    PX_CHECK_EQ(h.max, UINT64_C(1) << 40); /* the true max is kept */
    PX_CHECK_EQ(px__hdr_value_at(&h, 100), UINT64_C(1) << 40);
    PX_CHECK_EQ(px__hdr_value_at(&h, 50), 5);
    PX_CHECK_EQ(px__hdr_value_at(&h, 75), PX_HDR_MAX_VALUE);
}

static void test_merge(void)
{
    px__hdr_init(&h);
    px__hdr_init(&h2);
    px__hdr_init(&h3);
    for (int i = 0; i < 200000; i++) {
        uint64_t v = rnd64() % 10000000u;
        px__hdr_record(&h, v);
        px__hdr_record(i % 3 ? &h2 : &h3, v);
    }
    px__hdr_merge(&h2, &h3);
    PX_CHECK_EQ(h2.total, h.total);
    PX_CHECK_EQ(h2.min, h.min);
    PX_CHECK_EQ(h2.max, h.max);
    PX_CHECK_EQ(h2.sum, h.sum);
    PX_CHECK_EQ(memcmp(h2.counts, h.counts, sizeof(h.counts)), 0);
    for (double p = 0; p <= 100; p += 0.5)
        PX_CHECK_EQ(px__hdr_value_at(&h2, p), px__hdr_value_at(&h, p));
    /* Merging an empty one changes nothing (min stays, not UINT64_MAX). */
    px__hdr_init(&h3);
    px__hdr_merge(&h2, &h3);
    PX_CHECK_EQ(h2.min, h.min);
    PX_CHECK_EQ(h2.total, h.total);
}

static void test_spectrum(void)
{
    px_hdr_point_t rows[512];
    size_t n;

    px__hdr_init(&h);
    px__hdr_record(&h, 42);
    n = px__hdr_spectrum(&h, 5, rows, PX_ARRAY_SIZE(rows));
    PX_CHECK_EQ(n, 1);
    PX_CHECK(rows[0].percentile == 100.0);
    PX_CHECK_EQ(rows[0].value, 42);

    px__hdr_init(&h);
    for (int i = 0; i < 100000; i++)
        px__hdr_record(&h, 1 + rnd64() % 1000000u);
    n = px__hdr_spectrum(&h, 5, NULL, 0);
    PX_CHECK_LE(n, PX_ARRAY_SIZE(rows));
    PX_CHECK_EQ(px__hdr_spectrum(&h, 5, rows, PX_ARRAY_SIZE(rows)), n);
    /* 5 rows per halving of the distance to 100 %, down to 1 / 100000:
     * about 5 * log2(100000) = 83 rows. */
    PX_CHECK_GT(n, 75);
    PX_CHECK_LT(n, 95);
    PX_CHECK(rows[0].percentile == 0.0);
    PX_CHECK_EQ(rows[0].value, px__hdr_value_at(&h, 0));
    PX_CHECK(rows[1].percentile == 10.0);
    PX_CHECK(fabs(rows[5].percentile - 50.0) < 1e-9);
    PX_CHECK(fabs(rows[10].percentile - 75.0) < 1e-9);
    for (size_t i = 1; i < n; i++) {
        PX_CHECK(rows[i].percentile > rows[i - 1].percentile);
        PX_CHECK_GE(rows[i].value, rows[i - 1].value);
        PX_CHECK_GE(rows[i].total_count, rows[i - 1].total_count);
        PX_CHECK_EQ(rows[i].value, px__hdr_value_at(&h, rows[i].percentile));
        /* The count up to the reported bucket covers the percentile. */
        PX_CHECK_GE((double)rows[i].total_count, rows[i].percentile / 100.0 * 100000 - 1e-6);
    }
    PX_CHECK(rows[n - 1].percentile == 100.0);
    PX_CHECK_EQ(rows[n - 1].value, h.max);
    PX_CHECK_EQ(rows[n - 1].total_count, 100000);
    /* The last row below 100 needs the second-largest value or less. */
    PX_CHECK(rows[n - 2].percentile > 99.99);
    PX_CHECK(rows[n - 2].percentile <= 99.999);
    /* A short buffer gets the first rows only, and the true count back. */
    PX_CHECK_EQ(px__hdr_spectrum(&h, 5, rows, 3), n);
}

int main(void)
{
    srand(3);
    test_buckets();
    test_uniform();
    test_stall();
    test_exact_ranks();
    test_clamp();
    test_merge();
    test_spectrum();
    printf("hdr_histogram: ok\n");
    return 0;
}
