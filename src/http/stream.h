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

/* stream.c: c went away (closing, closed, end of its input) under st. */
void px__http_stream_gone(px_http_stream_t *st, px_conn_t *c, int err);

#endif
