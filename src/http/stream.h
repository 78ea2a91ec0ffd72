/*
 * Streamed bodies and the server (private to src/http): what stream.c and
 * body.c need of server.c, and what server.c calls in them. All on the
 * connection's worker.
 */
#ifndef PX_HTTP_STREAM_PRIV_H
#define PX_HTTP_STREAM_PRIV_H

#include "px/http_stream.h"

/* server.c: a stream occupies c from now on (its next request waits). */
void px__http_server_stream_begin(px_conn_t *c, px_http_stream_t *st);
/* server.c: the stream is over; c goes on with its next request, unless it
 * is closing. */
void px__http_server_stream_over(px_conn_t *c, px_http_stream_t *st);

/* stream.c: c cannot go on after st: it closes once st is over, after
 * everything written to st (posted writes included) and its end. */
void px__http_stream_close_after(px_http_stream_t *st);
/* stream.c: c went away (closing, closed, end of its input) under st. */
void px__http_stream_gone(px_http_stream_t *st, px_conn_t *c, int err);

/* body.c: a body read as it arrives. */
px_http_body_t *px__http_body_new(px_conn_t *c, const px_http_request_t *req, uint64_t max_body,
                                  size_t cap, unsigned timeout_ms);
/* The tap's bytes: decoded into the buffer as far as there is room; the raw
 * bytes taken (what follows the body, or what did not fit, is left). */
size_t px__http_body_feed(px_http_body_t *b, px_conn_t *c, const char *data, size_t len);
/* The connection's input ended (err 0) or failed before the body did. */
void px__http_body_end(px_http_body_t *b, int err);
/* The response starts: no 100 Continue after it. */
void px__http_body_responding(px_http_body_t *b);
/* What is left of a body its handler did not read to the end. */
typedef struct px__http_body_rest {
    int err;      /* the body failed (-EBADMSG, -EFBIG, -ECONNRESET...): close */
    bool unasked; /* the client waits for a 100 Continue never sent: close */
    bool chunked;
    uint64_t left;
    px_http_chunked_t dec;
} px__http_body_rest_t;
/* The handler returned: true when the body was received whole, else *rest
 * says how to go on. Drops the server's reference. */
bool px__http_body_detach(px_http_body_t *b, px_conn_t *c, px__http_body_rest_t *rest);

#endif
