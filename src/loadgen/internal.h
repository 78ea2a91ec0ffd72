/*
 * Private structures of the load generator: the run (controller side), one
 * record per engine worker, one per connection.
 *
 * Ownership: a connection record (lg_conn_t) lives on one worker for the whole
 * run; everything in it and in its worker's record is touched only on that
 * worker, until the workers have been joined. The run's few shared fields are
 * atomics or guarded by its mutex.
 */
#ifndef PX_LOADGEN_INTERNAL_H
#define PX_LOADGEN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "px/engine.h"
#include "px/http_parser.h"
#include "px/loadgen.h"

#include "hdr_histogram.h"

#define LG_MAX_HEAD 65536u /* response head bytes */
#define LG_SCRATCH 16384u  /* chunked bodies are decoded through this */

typedef struct lg_worker lg_worker_t;

enum lg_conn_state {
    LG_DOWN, /* no connection; one is made when a request is due */
    LG_CONNECTING,
    LG_OPEN,
    LG_CLOSING, /* we asked for a close (the server's Connection: close) */
};

enum lg_read_state {
    LG_READ_HEAD,
    LG_READ_LENGTH,
    LG_READ_CHUNKED,
    LG_READ_UNTIL_CLOSE,
};

enum lg_failure {
    LG_FAIL_CONNECT,
    LG_FAIL_READ,
    LG_FAIL_WRITE,
    LG_FAIL_TIMEOUT,
    LG_FAIL_PARSE,
    LG_FAIL_COUNT,
};

typedef struct lg_conn {
    lg_worker_t *lw;
    unsigned index; /* k: owns requests k, k + C, ... */
    enum lg_conn_state state;
    px_conn_t *conn; /* while CONNECTING (once known), OPEN or CLOSING */
    uint64_t total;  /* requests it owns */
    uint64_t due;    /* of which the time has come */
    uint64_t sent;
    uint64_t resolved; /* answered or failed; sent - resolved is 0 or 1 */
    bool inflight;
    bool settled;       /* its first connection attempt has ended */
    bool finished;      /* resolved == total */
    px_hrtimer_t timer; /* the next request's time */
    /* reading the response of the request in flight */
    enum lg_read_state rs;
    int status;
    bool keep_alive;
    uint64_t body_left;
    px_http_chunked_t chunked;
    char *head; /* a head split over receives, gathered */
    size_t head_len, head_cap;
} lg_conn_t;

struct lg_worker {
    px_lg_t *lg;
    px_worker_t *w;
    px_msg_t open_msg, begin_msg, finish_msg;
    lg_conn_t **conns; /* the connections living here */
    unsigned nconns;
    bool begun, finishing;
    /* results, merged by px_lg_finish */
    px_hdr_t hist;
    uint64_t responses, non_2xx_3xx, failed[LG_FAIL_COUNT];
    uint64_t sent, connects, connect_errors, protocol_errors, bytes_read;
    uint64_t last_response_ns;
    uint64_t send_lag_max_ns, send_lag_sum_ns;
    char scratch[LG_SCRATCH];
};

enum lg_phase {
    LG_PHASE_CONNECT, /* opening connections; the schedule has not begun */
    LG_PHASE_RUN,
    LG_PHASE_OVER,
};

struct px_lg {
    px_lg_config_t cfg;
    char *request;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint64_t scheduled; /* requests in the whole schedule */
    px_engine_t *e;
    int nworkers;
    lg_worker_t **workers;
    lg_conn_t *conns;
    unsigned nconns;
    double ns_per_request; /* 1e9 / rate */
    _Atomic uint64_t t0;   /* ns: request 0 is due then; 0 before the schedule */
    enum lg_phase phase;   /* controller only */
    uint64_t connect_deadline, hard_deadline, finish_ns;
    bool started, finished_run;
    _Atomic unsigned settled, done; /* connections settled / finished */
    _Atomic bool stop;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when settled or done reach nconns */
    px_hdr_t latency;    /* the workers' histograms, merged by px_lg_finish */
};

/* Connections (conn.c). */
extern const px_handler_t px__lg_handler;
void px__lg_conn_init(lg_conn_t *lc, lg_worker_t *lw, unsigned index, uint64_t total);
void px__lg_conn_free(lg_conn_t *lc);
/* Open (or re-open) the connection of lc from its worker. */
void px__lg_conn_connect(lg_conn_t *lc);
/* Re-evaluate lc at now: send, connect or arm the timer as the schedule says. */
void px__lg_conn_kick(lg_conn_t *lc, uint64_t now);
/* The run is ending: stop the timer, drop the connection. */
void px__lg_conn_finish(lg_conn_t *lc);

/* Run-wide signals from the workers (loadgen.c). */
void px__lg_settled(px_lg_t *lg);
void px__lg_done(px_lg_t *lg);

#endif
