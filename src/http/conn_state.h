/*
 * The HTTP state of a connection and the server's internals that its parts
 * share (private to src/http): server.c frames requests, server_stream.c
 * keeps a connection for a streamed response or a body read as it arrives.
 * All on the connection's worker.
 */
#ifndef PX_HTTP_CONN_STATE_H
#define PX_HTTP_CONN_STATE_H

#include "px/http_stream.h"

#include "early.h"

/* Per-connection state, only while a request is incomplete, the body of an
 * answered one is being dropped, or a streamed response occupies the
 * connection. */
typedef struct http_conn {
    char *buf;
    size_t len, cap;
    bool continue_sent;
    bool deadline_armed;
    bool in_body;     /* the head of the pending request is complete */
    bool chunked;     /* decoding the body of the request at buf */
    bool dropping;    /* the body of an answered request: read, never kept */
    size_t body_done; /* chunked: decoded bytes after the head (the raw bytes
                         they came from are gone) */
    px_http_chunked_t dec;
    px__http_drop_t drop;     /* while dropping */
    px_http_stream_t *stream; /* a streamed response not over yet: the next
                                 request waits for it */
    bool stream_paused;       /* input held for after the stream */
    px_http_body_t *body;     /* a body its handler reads as it arrives */
    bool in_data;             /* inside http_on_data (which frees the state) */
    struct px_ws *ws;         /* the connection is a WebSocket (ws_conn.c) */
} http_conn_t;

static inline http_conn_t *px__http_state_of(px_conn_t *c)
{
    return px_conn_udata(c);
}
/* The state of c, created when it has none; NULL without memory. */
http_conn_t *px__http_conn_state(px_conn_t *c);
/* Drop what the state holds for requests; the state itself goes unless a
 * stream or a body reader still uses it. */
void px__http_free_state(px_conn_t *c);

/* server.c: an error answer, then close. */
void px__http_fail(px_conn_t *c, px_http_server_t *s, int status);
/* server.c: answer one request (counted and timed); body_stream: its body
 * is read as it arrives. */
void px__http_dispatch(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                       const char *body, size_t body_len, px_http_body_t *body_stream);
/* server.c: parse and answer what arrived (the engine's on_data). */
int px__http_on_data(px_conn_t *c, const char *data, size_t len);
/* The server's configuration. */
const px_http_config_t *px__http_server_config(const px_http_server_t *s);

/* server_stream.c */
/* After an answer: true when a stream occupies c, whose next requests then
 * wait (more: input follows in the buffer, held back by pausing). */
bool px__http_stream_holds(px_conn_t *c, bool more);
/* Input while a stream occupies c: held in the engine (true). */
bool px__http_held_for_stream(px_conn_t *c, const char *data, size_t len);
/* Whether request bodies are read by their handler as they arrive. */
bool px__http_streams_body(px_conn_t *c, const px_http_server_t *s);
/* Call the app with req's head, its body (rest[0..restlen) the bytes after
 * the head) read as it arrives. 0, or -1: closing. */
int px__http_answer_streamed(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                             const char *rest, size_t restlen);
void px__http_on_eof(px_conn_t *c, int err);
int px__http_stream_on_data(px_conn_t *c, const char *data, size_t len);
/* The connection closed: what occupies it (a stream, a WebSocket) is told. */
void px__http_conn_gone(px_conn_t *c, http_conn_t *h, int err);

/* ws_conn.c: frames arrived on a WebSocket connection; it is gone. */
int px__ws_on_data(struct px_ws *ws, px_conn_t *c, const char *data, size_t len);
void px__ws_gone(struct px_ws *ws, px_conn_t *c, int err);
/* The server stops: a WebSocket sends its close frame (1001, unless one was
 * sent; the peer's answer not awaited), then the connection closes. */
void px__http_on_shutdown(px_conn_t *c);

#endif
