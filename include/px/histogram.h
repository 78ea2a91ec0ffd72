/*
 * A log-linear latency histogram: 16 linear sub-buckets per power of two, so
 * every recorded value lands in a bucket at most 1/16 (6.25 %) of its value wide,
 * over the whole uint64_t range (nanoseconds: 1 ns to centuries) in 976 fixed
 * buckets, with no allocation and no configuration.
 *
 * Threads: px_hist_record is for the owning thread only (relaxed loads and
 * stores, no read-modify-write atomics: the hot path costs a few moves); any
 * thread may merge a histogram into a snapshot at any time and read quantiles
 * from the snapshot. A snapshot taken while the owner records is consistent
 * enough: each bucket is read once, and the snapshot's count is the sum of the
 * buckets it read.
 */
#ifndef PX_HISTOGRAM_H
#define PX_HISTOGRAM_H

#include <stdatomic.h>
#include "px/common.h"

#define PX_HIST_SUB_BITS 4
#define PX_HIST_SUB (1u << PX_HIST_SUB_BITS)
/* Values below 2 * PX_HIST_SUB are exact; each further power of two adds a group. */
#define PX_HIST_BUCKETS ((64u - PX_HIST_SUB_BITS + 1u) * PX_HIST_SUB)

typedef struct px_histogram {
    _Atomic uint64_t sum; /* of recorded values (wraps after 584 years of ns) */
    _Atomic uint64_t max;
    _Atomic uint64_t buckets[PX_HIST_BUCKETS];
} px_histogram_t;

/* A plain copy for reading: one histogram or the merge of several. */
typedef struct px_hist_snapshot {
    uint64_t count;
    uint64_t sum;
    uint64_t max;
    uint64_t buckets[PX_HIST_BUCKETS];
} px_hist_snapshot_t;

/* Empty histogram (equivalent to zeroed memory). */
void px_hist_init(px_histogram_t *h);

/* Record one value. Owner thread only. */
void px_hist_record(px_histogram_t *h, uint64_t value);

/* The bucket of a value, and the smallest and largest value of a bucket. */
unsigned px_hist_index(uint64_t value);
uint64_t px_hist_lower(unsigned index);
uint64_t px_hist_upper(unsigned index);

/* Empty snapshot. */
void px_hist_snapshot_init(px_hist_snapshot_t *s);

/* Add the current contents of h to s. Any thread. */
void px_hist_merge(px_hist_snapshot_t *s, const px_histogram_t *h);

/* The value at quantile q (0..1) of s: the middle of the bucket holding the
 * ceil(q * count)-th smallest value, clamped to the recorded maximum (so q = 1
 * is the exact maximum). 0 when s is empty. */
uint64_t px_hist_quantile(const px_hist_snapshot_t *s, double q);

#endif
