/*
 * A latency histogram with log-linear buckets, in the manner of HdrHistogram:
 * values below 256 are counted exactly, larger ones in 128 buckets per power of
 * two, so a value is known to within 1/128 (0.8 %) of itself. Values up to
 * 2^32 - 1 are tracked (71 minutes in microseconds); larger ones are counted in
 * the last bucket. Recording is O(1) and never allocates; a histogram is a
 * fixed 26 KiB array, meant to be kept per thread and merged at the end.
 *
 * Next to the engine's live-stats histogram (px/histogram.h: 6.25 % buckets,
 * atomic, read while it records) this one is for measurements reported as
 * results: eight times finer, with the exact min, mean and standard deviation
 * and HdrHistogram's percentile spectrum.
 *
 * Not thread-safe: one writer at a time; merge after the writers have stopped.
 */
#ifndef PX_LOADGEN_HDR_HISTOGRAM_H
#define PX_LOADGEN_HDR_HISTOGRAM_H

#include "px/common.h"
#include "px/loadgen.h" /* px_lg_point_t: spectrum rows pass through unchanged */

/* Private to the load generator (and its tests): px/loadgen.h shows only a
 * summary and the px_lg_latency_* accessors. */

#define PX_HDR_SUB_BITS 7
#define PX_HDR_SUB (1u << PX_HDR_SUB_BITS) /* buckets per power of two */
#define PX_HDR_MAX_BITS 32                 /* values below 2^32 tracked */
#define PX_HDR_MAX_VALUE ((UINT64_C(1) << PX_HDR_MAX_BITS) - 1)
#define PX_HDR_BUCKETS ((PX_HDR_MAX_BITS - PX_HDR_SUB_BITS + 1) * PX_HDR_SUB)

typedef struct px_hdr {
    uint64_t total;    /* values recorded */
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    uint64_t sum;      /* exact, for the mean */
    double sum_sq;     /* for the standard deviation */
    uint64_t clamped;  /* values above PX_HDR_MAX_VALUE (in the last bucket) */
    uint64_t counts[PX_HDR_BUCKETS];
} px_hdr_t;

typedef px_lg_point_t px_hdr_point_t;

/* Empty h. */
void px__hdr_init(px_hdr_t *h);

/* Count one value. */
void px__hdr_record(px_hdr_t *h, uint64_t value);

/* Add everything recorded in src to dst. */
void px__hdr_merge(px_hdr_t *dst, const px_hdr_t *src);

/* The bucket of value, and the lowest and highest values of a bucket. Values
 * above PX_HDR_MAX_VALUE belong to the last bucket. */
size_t px__hdr_bucket(uint64_t value);
uint64_t px__hdr_bucket_low(size_t bucket);
uint64_t px__hdr_bucket_high(size_t bucket);

/* The smallest recorded value v such that at least percentile % of all values
 * are <= v, as the highest value of its bucket (never below the true
 * min nor above the true max). 100 gives the exact max; 0 when empty. */
uint64_t px__hdr_value_at(const px_hdr_t *h, double percentile);

/* Mean and standard deviation (population) of the recorded values; 0 when empty. */
double px__hdr_mean(const px_hdr_t *h);
double px__hdr_stdev(const px_hdr_t *h);

/* The percentile spectrum as HdrHistogram prints it: percentiles 0, then ever
 * closer to 100 (ticks_per_half rows for each halving of the distance to 100),
 * until the last value's own percentile, and a final row at 100 with the max.
 * Writes at most cap rows to out and returns how many rows there are (call with
 * cap 0 to size out). An empty histogram has no rows. */
size_t px__hdr_spectrum(const px_hdr_t *h, unsigned ticks_per_half, px_hdr_point_t *out,
                        size_t cap);

#endif
