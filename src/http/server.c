/*
 * HTTP/1.1 connections on the engine: framing, limits, deadlines, routing
 * (static answers, the app's route table) and response writing. See
 * include/px/http_server.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px/clock.h"
#include "px/http_response.h"
#include "px/http_server.h"
#include "early.h"
#include "respond.h"
#include "conn_state.h"
#include "stream.h"

#define MAX_HEADERS_CAP 256

static const char TEXT_PLAIN[] = "text/plain; charset=utf-8";

/* A GET/HEAD answer fixed at start-up, sent without entering the app. */
typedef struct static_route {
    char *path;
    size_t path_len;
    char *content_type;
    char *body;
    size_t body_len;
    struct static_route *next;
} static_route_t;

struct px_http_server {
    px_http_config_t cfg;
    px_http_app_fn app;
    void *udata;
    static_route_t *statics;
    px_http_router_t *router;                 /* the app's routes */
    char **allow_lines;                       /* by route id: "Allow: ...\r\n" for its 405 */
    bool *takes_body;                         /* by route id: a method other than GET and HEAD */
    char *options_allow;                      /* "Allow: ...\r\n" of OPTIONS *, built at listen */
    px_http_conn_release_fn release_app_data; /* app state at close, or NULL */
};

void px_http_config_default(px_http_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    px_http_limits_default(&cfg->limits);
    cfg->keepalive_timeout_ms = PX_HTTP_KEEPALIVE_TIMEOUT_MS;
    cfg->head_timeout_ms = PX_HTTP_HEAD_TIMEOUT_MS;
    cfg->body_timeout_ms = PX_HTTP_BODY_TIMEOUT_MS;
    cfg->server_name = PX_HTTP_SERVER_NAME;
    cfg->fallback_takes_body = true;
}

int px_http_server_new(const px_http_config_t *cfg, px_http_app_fn app, void *udata,
                       px_http_server_t **out)
{
    px_http_server_t *s;
    int rc;

    if (cfg->server_name == NULL ||
        !px_http_field_value_ok(cfg->server_name, strlen(cfg->server_name), NULL))
        return -EINVAL; /* it goes into every response head */
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.limits.max_headers > MAX_HEADERS_CAP)
        s->cfg.limits.max_headers = MAX_HEADERS_CAP;
    s->app = app;
    s->udata = udata;
    rc = px_http_router_new(&s->router);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void px_http_server_free(px_http_server_t *s)
{
    static_route_t *r, *next;

    if (s == NULL)
        return;
    for (r = s->statics; r; r = next) {
        next = r->next;
        free(r->path);
        free(r->content_type);
        free(r->body);
        free(r);
    }
    for (size_t i = 0; i < px_http_router_count(s->router); i++)
        free(s->allow_lines[i]);
    free(s->allow_lines);
    free(s->takes_body);
    free(s->options_allow);
    px_http_router_free(s->router);
    free(s);
}

int px_http_route(px_http_server_t *s, const char *pattern, size_t len, const char *const *methods,
                  size_t nmethods)
{
    size_t n = px_http_router_count(s->router);
    char **lines = realloc(s->allow_lines, (n + 1) * sizeof(*lines));
    bool *takes;
    px_view_t allow;
    int id;

    if (lines == NULL)
        return -ENOMEM;
    s->allow_lines = lines;
    takes = realloc(s->takes_body, (n + 1) * sizeof(*takes));
    if (takes == NULL)
        return -ENOMEM;
    s->takes_body = takes;
    id = px_http_router_add(s->router, pattern, len, methods, nmethods);
    if (id < 0)
        return id;
    takes[id] = px__http_methods_take_body(methods, nmethods);
    allow = px_http_router_allow(s->router, id);
    /* Built now so that a 405 costs no formatting; freed with the server. */
    if (asprintf(&lines[id], "Allow: %.*s\r\n", (int)allow.len, allow.base) < 0) {
        lines[id] = NULL;
        return -ENOMEM;
    }
    return id;
}

const px_http_router_t *px_http_server_router(const px_http_server_t *s)
{
    return s->router;
}

int px_http_route_static(px_http_server_t *s, const char *path, const char *content_type,
                         const void *body, size_t len)
{
    static_route_t *r;

    if (path == NULL || path[0] != '/' || content_type == NULL ||
        !px_http_field_value_ok(content_type, strlen(content_type), NULL))
        return -EINVAL;
    for (r = s->statics; r; r = r->next)
        if (strcmp(r->path, path) == 0)
            return -EEXIST;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->path = strdup(path);
    r->path_len = strlen(path);
    r->content_type = strdup(content_type);
    r->body = malloc(len ? len : 1);
    r->body_len = len;
    if (r->path == NULL || r->content_type == NULL || r->body == NULL) {
        free(r->path);
        free(r->content_type);
        free(r->body);
        free(r);
        return -ENOMEM;
    }
    memcpy(r->body, body, len);
    r->next = s->statics;
    s->statics = r;
    return 0;
}

/* For the response writer (respond.c). */
const char *px__http_server_name(const px_http_server_t *s)
{
    return s->cfg.server_name;
}

/* An error answer, then close (the rest of the input cannot be trusted). */
static void fail(px_conn_t *c, px_http_server_t *s, int status)
{
    px_http_exchange_t x = {.conn = c, .srv = s, .keep_alive = false};
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, px_http_reason(status));

    px_http_respond(&x, status, TEXT_PLAIN, NULL, 0, body, (size_t)n);
    px_conn_close(c);
}

/* ---- framing -------------------------------------------------------------- */

static bool is_head_method(const px_http_request_t *req)
{
    return req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0;
}

static bool is_get_or_head(const px_http_request_t *req)
{
    return (req->method.len == 3 && memcmp(req->method.base, "GET", 3) == 0) || is_head_method(req);
}

/* A static route's answer, or NULL: the path alone decides (the query is
 * ignored, as nginx's exact locations do). */
static const static_route_t *static_route(const px_http_server_t *s, const px_http_request_t *req)
{
    if (s->statics == NULL || !is_get_or_head(req))
        return NULL;
    for (const static_route_t *r = s->statics; r; r = r->next)
        if (r->path_len == req->path.len && memcmp(r->path, req->path.base, req->path.len) == 0)
            return r;
    return NULL;
}

/* OPTIONS * (the parser allows "*" with OPTIONS only) */
static bool is_options_star(const px_http_request_t *req)
{
    return req->target.len == 1 && req->target.base[0] == '*';
}

/* Whether anything takes the request's body: not a static route, OPTIONS *, a
 * 405 of the route table nor a route of only GET and HEAD. */
static bool takes_body(const px_http_server_t *s, const px_http_request_t *req)
{
    px_http_match_t m;
    int id;

    if (static_route(s, req) != NULL || is_options_star(req))
        return false;
    if (px_http_router_count(s->router) == 0)
        return true;
    id = px_http_router_match(s->router, req->method, req->path, &m);
    if (id == -EPERM)
        return false;
    return id < 0 ? s->cfg.fallback_takes_body : s->takes_body[id];
}

static void answer(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                   const char *body, size_t body_len, px_http_body_t *body_stream)
{
    px_http_exchange_t x = {
        .conn = c,
        .req = req,
        .body = body,
        .body_len = body_len,
        .body_stream = body_stream,
        .head = is_head_method(req),
        .keep_alive = req->keep_alive,
        .srv = s,
        .match = {.route = -1},
    };
    const static_route_t *r = static_route(s, req);

    if (r != NULL) {
        px_http_respond(&x, 200, r->content_type, NULL, 0, r->body, r->body_len);
    } else if (is_options_star(req)) {
        /* the server as a whole (RFC 9110 section 9.3.7): what it answers */
        const char *allow = s->options_allow;
        px_http_respond(&x, 200, NULL, allow, allow ? strlen(allow) : 0, NULL, 0);
    } else if (px_http_router_count(s->router) > 0 &&
               px_http_router_match(s->router, req->method, req->path, &x.match) == -EPERM) {
        const char *allow = s->allow_lines[x.match.route];
        px_http_respond(&x, 405, TEXT_PLAIN, allow, allow ? strlen(allow) : 0,
                        "405 Method Not Allowed\n", 23);
    } else if (s->app) {
        s->app(&x, s->udata);
    }
    if (x.stream != NULL || body_stream != NULL)
        px_conn_set_tap(c, NULL); /* the handler returned: its input as usual */
    if (!x.responded)
        px_http_respond(&x, 500, TEXT_PLAIN, NULL, 0, "500 Internal Server Error\n", 26);
    if (!x.keep_alive && x.stream == NULL)
        px_conn_close(c); /* a stream closes the connection at its end */
}

/* Answer one complete request, counted and timed: latency runs from the whole
 * request in hand to its response queued, so it measures the server (routing,
 * handler, encoding), not the network or the client. */
static void dispatch(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                     const char *body, size_t body_len, px_http_body_t *body_stream)
{
    px_worker_t *w = px_conn_worker(c);
    uint64_t t0 = px_ticks();

    if (!px__http_answer_health(c, s, req, body_stream ? NULL : s->cfg.health_path))
        answer(c, s, req, body, body_len, body_stream);
    PX_STAT_ADD(px_worker_stats(w), requests, 1);
    px_hist_record(px_worker_latency(w, PX_LATENCY_REQUEST),
                   px_ticks_ns((int64_t)(px_ticks() - t0)));
}

/* Drop what the state holds for requests; the state itself goes unless a
 * stream still occupies the connection. */
static void free_state(px_conn_t *c)
{
    http_conn_t *h = px__http_state_of(c);
    if (h) {
        px_conn_charge(c, -(int64_t)h->cap);
        free(h->buf);
        if (h->stream != NULL || h->body != NULL || h->ws != NULL) {
            http_conn_t keep = {.stream = h->stream,
                                .stream_paused = h->stream_paused,
                                .body = h->body,
                                .ws = h->ws,
                                .in_data = h->in_data};
            *h = keep;
            return;
        }
        free(h);
        px_conn_set_udata(c, NULL);
    }
}

/* The state of c, created when it has none; NULL without memory. */
static http_conn_t *conn_state(px_conn_t *c)
{
    http_conn_t *h = px__http_state_of(c);

    if (h == NULL) {
        h = calloc(1, sizeof(*h));
        if (h != NULL)
            px_conn_set_udata(c, h);
    }
    return h;
}

/* Keep buf[0..len) for the next receive. */
static int save_rest(px_conn_t *c, const char *buf, size_t len)
{
    http_conn_t *h = conn_state(c);

    if (h == NULL)
        return -ENOMEM;
    if (len > h->cap) {
        size_t cap = PX_MAX(len, PX_MAX(h->cap * 2, (size_t)4096));
        char *p = malloc(cap);
        if (p == NULL)
            return -ENOMEM;
        memcpy(p, buf, len);
        free(h->buf);
        px_conn_charge(c, (int64_t)cap - (int64_t)h->cap);
        h->buf = p;
        h->cap = cap;
    } else {
        memmove(h->buf, buf, len);
    }
    h->len = len;
    return 0;
}

/* Answer a request whose body nothing takes at once, then drop its body as it
 * arrives (body[0..avail) now, h->dropping then), never holding any of it, as
 * nginx discards such bodies. The bytes of body taken, or -1: closing. */
static ssize_t answer_early(px_conn_t *c, px_http_server_t *s, px_http_request_t *req,
                            const char *body, size_t avail)
{
    px__http_drop_t d;
    http_conn_t *h;
    ssize_t took;
    bool done;

    /* A client waiting for 100 Continue may never send the body it announced,
     * so the connection cannot go on after the answer. */
    if (req->expect_continue)
        req->keep_alive = false;
    dispatch(c, s, req, NULL, 0, NULL);
    if (px_conn_closing(c))
        return -1;
    px__http_drop_init(&d, req, s->cfg.limits.max_body);
    took = px__http_drop(&d, body, avail, &done);
    if (took >= 0 && !done) {
        h = conn_state(c);
        if (h == NULL) {
            took = -1;
        } else {
            h->dropping = true;
            h->drop = d;
        }
    }
    if (took < 0) {
        px_conn_close(c); /* answered already: nothing more to say */
        return -1;
    }
    return took;
}

/* A new request body while the process is over its memory budget (with this
 * body's announced length): refused with 503, as nginx refuses what it cannot
 * buffer. A body already being received (the request at off 0 of our copy,
 * its head seen before) was admitted then and goes on. */
static bool refuse_body(px_conn_t *c, const px_http_request_t *req, size_t off)
{
    const http_conn_t *h = px__http_state_of(c);
    size_t more = req->chunked ? 0 : (size_t)req->content_length;

    if (off == 0 && h != NULL && (h->in_body || h->chunked))
        return false;
    if (!px_conn_over_budget(c, more))
        return false;
    PX_STAT_ADD(px_worker_stats(px_conn_worker(c)), budget_refused, 1);
    return true;
}

/* Parse and answer every complete request at the start of buf. Returns the
 * bytes consumed, or -1 when the connection is closing. *want_continue is set
 * when the incomplete request at the end asked for 100-continue. Chunked bodies
 * are decoded in place, so they are handled only in our own copy (owned), whose
 * length shrinks as their raw bytes are decoded. A request whose body nothing
 * takes is answered before its body, which is then dropped (h->dropping, all of
 * buf consumed). */
static ssize_t process(px_conn_t *c, px_http_server_t *s, char *buf, size_t len, bool owned,
                       bool *want_continue, bool *in_body)
{
    px_http_header_t headers[MAX_HEADERS_CAP];
    px_http_request_t req;
    size_t off = 0;

    *want_continue = false;
    *in_body = false;
    while (off < len && !px_conn_closing(c)) {
        char *p = buf + off;
        size_t avail = len - off, body_len;
        int n;

        /* Pipelined requests wait while the answers queued so far are over
         * the high-water mark or a file is being sent (the caller gives the
         * rest back to the engine, which delivers it again on resume). A
         * request is only taken while reading goes on, so the first one
         * needs no look. */
        if (off > 0 && px_conn_paused(c)) {
            PX_STAT_ADD(px_worker_stats(px_conn_worker(c)), pipeline_waits, 1);
            break;
        }
        req.headers = headers;
        req.num_headers = s->cfg.limits.max_headers;
        n = px_http_parse_request(p, avail, &req, &s->cfg.limits);
        if (n == PX_HTTP_INCOMPLETE)
            break;
        if (n == PX_HTTP_ERROR) {
            fail(c, s, req.status ? req.status : 400);
            return -1;
        }
        if ((req.chunked || req.content_length > 0) && !takes_body(s, &req)) {
            ssize_t took = answer_early(c, s, &req, p + n, avail - (size_t)n);
            if (took < 0)
                return -1;
            off += (size_t)n + (size_t)took;
            if (px__http_stream_holds(c, off < len))
                break;
            continue;
        }
        if ((req.chunked || req.content_length > 0) && refuse_body(c, &req, off)) {
            fail(c, s, 503);
            return -1;
        }
        if ((req.chunked || req.content_length > 0) && px__http_streams_body(c, s)) {
            /* everything after the head now belongs to the engine */
            if (px__http_answer_streamed(c, s, &req, p + n, avail - (size_t)n) < 0)
                return -1;
            off = len;
            break;
        }
        if (req.chunked) {
            http_conn_t *h = px__http_state_of(c);
            char *raw;
            size_t rawlen, dlen;
            int r;

            if (!owned)
                break;
            if (!h->chunked) {
                h->chunked = true;
                h->body_done = 0;
                px_http_chunked_init(&h->dec, s->cfg.limits.max_body);
            }
            /* Layout: head, the body decoded so far, raw bytes not decoded yet. */
            raw = p + n + h->body_done;
            rawlen = avail - (size_t)n - h->body_done;
            dlen = rawlen;
            r = px_http_chunked_decode(&h->dec, raw, &dlen);
            if (r == PX_HTTP_ERROR) {
                fail(c, s, h->dec.status ? h->dec.status : 400);
                return -1;
            }
            h->body_done += dlen;
            if (r == PX_HTTP_INCOMPLETE) {
                /* The raw bytes just decoded are released at once: what the
                 * connection holds is the head and the decoded body. */
                h->len = (size_t)(raw + dlen - buf);
                *want_continue = req.expect_continue;
                *in_body = true;
                break;
            }
            h->chunked = false;
            dispatch(c, s, &req, p + n, h->body_done, NULL);
            off = (size_t)(raw + rawlen - (size_t)r - buf);
            if (px__http_stream_holds(c, off < len))
                break;
            continue;
        }
        body_len = req.content_length > 0 ? (size_t)req.content_length : 0;
        if (avail - (size_t)n < body_len) {
            *want_continue = req.expect_continue;
            *in_body = true;
            break;
        }
        dispatch(c, s, &req, p + n, body_len, NULL);
        off += (size_t)n + body_len;
        if (px__http_stream_holds(c, off < len))
            break;
    }
    return px_conn_closing(c) ? -1 : (ssize_t)off;
}

/* An answered request's body goes on: the body deadline, no bytes held. */
static void start_dropping(px_conn_t *c, px_http_server_t *s, http_conn_t *h)
{
    px_conn_charge(c, -(int64_t)h->cap);
    free(h->buf);
    h->buf = NULL;
    h->len = h->cap = 0;
    h->continue_sent = false;
    h->in_body = true;
    h->deadline_armed = true;
    px_conn_set_deadline(c, s->cfg.body_timeout_ms);
}

int px__http_on_data(px_conn_t *c, const char *data, size_t len)
{
    px_http_server_t *s = px_conn_server_udata(c);
    http_conn_t *h = px__http_state_of(c);
    bool want_continue, in_body;
    ssize_t used;

    if (h != NULL && h->dropping) {
        bool done;
        used = px__http_drop(&h->drop, data, len, &done);
        if (used < 0) {
            px_conn_close(c); /* answered already: nothing more to say */
            return 0;
        }
        if (!done)
            return 0;
        free_state(c); /* the body ended: on with the next request */
        px_conn_set_deadline(c, 0);
        data += used;
        len -= (size_t)used;
        if (px__http_held_for_stream(c, data, len))
            return 0;
        h = px__http_state_of(c);
        if (h != NULL && h->buf == NULL)
            h = NULL; /* what a stream keeps is no request state */
    }
    if (h == NULL) {
        /* Fast path: requests that arrive whole are parsed in the receive buffer. */
        used = process(c, s, (char *)data, len, false, &want_continue, &in_body);
        if (used < 0)
            return 0;
        h = px__http_state_of(c);
        if (h != NULL && h->dropping) {
            start_dropping(c, s, h);
            return 0;
        }
        if ((size_t)used == len)
            return 0;
        if (px_conn_paused(c) && !in_body) {
            if (px_conn_unread(c, data + used, len - (size_t)used) < 0)
                fail(c, s, 500);
            return 0;
        }
        if (save_rest(c, data + used, len - (size_t)used) < 0) {
            fail(c, s, 500);
            return 0;
        }
    } else {
        if (h->len + len > h->cap) {
            size_t cap = PX_MAX(h->cap * 2, h->len + len);
            char *p = realloc(h->buf, cap);
            if (p == NULL) {
                fail(c, s, 500);
                return 0;
            }
            px_conn_charge(c, (int64_t)cap - (int64_t)h->cap);
            h->buf = p;
            h->cap = cap;
        }
        memcpy(h->buf + h->len, data, len);
        h->len += len;
    }
    h = px__http_state_of(c);
    used = process(c, s, h->buf, h->len, true, &want_continue, &in_body);
    if (used < 0)
        return 0;
    if (h->dropping) {
        start_dropping(c, s, h);
        return 0;
    }
    if ((size_t)used == h->len) {
        free_state(c); /* an idle connection keeps no HTTP state */
        px_conn_set_deadline(c, 0);
        return 0;
    }
    if (px_conn_paused(c) && !in_body) {
        /* Stopped between requests: the rest waits in the engine, whole. */
        if (px_conn_unread(c, h->buf + used, h->len - (size_t)used) < 0) {
            fail(c, s, 500);
            return 0;
        }
        free_state(c);
        px_conn_set_deadline(c, 0);
        return 0;
    }
    if (used > 0) {
        memmove(h->buf, h->buf + used, h->len - (size_t)used);
        h->len -= (size_t)used;
        h->continue_sent = false;
        h->deadline_armed = false;
        h->in_body = false;
    }
    if (want_continue && !h->continue_sent) {
        struct iovec iov = {(void *)"HTTP/1.1 100 Continue\r\n\r\n", 25};
        px_conn_send(c, &iov, 1);
        h->continue_sent = true;
    }
    /* The head deadline runs from the request's first byte; the body has its own. */
    if (!h->deadline_armed || (in_body && !h->in_body)) {
        h->deadline_armed = true;
        px_conn_set_deadline(c, in_body ? s->cfg.body_timeout_ms : s->cfg.head_timeout_ms);
    }
    h->in_body = in_body;
    return 0;
}

static void http_on_close(px_conn_t *c, int err)
{
    px_http_server_t *s = px_conn_server_udata(c);
    void *app_data = px_conn_app_data(c);
    http_conn_t *h = px__http_state_of(c);

    px__http_conn_gone(c, h, err);
    free_state(c);
    if (app_data != NULL && s->release_app_data != NULL) {
        px_conn_set_app_data(c, NULL);
        s->release_app_data(c, app_data, s->udata);
    }
}

void px_http_server_on_release(px_http_server_t *s, px_http_conn_release_fn fn)
{
    s->release_app_data = fn;
}

static const px_handler_t http_handler = {
    .on_data = px__http_stream_on_data,
    .on_eof = px__http_on_eof,
    .on_close = http_on_close,
    .on_shutdown = px__http_on_shutdown,
};

int px_http_listen(px_engine_t *e, px_http_server_t *s, const char *host, int port, int listen_fd)
{
    px_endpoint_config_t ep = {
        .listen_fd = listen_fd,
        .handler = &http_handler,
        .udata = s,
        .sock_flags = PX_SOCK_NODELAY,
        .idle_timeout_ms = s->cfg.keepalive_timeout_ms,
        .proxy_protocol = s->cfg.proxy_protocol,
        .proxy_timeout_ms = s->cfg.proxy_timeout_ms,
    };

    free(s->options_allow);
    s->options_allow = px__http_options_allow(s->router, s->statics != NULL);
    if (s->options_allow == NULL)
        return -ENOMEM;
    return px_engine_listen(e, host, port, &ep, NULL);
}

const px_http_config_t *px__http_server_config(const px_http_server_t *s)
{
    return &s->cfg;
}

/* For server_stream.c (conn_state.h). */
void px__http_fail(px_conn_t *c, px_http_server_t *s, int status)
{
    fail(c, s, status);
}

void px__http_dispatch(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                       const char *body, size_t body_len, px_http_body_t *body_stream)
{
    dispatch(c, s, req, body, body_len, body_stream);
}

void px__http_free_state(px_conn_t *c)
{
    free_state(c);
}

http_conn_t *px__http_conn_state(px_conn_t *c)
{
    return conn_state(c);
}
