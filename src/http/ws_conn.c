/*
 * WebSocket connections on the HTTP server: the 101 answer, frames in
 * (px/websocket.h's parser, messages assembled up to their limit), frames
 * out from any thread, ping keep-alive, the close handshake and its
 * timeouts. See include/px/ws_server.h.
 *
 * Threads: everything but px_ws_send/close/wait_writable/ref/release runs on
 * the connection's worker. Other threads reach it through the connection's
 * handle, so a send never touches the connection off its worker.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px/handle.h"
#include "px/timer.h"
#include "px/ws_deflate.h"
#include "px/ws_server.h"

#include "conn_state.h"

/* A message buffer bigger than this is not kept between messages, so that
 * an idle connection holds none of a burst's memory. */
#define KEEP_BUFFER 4096

enum {
    WS_OPEN,
    WS_CLOSE_SENT,
    WS_DONE
};

struct px_ws {
    _Atomic unsigned refs;
    _Atomic bool closing; /* no more sends: a close was sent or asked for */
    px_worker_t *w;
    px_handle_t *handle;
    px_conn_t *conn; /* worker only; NULL once the connection is gone */
    px_ws_handler_t h;
    void *arg;
    px_ws_config_t cfg;
    char *subprotocol;
    int state; /* WS_*, worker only */
    bool awaiting_pong;
    unsigned ask_code; /* px_ws_close's, for the worker */
    uint8_t ask_reason[PX_WS_MAX_CONTROL];
    size_t ask_len;
    unsigned code; /* what on_close reports */
    uint8_t reason[PX_WS_MAX_CONTROL];
    size_t reason_len;
    px_timer_t timer; /* ping, pong timeout, close timeout */
    px_ws_parser_t parser;
    char *msg; /* a fragmented message or one that came in pieces */
    size_t msg_len, msg_cap;
    bool deflate;                   /* permessage-deflate agreed */
    px_ws_deflate_params_t dparams; /* what was agreed */
    px_ws_inflater_t *inflater;     /* while a compressed message arrives */
    size_t inflater_charge;         /* what it costs the connection's budget */
    px_utf8_t utf8;                 /* a compressed text's check, inflated */
    bool inflating_text;            /* the compressed message is text */
    const char *why;                /* a callback's error, for the close */
};

void px_ws_ref(px_ws_t *ws)
{
    atomic_fetch_add_explicit(&ws->refs, 1, memory_order_relaxed);
}

void px_ws_release(px_ws_t *ws)
{
    if (ws == NULL || atomic_fetch_sub_explicit(&ws->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(ws->msg);
    free(ws->subprotocol);
    px_ws_inflater_free(ws->inflater);
    px_handle_release(ws->handle);
    free(ws);
}

bool px_ws_deflating(const px_ws_t *ws)
{
    return ws->deflate;
}

bool px_ws_closed(const px_ws_t *ws)
{
    return atomic_load_explicit(&ws->closing, memory_order_acquire);
}

const char *px_ws_subprotocol(const px_ws_t *ws)
{
    return ws->subprotocol;
}

struct px_handle *px_ws_handle(const px_ws_t *ws)
{
    return ws->handle;
}

/* ---- on the worker ------------------------------------------------------------ */

static void arm(px_ws_t *ws, unsigned ms)
{
    px_wheel_t *wheel = px_worker_wheel(ws->w);

    if (ms == 0)
        px_timer_stop(wheel, &ws->timer);
    else /* the wheel may lag behind inside a handler: never early */
        px_timer_start(wheel, &ws->timer, ms + (px_now_ms() - PX_MIN(px_now_ms(), wheel->now)));
}

static int frame_out(px_ws_t *ws, int opcode, const void *data, size_t len)
{
    uint8_t hdr[PX_WS_MAX_HEADER];
    struct iovec iov[2] = {{hdr, px_ws_frame_header(hdr, true, opcode, len, NULL)},
                           {(void *)data, len}};

    if (ws->conn == NULL)
        return -ENOTCONN;
    /* after what other threads posted, when some still waits */
    if (px_handle_pending(ws->handle))
        return px_handle_send(ws->handle, iov, len ? 2 : 1, true);
    return px_conn_send(ws->conn, iov, len ? 2 : 1);
}

/* Close TCP after what is queued, behind what other threads posted. */
static void close_conn(px_ws_t *ws)
{
    if (ws->conn == NULL)
        return;
    if (px_handle_pending(ws->handle))
        px_handle_close(ws->handle);
    else
        px_conn_close(ws->conn);
}

/* Close TCP now, dropping what is queued: for a peer that stopped reading,
 * whose output would never drain for a graceful close. */
static void abort_conn(px_ws_t *ws)
{
    if (ws->conn == NULL)
        return;
    if (px_handle_pending(ws->handle))
        px_handle_abort(ws->handle);
    else
        px_conn_abort(ws->conn);
}

/* Send our close frame and remember what on_close will say. */
static void send_close(px_ws_t *ws, unsigned code, const uint8_t *reason, size_t len)
{
    uint8_t payload[PX_WS_MAX_CONTROL];
    size_t n = px_ws_close_payload(payload, code, (const char *)reason, len);

    atomic_store_explicit(&ws->closing, true, memory_order_release);
    frame_out(ws, PX_WS_CLOSE, payload, n);
    ws->code = code ? code : PX_WS_CLOSE_NO_STATUS;
    ws->reason_len = n > 2 ? n - 2 : 0;
    memcpy(ws->reason, payload + 2, ws->reason_len);
}

/* Fail the connection (section 7.1.7): our close frame, then the TCP close
 * at once. */
static void fail(px_ws_t *ws, unsigned code, const char *why)
{
    if (ws->state == WS_OPEN)
        send_close(ws, code, (const uint8_t *)why, strlen(why));
    ws->state = WS_DONE;
    arm(ws, 0);
    close_conn(ws);
}

static void deliver(px_ws_t *ws, int opcode, const char *data, size_t len)
{
    PX_STAT_ADD(px_worker_stats(ws->w), ws_messages_in, 1);
    if (ws->h.on_message != NULL)
        ws->h.on_message(ws, opcode, data, len, ws->arg);
}

/* Add to the message being assembled, charged to the connection. A growth
 * that would take the process over its memory budget fails the connection
 * (1013): a compressed message may ask for max_message with a thousandth of
 * it on the wire, so many such clients must not add up unbounded. */
static int append(px_ws_t *ws, const char *data, size_t len)
{
    if (ws->msg_len + len > ws->msg_cap) {
        size_t cap = PX_MAX(ws->msg_len + len, PX_MAX(ws->msg_cap * 2, (size_t)1024));
        char *p;

        if (ws->conn != NULL && px_conn_over_budget(ws->conn, cap - ws->msg_cap)) {
            ws->why = "server over its memory budget";
            return -ENOBUFS;
        }
        if ((p = realloc(ws->msg, cap)) == NULL)
            return -ENOMEM;
        if (ws->conn != NULL)
            px_conn_charge(ws->conn, (int64_t)cap - (int64_t)ws->msg_cap);
        ws->msg = p;
        ws->msg_cap = cap;
    }
    memcpy(ws->msg + ws->msg_len, data, len);
    ws->msg_len += len;
    return 0;
}

/* The assembled message is whole: delivered, its buffer kept only small. */
static void deliver_assembled(px_ws_t *ws, int opcode)
{
    deliver(ws, opcode, ws->msg, ws->msg_len);
    ws->msg_len = 0;
    if (ws->msg_cap > KEEP_BUFFER) {
        if (ws->conn != NULL)
            px_conn_charge(ws->conn, -(int64_t)ws->msg_cap);
        free(ws->msg);
        ws->msg = NULL;
        ws->msg_cap = 0;
    }
}

/* Inflated bytes of a compressed message: the limit the parser keeps on
 * plain ones (a compression bomb stops here), the text's check. */
static int on_inflated(void *arg, const char *data, size_t len)
{
    px_ws_t *ws = arg;

    if (len > ws->cfg.max_message - ws->msg_len) {
        ws->why = "message too big";
        return -EMSGSIZE;
    }
    if (ws->inflating_text && px_utf8_feed(&ws->utf8, data, len) < 0) {
        ws->why = "invalid UTF-8";
        return -EILSEQ;
    }
    return append(ws, data, len);
}

/* The inflater stays for the connection's life only when the client keeps
 * its context; otherwise it serves one message and goes back to the thread. */
static void inflater_done(px_ws_t *ws, bool drop)
{
    if (ws->inflater == NULL || (ws->dparams.client_context && !drop))
        return;
    if (ws->conn != NULL && ws->inflater_charge > 0)
        px_conn_charge(ws->conn, -(int64_t)ws->inflater_charge);
    ws->inflater_charge = 0;
    if (drop)
        px_ws_inflater_free(ws->inflater);
    else
        px_ws_inflater_put(ws->inflater);
    ws->inflater = NULL;
}

static int on_compressed(px_ws_t *ws, int opcode, const char *data, size_t len, bool fin)
{
    int rc;

    if (ws->inflater == NULL) {
        if ((ws->inflater = px_ws_inflater_get(ws->dparams.inflate_bits)) == NULL)
            return -ENOMEM;
        ws->inflater_charge = px_ws_inflater_size(ws->dparams.inflate_bits);
        if (ws->conn != NULL)
            px_conn_charge(ws->conn, (int64_t)ws->inflater_charge);
    }
    if (ws->msg_len == 0)
        px_utf8_init(&ws->utf8);
    ws->inflating_text = opcode == PX_WS_TEXT;
    rc = px_ws_inflate(ws->inflater, ws->dparams.client_context, data, len, fin, on_inflated, ws);
    if (rc == 0 && fin && opcode == PX_WS_TEXT && !px_utf8_complete(&ws->utf8)) {
        ws->why = "invalid UTF-8";
        rc = -EILSEQ;
    }
    if (rc < 0) {
        if (rc == -EPROTO) { /* not deflate data: the payload is not what it says */
            ws->why = "invalid compressed data";
            rc = -EILSEQ;
        }
        inflater_done(ws, true);
        return rc;
    }
    if (fin) {
        inflater_done(ws, false);
        deliver_assembled(ws, opcode);
    }
    return 0;
}

static int on_data(void *arg, int opcode, const char *data, size_t len, bool fin)
{
    px_ws_t *ws = arg;
    int rc;

    if (ws->state != WS_OPEN)
        return 0; /* after our close: dropped (section 5.5.1) */
    if (ws->parser.compressed) {
        if ((rc = on_compressed(ws, opcode, data, len, fin)) < 0)
            return rc;
    } else if (fin && ws->msg_len == 0) {
        deliver(ws, opcode, data, len); /* came whole: no copy */
    } else {
        if ((rc = append(ws, data, len)) < 0)
            return rc;
        if (!fin)
            return 0;
        deliver_assembled(ws, opcode);
    }
    /* A close sent meanwhile keeps the parser going: the peer's answer is
     * read (its data dropped above); only a connection that ends stops it. */
    return ws->state != WS_DONE && ws->conn != NULL && !px_conn_closing(ws->conn) ? 0 : -ECANCELED;
}

static int on_control(void *arg, int opcode, const char *data, size_t len, unsigned code)
{
    px_ws_t *ws = arg;

    if (opcode == PX_WS_PING) {
        if (ws->state == WS_OPEN && !px_ws_closed(ws))
            frame_out(ws, PX_WS_PONG, data, len);
        return 0;
    }
    if (opcode == PX_WS_PONG) {
        if (ws->awaiting_pong && ws->state == WS_OPEN) {
            ws->awaiting_pong = false;
            arm(ws, ws->cfg.ping_interval_ms);
        }
        return 0;
    }
    /* CLOSE: echo its code (section 5.5.1), then the server closes TCP first */
    if (ws->state == WS_OPEN) {
        uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};

        atomic_store_explicit(&ws->closing, true, memory_order_release);
        frame_out(ws, PX_WS_CLOSE, echo, code ? 2 : 0);
    }
    /* the close code is the one received, also as an answer (section 7.1.5) */
    ws->code = code ? code : PX_WS_CLOSE_NO_STATUS;
    ws->reason_len = len > 2 ? len - 2 : 0;
    memcpy(ws->reason, data + 2, ws->reason_len);
    ws->state = WS_DONE;
    arm(ws, 0);
    close_conn(ws);
    return -ECANCELED;
}

static const px_ws_parser_cb_t parser_cb = {on_data, on_control};

int px__ws_on_data(px_ws_t *ws, px_conn_t *c, const char *data, size_t len)
{
    ssize_t rc;

    if (ws->state == WS_DONE || px_conn_closing(c))
        return 0;
    rc = px_ws_parse(&ws->parser, data, len, &parser_cb, ws);
    if (rc == -ENOMEM)
        fail(ws, PX_WS_CLOSE_INTERNAL, "out of memory");
    else if (rc < 0 && rc != -ECANCELED)
        fail(ws, ws->parser.close_code,
             ws->why != NULL   ? ws->why
             : rc == -EMSGSIZE ? "message too big"
             : rc == -EILSEQ   ? "invalid UTF-8"
                               : "protocol error");
    return 0;
}

void px__ws_gone(px_ws_t *ws, px_conn_t *c, int err)
{
    (void)c;
    (void)err;
    atomic_store_explicit(&ws->closing, true, memory_order_release);
    arm(ws, 0);
    ws->state = WS_DONE;
    if (ws->msg_cap > 0) {
        px_conn_charge(ws->conn, -(int64_t)ws->msg_cap);
        free(ws->msg);
        ws->msg = NULL;
        ws->msg_cap = ws->msg_len = 0;
    }
    inflater_done(ws, true);
    ws->conn = NULL;
    if (ws->h.on_close != NULL)
        ws->h.on_close(ws, ws->code, (const char *)ws->reason, ws->reason_len, ws->arg);
    px_ws_release(ws); /* the connection's reference */
}

void px__http_on_shutdown(px_conn_t *c)
{
    static const char why[] = "server shutting down";
    http_conn_t *h = px__http_state_of(c);
    px_ws_t *ws = h != NULL ? h->ws : NULL;

    if (ws != NULL) {
        if (ws->state == WS_OPEN)
            send_close(ws, PX_WS_CLOSE_GOING_AWAY, (const uint8_t *)why, sizeof(why) - 1);
        ws->state = WS_DONE;
        arm(ws, 0);
    }
    px_conn_close(c);
}

static void on_timer(px_timer_t *t)
{
    px_ws_t *ws = PX_CONTAINER_OF(t, px_ws_t, timer);

    if (ws->conn == NULL)
        return;
    if (ws->state == WS_DONE) {
        abort_conn(ws); /* a timed-out close still draining after close_timeout */
    } else if (ws->state == WS_CLOSE_SENT || ws->awaiting_pong) {
        /* The peer never answered our close, or our ping. Output still
         * queued means it stopped reading too: nothing more will reach it. */
        bool stuck = px_conn_unsent(ws->conn) > 0 || px_handle_pending(ws->handle);

        if (ws->state == WS_CLOSE_SENT) {
            ws->code = PX_WS_CLOSE_ABNORMAL;
            ws->reason_len = 0;
            ws->state = WS_DONE;
        }
        if (stuck) {
            if (ws->state == WS_OPEN)
                ws->code = PX_WS_CLOSE_ABNORMAL;
            ws->state = WS_DONE;
            abort_conn(ws);
            return;
        }
        if (ws->state == WS_OPEN)
            fail(ws, PX_WS_CLOSE_INTERNAL, "keepalive ping timeout");
        else
            close_conn(ws);
        /* the kernel's buffer may be what is full: bound the drain too */
        arm(ws, ws->cfg.close_timeout_ms);
    } else if (ws->state == WS_OPEN) {
        ws->awaiting_pong = true;
        frame_out(ws, PX_WS_PING, "px", 2);
        arm(ws, ws->cfg.ping_timeout_ms);
    }
}

/* px_ws_close's work, on the worker. */
static void close_on_worker(px_conn_t *c, void *arg)
{
    px_ws_t *ws = arg;

    if (c != NULL && ws->conn == c && ws->state == WS_OPEN) {
        send_close(ws, ws->ask_code, ws->ask_reason, ws->ask_len);
        ws->state = WS_CLOSE_SENT;
        arm(ws, ws->cfg.close_timeout_ms);
    }
    px_ws_release(ws);
}

/* ---- accept ------------------------------------------------------------------- */

static int answer_101(px_http_exchange_t *x, const px_ws_handshake_t *hs, const char *proto,
                      const char *extensions, const char *headers)
{
    char accept[PX_WS_ACCEPT_LEN + 1], *head;
    size_t cap = 256 + PX_WS_DEFLATE_ANSWER + (proto ? strlen(proto) : 0) +
                 (headers ? strlen(headers) : 0);
    struct iovec iov;
    int n, rc;

    head = malloc(cap);
    if (head == NULL)
        return -ENOMEM;
    px_ws_accept_key(hs->key, accept);
    n = snprintf(head, cap,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s%s\r\n",
                 accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                 proto ? "\r\n" : "", extensions ? "Sec-WebSocket-Extensions: " : "",
                 extensions ? extensions : "", extensions ? "\r\n" : "", headers ? headers : "");
    if (n < 0 || (size_t)n >= cap) {
        free(head);
        return -EINVAL;
    }
    iov.iov_base = head;
    iov.iov_len = (size_t)n;
    rc = px_conn_send(x->conn, &iov, 1);
    free(head);
    return rc;
}

static bool token_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 256)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s) != NULL)
            return false;
    return true;
}

int px_ws_accept(px_http_exchange_t *x, const px_ws_config_t *cfg, const px_ws_handler_t *h,
                 void *arg, px_ws_t **out)
{
    px_conn_t *c = x->conn;
    px_ws_handshake_t hs;
    char extensions[PX_WS_DEFLATE_ANSWER];
    http_conn_t *hc;
    px_ws_t *ws;
    int rc;

    if (x->responded)
        return -EALREADY;
    if (px_ws_handshake_check(x->req, &hs) < 0 ||
        (cfg->subprotocol != NULL && !token_ok(cfg->subprotocol)))
        return -EINVAL;
    if (px_conn_closing(c))
        return -ENOTCONN;
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return -ENOMEM;
    ws->cfg = *cfg;
    if (ws->cfg.max_message == 0)
        ws->cfg.max_message = PX_WS_MAX_MESSAGE;
    if (ws->cfg.max_frame == 0 || ws->cfg.max_frame > ws->cfg.max_message)
        ws->cfg.max_frame = ws->cfg.max_message;
    if (ws->cfg.ping_timeout_ms == 0)
        ws->cfg.ping_timeout_ms = ws->cfg.ping_interval_ms;
    if (ws->cfg.close_timeout_ms == 0)
        ws->cfg.close_timeout_ms = PX_WS_CLOSE_TIMEOUT_MS;
    ws->cfg.subprotocol = NULL;
    ws->cfg.headers = NULL;
    ws->subprotocol = cfg->subprotocol ? strdup(cfg->subprotocol) : NULL;
    ws->handle = px_conn_handle(c);
    hc = px__http_conn_state(c);
    if ((cfg->subprotocol && ws->subprotocol == NULL) || ws->handle == NULL || hc == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (cfg->deflate) {
        px_ws_deflate_policy_t policy = {cfg->deflate_client_context, cfg->deflate_window_bits};
        ws->deflate = px_ws_deflate_negotiate(x->req, &policy, &ws->dparams, extensions) == 1;
    }
    rc = answer_101(x, &hs, ws->subprotocol, ws->deflate ? extensions : NULL, cfg->headers);
    if (rc < 0)
        goto fail;
    x->responded = true;
    x->keep_alive = true;
    x->ws = ws;
    ws->w = px_conn_worker(c);
    ws->conn = c;
    ws->h = *h;
    ws->arg = arg;
    ws->code = PX_WS_CLOSE_ABNORMAL;
    atomic_init(&ws->refs, 2); /* the caller's and the connection's */
    px_ws_parser_init(&ws->parser, ws->cfg.max_frame, ws->cfg.max_message, false);
    ws->parser.deflate = ws->deflate;
    px_timer_init(&ws->timer, on_timer);
    hc->ws = ws;
    px_conn_set_deadline(c, 0);
    px_conn_set_idle_timeout(c, ws->cfg.idle_timeout_ms);
    arm(ws, ws->cfg.ping_interval_ms);
    /* Bytes after the request are frames, not a next request: held until
     * the handler has returned (server_stream.c resumes). */
    px_conn_pause(c);
    hc->stream_paused = true;
    PX_STAT_ADD(px_worker_stats(ws->w), ws_upgrades, 1);
    *out = ws;
    return 0;
fail:
    if (ws->handle != NULL)
        px_handle_release(ws->handle);
    free(ws->subprotocol);
    free(ws);
    return rc;
}

/* ---- any thread ------------------------------------------------------------- */

int px_ws_send(px_ws_t *ws, int opcode, const void *data, size_t len, unsigned flags)
{
    uint8_t hdr[PX_WS_MAX_HEADER];
    struct iovec iov[2];
    bool force = (flags & PX_WS_SEND_FORCE) != 0;
    int rc, wire_op = opcode;

    if (!(opcode == PX_WS_TEXT || opcode == PX_WS_BINARY || opcode == PX_WS_PING ||
          opcode == PX_WS_PONG) ||
        (opcode >= PX_WS_CLOSE && len > PX_WS_MAX_CONTROL))
        return -EINVAL;
    if (px_ws_closed(ws))
        return -ENOTCONN;
    /* refused before compressing, so that a writer retrying over the
     * high-water mark does not compress each time */
    if (!force &&
        (px_worker_owned(ws->w) && !px_handle_pending(ws->handle)
             ? ws->conn != NULL && px_conn_unsent(ws->conn) > px_handle_high_water(ws->handle)
             : px_handle_queued(ws->handle) > px_handle_high_water(ws->handle)))
        return -EAGAIN;
    if (ws->deflate && opcode < PX_WS_CLOSE && len >= ws->cfg.deflate_min_size) {
        /* this thread's compressor, fresh for each message (we said
         * server_no_context_takeover); sent as is when it does not shrink */
        const uint8_t *z;
        ssize_t n = px_ws_deflate(ws->dparams.server_bits, ws->cfg.deflate_level, data, len, &z);

        if (n >= 0 && (size_t)n < len) {
            data = z;
            len = (size_t)n;
            wire_op = opcode | PX_WS_RSV1;
        }
    }
    iov[0].iov_base = hdr;
    iov[0].iov_len = px_ws_frame_header(hdr, true, wire_op, len, NULL);
    iov[1].iov_base = (void *)data;
    iov[1].iov_len = len;
    if (px_worker_owned(ws->w) && !px_handle_pending(ws->handle)) {
        if (ws->conn == NULL)
            return -ENOTCONN;
        if (!force && px_conn_unsent(ws->conn) > px_handle_high_water(ws->handle))
            return -EAGAIN;
        rc = px_conn_send(ws->conn, iov, len ? 2 : 1);
    } else {
        rc = px_handle_send(ws->handle, iov, len ? 2 : 1, force);
    }
    if (rc == 0 && opcode < PX_WS_CLOSE)
        /* any thread: an atomic add, not the owner's store */
        atomic_fetch_add_explicit(&px_worker_stats(ws->w)->ws_messages_out, 1,
                                  memory_order_relaxed);
    return rc == -EPIPE ? -ENOTCONN : rc;
}

int px_ws_wait_writable(px_ws_t *ws, int timeout_ms)
{
    return px_handle_wait_queued(ws->handle, px_handle_low_water(ws->handle), timeout_ms);
}

int px_ws_close(px_ws_t *ws, unsigned code, const char *reason, size_t len)
{
    int rc;

    if (code != 0 && !px_ws_close_code_valid(code))
        return -EINVAL;
    if (atomic_exchange_explicit(&ws->closing, true, memory_order_acq_rel))
        return 0;
    ws->ask_code = code;
    ws->ask_len = px_ws_close_payload(ws->ask_reason, code ? code : 1000, reason, len) - 2;
    memmove(ws->ask_reason, ws->ask_reason + 2, ws->ask_len);
    px_ws_ref(ws);
    if (px_worker_owned(ws->w) && !px_handle_pending(ws->handle)) {
        close_on_worker(ws->conn, ws);
        return 0;
    }
    rc = px_handle_run(ws->handle, close_on_worker, ws);
    if (rc < 0)
        px_ws_release(ws);
    return rc == -ENOTCONN ? 0 : rc;
}
