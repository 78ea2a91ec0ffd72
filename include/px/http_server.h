/*
 * HTTP/1.1 on the engine: request framing (keep-alive, pipelining with responses
 * in order, Content-Length and chunked bodies, Expect: 100-continue, HEAD),
 * strict limits and deadlines, static routes answered in C, and responses.
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

typedef struct px_http_server px_http_server_t;

typedef struct px_http_config {
    px_http_limits_t limits;
    unsigned keepalive_timeout_ms; /* idle keep-alive connection; default 60 s */
    unsigned head_timeout_ms;      /* complete request head once begun; 10 s */
    unsigned body_timeout_ms;      /* complete body once the head is in; 30 s */
    const char *server_name;       /* Server header; "pyparallel" */
} px_http_config_t;

void px_http_config_default(px_http_config_t *cfg);

/* One request being answered; valid during the handler call only. */
typedef struct px_http_exchange {
    px_conn_t *conn;
    const px_http_request_t *req;
    const char *body;   /* decoded body (Content-Length or chunked) */
    size_t body_len;
    bool head;          /* HEAD: the response carries no body */
    bool keep_alive;    /* cleared by a handler to close after the response */
    bool responded;
    px_http_server_t *srv;
} px_http_exchange_t;

/* The application: answers every request no static route took. It must call
 * one of the px_http_respond* functions once; if it does not, the client gets 500. */
typedef void (*px_http_app_fn)(px_http_exchange_t *x, void *udata);

/* Create a server description (not yet listening). Main thread. */
int px_http_server_new(const px_http_config_t *cfg, px_http_app_fn app, void *udata,
                       px_http_server_t **out);
void px_http_server_free(px_http_server_t *s);

/* Answer GET and HEAD of exactly `path` with body, never entering the app.
 * Copies everything. Call before listening. 0, -EEXIST, -ENOMEM, -EINVAL. */
int px_http_route_static(px_http_server_t *s, const char *path, const char *content_type,
                         const void *body, size_t len);

/* Listen with this server's protocol; returns the port or -errno. listen_fd:
 * as px_endpoint_config_t's (a socket the engine takes over), or -1. */
int px_http_listen(px_engine_t *e, px_http_server_t *s, const char *host, int port,
                   int listen_fd);

/* Queue a complete response. extra: raw header lines ("Name: value\r\n"...),
 * may be NULL. content_type NULL: no Content-Type. 0 or -errno. */
int px_http_respond(px_http_exchange_t *x, int status, const char *content_type,
                    const char *extra, size_t extra_len, const void *body, size_t len);

/* Like px_http_respond, with count bytes of fd from offset as the body (sent by
 * the kernel). Takes ownership of fd. */
int px_http_respond_file(px_http_exchange_t *x, int status, const char *content_type,
                         const char *extra, size_t extra_len, int fd, off_t offset,
                         size_t count);

/* The reason phrase of a status code ("OK", "Not Found"...); "Unknown" otherwise. */
const char *px_http_reason(int status);

/* The current time as an IMF-fixdate (29 chars + NUL), recomputed at most once a
 * second per thread. */
const char *px_http_date(void);

#endif
