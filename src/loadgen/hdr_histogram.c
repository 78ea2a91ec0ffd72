/*
 * Log-linear latency histogram. Bucket b < 2 * SUB holds the value b; above,
 * with s = b / SUB - 1, bucket b holds [m << s, ((m + 1) << s) - 1] where
 * m = b - s * SUB lies in [SUB, 2 * SUB): a mantissa of 8 bits, an exponent s.
 */
#include <math.h>
#include <string.h>

#include "hdr_histogram.h"

void px__hdr_init(px_hdr_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t px__hdr_bucket(uint64_t value)
{
    unsigned shift;

    if (value > PX_HDR_MAX_VALUE)
        value = PX_HDR_MAX_VALUE;
    if (value < 2 * PX_HDR_SUB)
        return (size_t)value;
    /* The highest set bit is at 63 - clz; keep the top SUB_BITS + 1 bits. */
    shift = (unsigned)(63 - __builtin_clzll(value)) - PX_HDR_SUB_BITS;
    return (size_t)shift * PX_HDR_SUB + (size_t)(value >> shift);
}

uint64_t px__hdr_bucket_low(size_t bucket)
{
    size_t shift;

    if (bucket < 2 * PX_HDR_SUB)
        return bucket;
    shift = bucket / PX_HDR_SUB - 1;
    return (uint64_t)(bucket - shift * PX_HDR_SUB) << shift;
}

uint64_t px__hdr_bucket_high(size_t bucket)
{
    size_t shift = bucket < 2 * PX_HDR_SUB ? 0 : bucket / PX_HDR_SUB - 1;
    return px__hdr_bucket_low(bucket) + (UINT64_C(1) << shift) - 1;
}

void px__hdr_record(px_hdr_t *h, uint64_t value)
{
    if (value > PX_HDR_MAX_VALUE)
        h->clamped++;
    h->counts[px__hdr_bucket(value)]++;
    h->total++;
    h->sum += value;
    h->sum_sq += (double)value * (double)value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void px__hdr_merge(px_hdr_t *dst, const px_hdr_t *src)
{
    if (src->total == 0)
        return;
    for (size_t i = 0; i < PX_HDR_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    dst->sum_sq += src->sum_sq;
    dst->clamped += src->clamped;
    dst->min = PX_MIN(dst->min, src->min);
    dst->max = PX_MAX(dst->max, src->max);
}

/* How many of the values are needed to reach percentile: at least one. A
 * whole number spoiled by rounding (99.9 / 100 * 6000 = 5994.000000000001)
 * stays whole: p99.9 of 6000 values is the 5994th, not the 5995th. */
static uint64_t rank_of(const px_hdr_t *h, double percentile)
{
    double x = percentile / 100.0 * (double)h->total;
    uint64_t rank;

    if (!(x > 1.0)) /* also NaN */
        return 1;
    if (x >= (double)h->total)
        return h->total;
    rank = (uint64_t)x;
    return x - (double)rank > x * 1e-12 ? rank + 1 : rank;
}

static uint64_t reported(const px_hdr_t *h, size_t bucket)
{
    uint64_t v = px__hdr_bucket_high(bucket);
    return v < h->min ? h->min : v > h->max ? h->max : v;
}

uint64_t px__hdr_value_at(const px_hdr_t *h, double percentile)
{
    uint64_t rank, cum = 0;
    size_t i;

    if (h->total == 0)
        return 0;
    if (percentile >= 100.0)
        return h->max;
    rank = rank_of(h, percentile);
    for (i = 0; i < PX_HDR_BUCKETS; i++) {
        cum += h->counts[i];
        if (cum >= rank)
            break;
    }
    return reported(h, PX_MIN(i, (size_t)PX_HDR_BUCKETS - 1));
}

double px__hdr_mean(const px_hdr_t *h)
{
    return h->total ? (double)h->sum / (double)h->total : 0.0;
}

double px__hdr_stdev(const px_hdr_t *h)
{
    double mean, var;

    if (h->total == 0)
        return 0.0;
    mean = px__hdr_mean(h);
    var = h->sum_sq / (double)h->total - mean * mean;
    return var > 0 ? sqrt(var) : 0.0;
}

/* The next percentile of the spectrum after p: ticks_per_half steps until the
 * distance to 100 halves. */
static double next_percentile(double p, unsigned ticks_per_half)
{
    double ratio = 100.0 / (100.0 - p), half = 2.0;

    while (ratio >= 2.0) {
        ratio /= 2.0;
        half *= 2.0;
    }
    return p + 100.0 / ((double)ticks_per_half * half);
}

size_t px__hdr_spectrum(const px_hdr_t *h, unsigned ticks_per_half, px_hdr_point_t *out, size_t cap)
{
    size_t rows = 0, i = 0;
    uint64_t cum;
    double p = 0.0;

    if (h->total == 0)
        return 0;
    if (ticks_per_half == 0)
        ticks_per_half = 1;
    cum = h->counts[0];
    /* Stop once a percentile needs the very last value: that is the 100 row. */
    for (;;) {
        uint64_t rank = rank_of(h, p);
        if (rank >= h->total)
            break;
        while (cum < rank)
            cum += h->counts[++i];
        if (rows < cap)
            out[rows] = (px_hdr_point_t){p, reported(h, i), cum};
        rows++;
        p = next_percentile(p, ticks_per_half);
    }
    if (rows < cap)
        out[rows] = (px_hdr_point_t){100.0, h->max, h->total};
    return rows + 1;
}
