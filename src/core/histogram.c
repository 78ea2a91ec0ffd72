/*
 * Log-linear histogram. Bucket layout: values 0..31 have a bucket each; above,
 * a value whose highest set bit is b falls in group b - 3 (16 buckets of width
 * 2^(b-4)), its bucket chosen by the 4 bits below the highest one.
 */
#include <string.h>

#include "px/histogram.h"

void px_hist_init(px_histogram_t *h)
{
    memset(h, 0, sizeof(*h));
}

unsigned px_hist_index(uint64_t value)
{
    unsigned msb, shift;

    if (value < 2 * PX_HIST_SUB)
        return (unsigned)value;
    msb = 63u - (unsigned)__builtin_clzll(value);
    shift = msb - PX_HIST_SUB_BITS;
    return (msb - PX_HIST_SUB_BITS + 1u) * PX_HIST_SUB +
           (unsigned)((value >> shift) & (PX_HIST_SUB - 1u));
}

uint64_t px_hist_lower(unsigned index)
{
    unsigned group = index / PX_HIST_SUB, sub = index % PX_HIST_SUB;

    if (index < 2 * PX_HIST_SUB)
        return index;
    return (uint64_t)(PX_HIST_SUB + sub) << (group - 1u);
}

uint64_t px_hist_upper(unsigned index)
{
    if (index < 2 * PX_HIST_SUB)
        return index;
    /* The last bucket ends at UINT64_MAX: its lower bound plus its width - 1. */
    return px_hist_lower(index) + ((uint64_t)1 << (index / PX_HIST_SUB - 1u)) - 1u;
}

void px_hist_record(px_histogram_t *h, uint64_t value)
{
    _Atomic uint64_t *b = &h->buckets[px_hist_index(value)];

    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum, atomic_load_explicit(&h->sum, memory_order_relaxed) + value,
                          memory_order_relaxed);
    if (value > atomic_load_explicit(&h->max, memory_order_relaxed))
        atomic_store_explicit(&h->max, value, memory_order_relaxed);
}

void px_hist_snapshot_init(px_hist_snapshot_t *s)
{
    memset(s, 0, sizeof(*s));
}

void px_hist_merge(px_hist_snapshot_t *s, const px_histogram_t *h)
{
    uint64_t max = atomic_load_explicit(&h->max, memory_order_relaxed);
    unsigned i;

    for (i = 0; i < PX_HIST_BUCKETS; i++) {
        uint64_t n = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        s->buckets[i] += n;
        s->count += n;
    }
    s->sum += atomic_load_explicit(&h->sum, memory_order_relaxed);
    if (max > s->max)
        s->max = max;
}

uint64_t px_hist_quantile(const px_hist_snapshot_t *s, double q)
{
    uint64_t rank, seen = 0, lo, hi, mid;
    unsigned i;

    if (s->count == 0)
        return 0;
    if (!(q > 0.0))
        q = 0.0;
    if (q >= 1.0)
        return s->max;
    rank = (uint64_t)(q * (double)s->count);
    if ((double)rank < q * (double)s->count)
        rank++; /* ceil */
    if (rank == 0)
        rank = 1;
    for (i = 0; i < PX_HIST_BUCKETS; i++) {
        seen += s->buckets[i];
        if (seen >= rank)
            break;
    }
    if (i == PX_HIST_BUCKETS)
        return s->max;
    lo = px_hist_lower(i);
    hi = px_hist_upper(i);
    mid = lo + (hi - lo) / 2;
    /* The maximum may have been read before the bucket's last value: clamp only
     * when it really bounds this bucket. */
    return (s->max >= lo && mid > s->max) ? s->max : mid;
}
