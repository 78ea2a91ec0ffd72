/*
 * HTTP/1.1 on the engine: request framing (keep-alive, pipelining with responses
 * in order, Content-Length and chunked bodies, Expect: 100-continue, HEAD),
 * strict limits and deadlines, routing (static routes answered in C, the app's
 * route table matched in C), and responses.
 *
 * An idle keep-alive connection holds no HTTP state at all: bytes are parsed
 * straight from the receive buffer and copied only when a request arrives in
 * pieces. Handlers run on the connection's worker and answer synchronously.
 */
#ifndef PX_HTTP_SERVER_H
#define PX_HTTP_SERVER_H

#include <sys/types.h>
#include "px/engine.h"
#include "px/http_parser.h"
#include "px/http_router.h"

/* Defaults of px_http_config_t (DESIGN section 6); the Python layer reads them
 * from here through the binding. */
#define PX_HTTP_KEEPALIVE_TIMEOUT_MS 60000
#define PX_HTTP_HEAD_TIMEOUT_MS 10000
#define PX_HTTP_BODY_TIMEOUT_MS 30000
#define PX_HTTP_SERVER_NAME "pyparallel"

typedef struct px_http_server px_http_server_t;

typedef struct px_http_config {
    px_http_limits_t limits;
    unsigned keepalive_timeout_ms; /* idle keep-alive connection */
    unsigned head_timeout_ms;      /* complete request head once begun */
    unsigned body_timeout_ms;      /* complete body once the head is in */
    const char *server_name;       /* Server header; borrowed: must outlive the
                                      server */
    bool fallback_takes_body;      /* the app may read the body of a request no
                                      route matched (default); false: such a
                                      request is answered before its body, which
                                      is dropped unread */
    bool stream_bodies;            /* call the app as soon as a request head is
                                      in and let it read the body as it arrives
                                      (px/http_stream.h); needs hand-off
                                      (handoff_ms > 0), else bodies are buffered */
    size_t body_buffer;            /* stream_bodies: bytes of body buffered per
                                      request; 0: PX_HTTP_BODY_BUFFER */
    const char *health_path;       /* GET/HEAD of this path answered by the server:
                                      200 "ok", 503 "draining" while stopping
                                      (borrowed: must outlive the server); NULL: none */
    bool proxy_protocol;           /* each connection starts with a PROXY protocol
                                      header (px_endpoint_config_t.proxy_protocol) */
    unsigned proxy_timeout_ms;     /* for that header; 0: PX_DEFAULT_PROXY_TIMEOUT_MS */
} px_http_config_t;

/* Fill cfg with the defaults above and px_http_limits_default's. */
void px_http_config_default(px_http_config_t *cfg);

struct px_http_body;
struct px_http_stream;

/* One request being answered; valid during the handler call only. */
typedef struct px_http_exchange {
    px_conn_t *conn;
    const px_http_request_t *req;
    const char *body; /* decoded body (Content-Length or chunked) */
    size_t body_len;
    bool head;       /* HEAD: the response carries no body */
    bool keep_alive; /* cleared by a handler to close after the response */
    bool responded;
    px_http_server_t *srv;
    px_http_match_t match;            /* the route (px_http_route) the path matched, with
                                         its parameters; match.route -1: none did */
    struct px_http_body *body_stream; /* the body still arriving (stream_bodies):
                                         read it with px_http_body_read; body is
                                         NULL then. NULL: body is the whole body */
    size_t body_read;                 /* bytes of body px_http_body_read returned */
    struct px_http_stream *stream;    /* the streamed response started on x, or NULL */
    const char *reason;               /* the status line's reason phrase (NUL-terminated,
                                         the handler's, valid until it responds), or
                                         NULL: the standard one (px_http_reason) */
    struct px_ws *ws;                 /* the WebSocket x was upgraded to (px/ws_server.h),
                                         or NULL */
} px_http_exchange_t;

/* The application: answers every request no static route took and that was
 * not refused with 405 by the route table. It must call one of the
 * px_http_respond* functions once; if it does not, the client gets 500. */
typedef void (*px_http_app_fn)(px_http_exchange_t *x, void *udata);

/* Create a server description (not yet listening). Main thread. -EINVAL when
 * cfg->server_name is not a valid field value (see px/http_response.h). */
int px_http_server_new(const px_http_config_t *cfg, px_http_app_fn app, void *udata,
                       px_http_server_t **out);
void px_http_server_free(px_http_server_t *s);

/* Answer GET and HEAD of exactly `path` (whatever the query) with body, never
 * entering the app. Copies everything. Call before listening. 0, -EEXIST,
 * -ENOMEM, -EINVAL (content_type not a valid field value, path not absolute). */
int px_http_route_static(px_http_server_t *s, const char *path, const char *content_type,
                         const void *body, size_t len);

/* Route the requests whose path matches pattern[0..len) (px/http_router.h) to
 * the app, their match in x->match; a matching path with a method not in
 * methods is answered 405 with an Allow header, without the app. Static routes
 * take precedence. Returns the route id (0 for the first route, then 1, 2...)
 * or -errno as px_http_router_add. Call before listening. */
int px_http_route(px_http_server_t *s, const char *pattern, size_t len, const char *const *methods,
                  size_t nmethods);

/* The server's route table, to read route names and parameters from. */
const px_http_router_t *px_http_server_router(const px_http_server_t *s);

/* Per-connection application state: what the app keeps with
 * px_conn_set_app_data on a connection of this server is handed to fn (with
 * the server's udata) when the connection closes, on its worker. Call before
 * listening. */
typedef void (*px_http_conn_release_fn)(px_conn_t *c, void *app_data, void *udata);
void px_http_server_on_release(px_http_server_t *s, px_http_conn_release_fn fn);

/* Listen with this server's protocol; returns the port or -errno. listen_fd:
 * as px_endpoint_config_t's (a socket the engine takes over), or -1. */
int px_http_listen(px_engine_t *e, px_http_server_t *s, const char *host, int port, int listen_fd);

/* Queue a complete response. extra: raw header lines ("Name: value\r\n"...),
 * may be NULL. content_type NULL: no Content-Type. 0 or -errno. The status,
 * content type and extra lines are checked first
 * (px_http_check_response_fields): a field that could break the framing (CR,
 * LF, NUL or another control byte in a value, a name that is not a token) is
 * -EINVAL with a line on stderr naming it, and nothing is sent; x stays
 * unanswered, so the client gets 500 unless the app answers otherwise. */
int px_http_respond(px_http_exchange_t *x, int status, const char *content_type, const char *extra,
                    size_t extra_len, const void *body, size_t len);

/* Like px_http_respond, with count bytes of fd from offset as the body (sent by
 * the kernel). Takes ownership of fd. */
int px_http_respond_file(px_http_exchange_t *x, int status, const char *content_type,
                         const char *extra, size_t extra_len, int fd, off_t offset, size_t count);

/* The reason phrase of a status code ("OK", "Not Found"...); "Unknown" otherwise. */
const char *px_http_reason(int status);

/* The current time as an IMF-fixdate (29 chars + NUL), recomputed at most once a
 * second per thread. */
const char *px_http_date(void);

#endif
