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
#include "px/hdr_histogram.h"

typedef struct px_lg px_lg_t;

typedef struct px_lg_config {
    const char *host;        /* numeric address or name (resolved once) */
    int port;
    const char *request;     /* the bytes of one request, sent as they are */
    size_t request_len;
    bool head;               /* the request is HEAD: responses carry no body */
    double rate;             /* requests per second, whole run (> 0) */
    double duration;         /* seconds of schedule (> 0) */
    unsigned connections;    /* > 0; more than the scheduled requests is trimmed */
    unsigned timeout_ms;     /* per response, from its sending (> 0); also bounds
                                the connect phase and the wait after the schedule */
    int workers;             /* engine workers; 0: one per CPU */
    px_backend_kind_t backend;
} px_lg_config_t;

/* Defaults: port 80, rate 1000, duration 10 s, 10 connections, 2 s timeout,
 * 1 worker, AUTO backend; host and request unset. */
void px_lg_config_default(px_lg_config_t *cfg);

typedef struct px_lg_result {
    uint64_t scheduled;      /* requests in the schedule */
    uint64_t sent;           /* requests written */
    uint64_t responses;      /* complete responses, any status */
    uint64_t non_2xx_3xx;    /* of which status < 200 or >= 400 */
    /* Scheduled requests that got no response, by cause: */
    uint64_t err_connect;    /* their connection could not be made */
    uint64_t err_read;       /* closed or reset before the response ended */
    uint64_t err_write;      /* the request could not be written */
    uint64_t err_timeout;    /* no complete response within the timeout */
    uint64_t err_parse;      /* malformed response */
    uint64_t cancelled;      /* unanswered when the run was stopped early */
    /* Connections: */
    uint64_t connects;       /* made */
    uint64_t connect_errors; /* attempts that failed */
    uint64_t protocol_errors;/* bytes when no response was expected */
    uint64_t bytes_read;
    uint64_t elapsed_ns;     /* from the first scheduled send to the last response */
    uint64_t send_lag_max_ns;/* latest a request went out after its time */
    double send_lag_mean_ns;
    unsigned connections;    /* after trimming */
    int workers;
    const char *backend;     /* "io_uring" or "epoll" */
    bool interrupted;        /* px_lg_stop was called */
    px_hdr_t latency;       /* microseconds, scheduled time to end of response */
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

/* Release everything (stopping the engine first if needed). */
void px_lg_destroy(px_lg_t *lg);

#endif
