/*
 * One generator connection: its share of the schedule, sending at the scheduled
 * times, reading each response to its end (Content-Length, chunked, or close),
 * and what happens when the server closes, refuses or times out.
 *
 * At most one request is in flight. A connection is reconnected only when a
 * request is due, so a server that refuses or closes every connection costs
 * one attempt per scheduled request, never a busy loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "px/http_response.h"

static void check_finished(lg_conn_t *lc)
{
    if (lc->finished || lc->resolved < lc->total)
        return;
    lc->finished = true;
    px_worker_hrtimer_stop(lc->lw->w, &lc->timer);
    if (lc->conn != NULL && lc->state == LG_OPEN) {
        px_conn_close(lc->conn); /* be polite: FIN, not a reset at the end */
        lc->state = LG_CLOSING;
    }
    px__lg_done(lc->lw->lg);
}

static uint64_t scheduled_at(const lg_conn_t *lc, uint64_t m)
{
    const px_lg_t *lg = lc->lw->lg;
    double slot = (double)lc->index + (double)m * (double)lg->nconns;

    return atomic_load_explicit(&lg->t0, memory_order_relaxed) +
           (uint64_t)(slot * lg->ns_per_request);
}

static uint64_t due_by(const lg_conn_t *lc, uint64_t now)
{
    uint64_t due = lc->due;

    if (atomic_load_explicit(&lc->lw->lg->t0, memory_order_relaxed) == 0)
        return 0;
    while (due < lc->total && scheduled_at(lc, due) <= now)
        due++;
    return due;
}

static void reset_reader(lg_conn_t *lc)
{
    lc->rs = LG_READ_HEAD;
    lc->head_len = 0;
    lc->status = 0;
    lc->keep_alive = true;
    lc->body_left = 0;
}

static void fail_inflight(lg_conn_t *lc, enum lg_failure why)
{
    if (!lc->inflight)
        return;
    lc->inflight = false;
    lc->resolved++;
    lc->lw->failed[why]++;
}

/* The response of the request in flight has ended at now. */
static void record_response(lg_conn_t *lc, uint64_t now)
{
    lg_worker_t *lw = lc->lw;
    uint64_t at = scheduled_at(lc, lc->resolved);

    px__hdr_record(&lw->hist, now > at ? (now - at + 500) / 1000 : 0);
    lw->responses++;
    if (lc->status < 200 || lc->status >= 400)
        lw->non_2xx_3xx++;
    if (now > lw->last_response_ns)
        lw->last_response_ns = now;
    lc->inflight = false;
    lc->resolved++;
    if (lc->conn != NULL) {
        px_conn_set_deadline(lc->conn, 0);
        if (!lc->keep_alive && lc->state == LG_OPEN) {
            px_conn_close(lc->conn);
            lc->state = LG_CLOSING;
        }
    }
}

static void send_next(lg_conn_t *lc, uint64_t now)
{
    lg_worker_t *lw = lc->lw;
    px_lg_t *lg = lw->lg;
    struct iovec iov = {lg->request, lg->cfg.request_len};
    uint64_t at = scheduled_at(lc, lc->sent);

    if (px_conn_send(lc->conn, &iov, 1) < 0) {
        /* Closing or out of memory: the request waits for the next connection. */
        px_conn_abort(lc->conn);
        return;
    }
    lc->sent++;
    lc->inflight = true;
    lw->sent++;
    if (now > at) {
        lw->send_lag_sum_ns += now - at;
        if (now - at > lw->send_lag_max_ns)
            lw->send_lag_max_ns = now - at;
    }
    reset_reader(lc);
    px_conn_set_deadline(lc->conn, lg->cfg.timeout_ms);
}

void px__lg_conn_connect(lg_conn_t *lc)
{
    px_lg_t *lg = lc->lw->lg;
    px_endpoint_config_t ep = {
        .handler = &px__lg_handler,
        .udata = lc,
        .sock_flags = PX_SOCK_NODELAY,
        .listen_fd = -1,
    };
    int rc;

    lc->state = LG_CONNECTING;
    rc = px_worker_connect(lc->lw->w, (struct sockaddr *)&lg->addr, lg->addrlen, &ep);
    if (rc < 0) {
        /* No memory for the request: like a failed attempt. */
        lc->state = LG_DOWN;
        lc->lw->connect_errors++;
    }
}

void px__lg_conn_kick(lg_conn_t *lc, uint64_t now)
{
    lg_worker_t *lw = lc->lw;

    if (lw->finishing || !lw->begun || lc->finished)
        return;
    lc->due = due_by(lc, now);
    if (lc->state == LG_OPEN && !lc->inflight && lc->sent < lc->due)
        send_next(lc, now);
    else if (lc->state == LG_DOWN && lc->sent < lc->due)
        px__lg_conn_connect(lc);
    /* Waiting for nothing: wake at the next request's time. */
    if ((lc->state == LG_OPEN && !lc->inflight) || lc->state == LG_DOWN) {
        if (lc->due < lc->total)
            px_worker_hrtimer_start(lw->w, &lc->timer, scheduled_at(lc, lc->due));
    }
    check_finished(lc);
}

static void on_timer(px_hrtimer_t *t)
{
    px__lg_conn_kick(PX_CONTAINER_OF(t, lg_conn_t, timer), px_now_ns());
}

/* ---- engine callbacks ---------------------------------------------------- */

static lg_conn_t *conn_of(px_conn_t *c)
{
    return px_conn_server_udata(c);
}

static int lg_open(px_conn_t *c)
{
    lg_conn_t *lc = conn_of(c);

    lc->conn = c;
    lc->lw->connects++;
    if (lc->lw->finishing || lc->finished) {
        lc->state = LG_CLOSING;
        px_conn_close(c);
        return 0;
    }
    lc->state = LG_OPEN;
    if (!lc->settled) {
        lc->settled = true;
        px__lg_settled(lc->lw->lg);
    }
    px__lg_conn_kick(lc, px_now_ns());
    return 0;
}

/* A connection attempt failed: the requests waiting for it fail with it. */
static void connect_failed(lg_conn_t *lc)
{
    uint64_t now = px_now_ns();

    lc->conn = NULL;
    lc->state = LG_DOWN;
    if (!lc->settled) {
        lc->settled = true;
        px__lg_settled(lc->lw->lg);
    }
    if (lc->lw->finishing || lc->finished)
        return;
    lc->lw->connect_errors++;
    lc->due = due_by(lc, now);
    lc->lw->failed[LG_FAIL_CONNECT] += lc->due - lc->sent;
    lc->resolved += lc->due - lc->sent;
    lc->sent = lc->due;
    px__lg_conn_kick(lc, now);
}

static void lg_connect_failed(void *udata, int err)
{
    (void)err;
    connect_failed(udata);
}

static bool head_1xx_interim(const px_http_response_t *res)
{
    return res->status >= 100 && res->status < 200 && res->status != 101;
}

/* A complete head: decide how the body ends. Returns true when the response is
 * already complete, false when a body follows, -1 for a head we cannot accept. */
static int start_body(lg_conn_t *lc, const px_http_response_t *res)
{
    lc->status = res->status;
    lc->keep_alive = res->keep_alive;
    if (res->status == 101)
        return -1; /* we never asked to switch protocols */
    switch (px_http_response_body(res, lc->lw->lg->cfg.head)) {
    case PX_HTTP_BODY_NONE: return 1;
    case PX_HTTP_BODY_LENGTH:
        lc->body_left = (uint64_t)res->content_length;
        lc->rs = LG_READ_LENGTH;
        return lc->body_left == 0;
    case PX_HTTP_BODY_CHUNKED:
        px_http_chunked_init(&lc->chunked, UINT64_MAX);
        lc->rs = LG_READ_CHUNKED;
        return 0;
    case PX_HTTP_BODY_UNTIL_CLOSE:
        lc->keep_alive = false;
        lc->rs = LG_READ_UNTIL_CLOSE;
        return 0;
    }
    return -1;
}

/* Gather a head that spans receives. -ENOMEM, or -EMSGSIZE past the limit. */
static int keep_head(lg_conn_t *lc, const char *data, size_t len)
{
    if (lc->head_len + len > LG_MAX_HEAD)
        return -EMSGSIZE;
    if (lc->head_len + len > lc->head_cap) {
        size_t cap = PX_MAX(lc->head_cap * 2, (size_t)1024);
        char *p;
        while (cap < lc->head_len + len)
            cap *= 2;
        p = realloc(lc->head, PX_MIN(cap, (size_t)LG_MAX_HEAD));
        if (p == NULL)
            return -ENOMEM;
        lc->head = p;
        lc->head_cap = PX_MIN(cap, (size_t)LG_MAX_HEAD);
    }
    memcpy(lc->head + lc->head_len, data, len);
    lc->head_len += len;
    return 0;
}

/* Read a head from data: bytes consumed (> 0), 0 when it continues in the next
 * receive, -1 when malformed. On success *res describes it. */
static long read_head(lg_conn_t *lc, const char *data, size_t len, px_http_response_t *res)
{
    size_t before = lc->head_len;
    int rc;

    res->headers = NULL;
    if (before == 0) {
        rc = px_http_parse_response(data, len, res, LG_MAX_HEAD);
        if (rc > 0)
            return rc;
        if (rc == PX_HTTP_ERROR)
            return -1;
        return keep_head(lc, data, len) < 0 ? -1 : 0;
    }
    /* Append at most what the limit allows, then parse the gathered head. */
    len = PX_MIN(len, (size_t)LG_MAX_HEAD - before);
    if (len == 0 || keep_head(lc, data, len) < 0)
        return -1;
    rc = px_http_parse_response(lc->head, lc->head_len, res, LG_MAX_HEAD);
    if (rc == PX_HTTP_INCOMPLETE)
        return 0;
    if (rc == PX_HTTP_ERROR)
        return -1;
    lc->head_len = 0;
    return (long)((size_t)rc - before);
}

/* Bytes of a chunked body in data consumed, setting *done at its end; -1 when
 * malformed. The decoder works in place, so data goes through the scratch. */
static long read_chunked(lg_conn_t *lc, const char *data, size_t len, bool *done)
{
    size_t n = PX_MIN(len, sizeof(lc->lw->scratch)), m = n;
    int rc;

    memcpy(lc->lw->scratch, data, n);
    rc = px_http_chunked_decode(&lc->chunked, lc->lw->scratch, &m);
    if (rc == PX_HTTP_ERROR)
        return -1;
    *done = rc != PX_HTTP_INCOMPLETE;
    return *done ? (long)(n - (size_t)rc) : (long)n;
}

static int lg_data(px_conn_t *c, const char *data, size_t len)
{
    lg_conn_t *lc = conn_of(c);
    lg_worker_t *lw = lc->lw;
    uint64_t now = px_now_ns();

    lw->bytes_read += len;
    if (lw->finishing)
        return 0;
    while (len > 0) {
        px_http_response_t res;
        bool done = false;
        long used;

        if (!lc->inflight) {
            /* Nothing was asked: the server is out of step with us. */
            lw->protocol_errors++;
            return -EPROTO;
        }
        switch (lc->rs) {
        case LG_READ_HEAD:
            used = read_head(lc, data, len, &res);
            if (used > 0) {
                if (head_1xx_interim(&res))
                    break; /* an interim response: the final one follows */
                int r = start_body(lc, &res);
                if (r < 0)
                    used = -1;
                done = r == 1;
            }
            break;
        case LG_READ_LENGTH:
            used = (long)PX_MIN((uint64_t)len, lc->body_left);
            lc->body_left -= (uint64_t)used;
            done = lc->body_left == 0;
            break;
        case LG_READ_CHUNKED: used = read_chunked(lc, data, len, &done); break;
        case LG_READ_UNTIL_CLOSE:
        default: used = (long)len; break;
        }
        if (used < 0) {
            fail_inflight(lc, LG_FAIL_PARSE);
            px_conn_abort(c);
            return 0;
        }
        if (used == 0)
            return 0; /* the head continues in the next receive */
        data += used;
        len -= (size_t)used;
        if (done) {
            record_response(lc, now);
            if (len > 0) {
                lw->protocol_errors++;
                return -EPROTO;
            }
            px__lg_conn_kick(lc, now);
        }
    }
    return 0;
}

static void lg_eof(px_conn_t *c, int err)
{
    lg_conn_t *lc = conn_of(c);

    /* The end of a body delimited by the close. */
    if (err == 0 && lc->inflight && lc->rs == LG_READ_UNTIL_CLOSE && !lc->lw->finishing)
        record_response(lc, px_now_ns());
}

static void lg_close(px_conn_t *c, int err)
{
    lg_conn_t *lc = conn_of(c);
    bool opened = lc->state != LG_CONNECTING;

    if (!opened) {
        connect_failed(lc);
        return;
    }
    lc->conn = NULL;
    lc->state = LG_DOWN;
    if (lc->lw->finishing)
        return;
    /* Our deadline closes with -ETIMEDOUT; a send into a closed socket fails
     * with -EPIPE; anything else ended the response before its end. */
    if (err == -ETIMEDOUT)
        fail_inflight(lc, LG_FAIL_TIMEOUT);
    else if (err == -EPIPE)
        fail_inflight(lc, LG_FAIL_WRITE);
    else
        fail_inflight(lc, LG_FAIL_READ);
    px__lg_conn_kick(lc, px_now_ns());
}

const px_handler_t px__lg_handler = {
    .on_open = lg_open,
    .on_data = lg_data,
    .on_eof = lg_eof,
    .on_close = lg_close,
    .on_connect_failed = lg_connect_failed,
};

void px__lg_conn_init(lg_conn_t *lc, lg_worker_t *lw, unsigned index, uint64_t total)
{
    memset(lc, 0, sizeof(*lc));
    lc->lw = lw;
    lc->index = index;
    lc->total = total;
    lc->state = LG_DOWN;
    px_hrtimer_init(&lc->timer, on_timer);
    reset_reader(lc);
    lc->finished = total == 0;
}

void px__lg_conn_finish(lg_conn_t *lc)
{
    px_worker_hrtimer_stop(lc->lw->w, &lc->timer);
    if (lc->conn != NULL)
        px_conn_abort(lc->conn);
}

void px__lg_conn_free(lg_conn_t *lc)
{
    free(lc->head);
    lc->head = NULL;
}
