/*
 * An open-loop HTTP/1.1 load generator on the engine (what pyparallel-bench
 * runs).
 *
 * The schedule is fixed in advance: request s of the run is due at
 * t0 + s / rate, for s in [0, rate x duration). Connection k of C owns the
 * requests s = k, k + C, k + 2C, ... and sends each at its time over a
 * keep-alive connection, one at a time; when a response is late the requests
 * whose time has passed wait and go out back to back once it arrives. Latency
 * is measured from each request's scheduled time, not from when it could be
 * sent, so a server that stalls is charged for every request it delayed (no
 * coordinated omission). Each connection lives on one worker, which paces it
 * with a precise timer and records latencies in its own histogram; the
 * histograms are merged at the end.
 *
 * Every scheduled request ends in exactly one way: a complete response (any
 * status), or a failure counted by cause (connect, read, write, timeout, parse),
 * or, when the run is stopped early, cancelled.
 *
 * Threads: every px_lg_* function is called from one controlling thread.
 * Errors: functions return >= 0 or -errno.
 */
#ifndef PX_LOADGEN_H
#define PX_LOADGEN_H

#include "px/common.h"
#include "px/engine.h"

typedef struct px_lg px_lg_t;

typedef struct px_lg_config {
    const char *host; /* numeric address or name (resolved once) */
    int port;
    const char *request; /* the bytes of one request, sent as they are */
    size_t request_len;
    bool head;            /* the request is HEAD: responses carry no body */
    double rate;          /* requests per second, whole run (> 0) */
    double duration;      /* seconds of schedule (> 0) */
    unsigned connections; /* > 0; more than the scheduled requests is trimmed */
    unsigned timeout_ms;  /* per response, from its sending (> 0); also bounds
                             the connect phase and the wait after the schedule */
    int workers;          /* engine workers; 0: one per CPU */
    px_backend_kind_t backend;
} px_lg_config_t;

/* Defaults: port 80, rate 1000, duration 10 s, 10 connections, 2 s timeout,
 * 1 worker, AUTO backend; host and request unset. */
void px_lg_config_default(px_lg_config_t *cfg);

/* The latency distribution of a run, in microseconds from each request's
 * scheduled time to the end of its response. min is 0 when count is 0. */
typedef struct px_lg_latency {
    uint64_t count, min, max;
    double mean, stdev; /* population standard deviation */
} px_lg_latency_t;

/* One row of a percentile spectrum: the value at a percentile and how many
 * values lie at or below the bucket it comes from. */
typedef struct px_lg_point {
    double percentile; /* 0..100 */
    uint64_t value;
    uint64_t total_count;
} px_lg_point_t;

typedef struct px_lg_result {
    uint64_t scheduled;   /* requests in the schedule */
    uint64_t sent;        /* requests written */
    uint64_t responses;   /* complete responses, any status */
    uint64_t non_2xx_3xx; /* of which status < 200 or >= 400 */
    /* Scheduled requests that got no response, by cause: */
    uint64_t err_connect; /* their connection could not be made */
    uint64_t err_read;    /* closed or reset before the response ended */
    uint64_t err_write;   /* the request could not be written */
    uint64_t err_timeout; /* no complete response within the timeout */
    uint64_t err_parse;   /* malformed response */
    uint64_t cancelled;   /* unanswered when the run was stopped early */
    /* Connections: */
    uint64_t connects;        /* made */
    uint64_t connect_errors;  /* attempts that failed */
    uint64_t protocol_errors; /* bytes when no response was expected */
    uint64_t bytes_read;
    uint64_t elapsed_ns;      /* from the first scheduled send to the last response */
    uint64_t send_lag_max_ns; /* latest a request went out after its time */
    double send_lag_mean_ns;
    unsigned connections; /* after trimming */
    int workers;
    const char *backend;     /* "io_uring" or "epoll" */
    bool interrupted;        /* px_lg_stop was called */
    px_lg_latency_t latency; /* percentiles: px_lg_latency_at, px_lg_latency_spectrum */
} px_lg_result_t;

/* Check cfg, resolve the host, create the engine (not started). -EINVAL for a
 * bad configuration, -ENOENT when the host does not resolve, else as
 * px_engine_create. *out is released with px_lg_destroy. */
int px_lg_create(const px_lg_config_t *cfg, px_lg_t **out);

/* Start the workers and open the connections. */
int px_lg_start(px_lg_t *lg);

/* Drive the run for up to timeout_ms: once every connection is open (or has
 * failed, or the timeout passed) the schedule starts a millisecond later.
 * Returns 1 when the run is over (every request resolved, the schedule plus one
 * timeout passed, or px_lg_stop was called), 0 while it goes on. */
int px_lg_wait(px_lg_t *lg, unsigned timeout_ms);

/* End the run early at the next px_lg_wait (any thread, e.g. a signal's). */
void px_lg_stop(px_lg_t *lg);

/* After px_lg_wait returned 1: close the connections, stop the workers and
 * fill *res. Requests still unanswered count as timeouts. */
int px_lg_finish(px_lg_t *lg, px_lg_result_t *res);

/* After px_lg_finish, until px_lg_destroy: the smallest latency v (us) such
 * that at least percentile % of the responses took <= v, to within 1/128 of
 * itself; 100 gives the exact max, 0 when nothing was answered. */
uint64_t px_lg_latency_at(const px_lg_t *lg, double percentile);

/* After px_lg_finish, until px_lg_destroy: the latency percentile spectrum as
 * HdrHistogram prints it (ticks_per_half rows per halving of the distance to
 * 100, then a last row at 100 with the max). Writes at most cap rows to out
 * and returns how many there are (cap 0 sizes out); none when nothing was
 * answered. */
size_t px_lg_latency_spectrum(const px_lg_t *lg, unsigned ticks_per_half, px_lg_point_t *out,
                              size_t cap);

/* Release everything (stopping the engine first if needed). */
void px_lg_destroy(px_lg_t *lg);

#endif
