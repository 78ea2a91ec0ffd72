/*
 * What the response writer (respond.c) needs of the server (private to
 * src/http).
 */
#ifndef PX_HTTP_RESPOND_H
#define PX_HTTP_RESPOND_H

#include "px/http_server.h"

/* How a response body is delimited. */
typedef enum px__http_framing {
    PX__HTTP_LENGTH,      /* Content-Length */
    PX__HTTP_CHUNKED,     /* Transfer-Encoding: chunked (HTTP/1.1 clients) */
    PX__HTTP_UNTIL_CLOSE, /* the close of the connection (Connection: close) */
} px__http_framing_t;

/* Check the fields and queue the head of a response whose body follows
 * (stream.c): as px_http_respond, without a body. */
int px__http_send_head(px_http_exchange_t *x, int status, const char *content_type,
                       const char *extra, size_t extra_len, px__http_framing_t framing,
                       uint64_t length);

/* The Server header's value. */
const char *px__http_server_name(const px_http_server_t *s);

#endif
