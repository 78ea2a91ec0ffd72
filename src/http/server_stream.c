/*
 * The server's side of streamed bodies: a connection occupied by a streamed
 * response (its next requests wait; its end or loss told to the stream), and
 * requests whose handler reads the body as it arrives, through the engine's
 * input tap while the handler runs released. See px/http_stream.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "px/http_stream.h"

#include "conn_state.h"
#include "stream.h"

/* ---- streamed responses (stream.c) ------------------------------------------ */

/* While a handler runs released, the input of its connection reaches the
 * server only through the tap: the end of it (the client went away) for a
 * stream; bytes of a next request wait. */
static size_t tap_data(px_conn_t *c, const char *data, size_t len, void *arg)
{
    http_conn_t *h = px__http_state_of(c);

    (void)arg;
    if (h != NULL && h->body != NULL)
        return px__http_body_feed(h->body, c, data, len);
    return 0; /* held by the engine until the handler returns */
}

static void tap_end(px_conn_t *c, int err, void *arg)
{
    http_conn_t *h = px__http_state_of(c);

    (void)arg;
    if (h != NULL && h->body != NULL)
        px__http_body_end(h->body, err);
    if (h != NULL && h->stream != NULL)
        px__http_stream_gone(h->stream, c, err);
}

static const px_conn_tap_t http_tap = {tap_data, tap_end, NULL};

void px__http_server_stream_begin(px_conn_t *c, px_http_stream_t *st)
{
    http_conn_t *h = px__http_conn_state(c);

    if (h == NULL) {
        /* Without memory for the state the connection cannot wait for the
         * stream: it closes after it. */
        px_conn_close(c);
        return;
    }
    h->stream = st;
    px_conn_set_tap(c, &http_tap);
}

void px__http_server_stream_over(px_conn_t *c, px_http_stream_t *st)
{
    http_conn_t *h = px__http_state_of(c);

    if (h == NULL || h->stream != st)
        return;
    h->stream = NULL;
    if (h->stream_paused) {
        h->stream_paused = false;
        if (!px_conn_closing(c))
            px_conn_resume(c); /* the requests held meanwhile, at the next flush */
    }
    if (!h->in_data && h->buf == NULL && !h->dropping)
        px__http_free_state(c);
}

/* After an answer: a stream that occupies c holds back what follows (more:
 * there is more input) and stops the parsing. */
bool px__http_stream_holds(px_conn_t *c, bool more)
{
    http_conn_t *h = px__http_state_of(c);

    if (h == NULL || h->stream == NULL)
        return false;
    if (more && !h->stream_paused && !px_conn_closing(c)) {
        px_conn_pause(c);
        h->stream_paused = true;
    }
    return true;
}

/* While a stream occupies c, its next requests wait in the engine. */
bool px__http_held_for_stream(px_conn_t *c, const char *data, size_t len)
{
    http_conn_t *h = px__http_state_of(c);

    if (h == NULL || h->stream == NULL || h->dropping)
        return false;
    if (len > 0) {
        px_conn_pause(c);
        h->stream_paused = true;
        if (px_conn_unread(c, data, len) < 0)
            px_conn_abort(c);
    }
    return true;
}

/* The client closed its side or the connection failed: a stream it had is
 * over (a client half-closing while it waits for an answer is taken as gone,
 * as nginx takes it). */
void px__http_on_eof(px_conn_t *c, int err)
{
    http_conn_t *h = px__http_state_of(c);

    if (h != NULL && h->stream != NULL)
        px__http_stream_gone(h->stream, c, err);
}

/* The server's on_data: a connection a stream occupies holds its input; the
 * state, once the data is taken, goes when it holds nothing. */
int px__http_stream_on_data(px_conn_t *c, const char *data, size_t len)
{
    http_conn_t *h = px__http_state_of(c);
    int rc;

    if (h != NULL && h->ws != NULL)
        return px__ws_on_data(h->ws, c, data, len);
    if (h != NULL && h->in_data)
        return px__http_on_data(c, data, len); /* not reentered, but stay safe */
    if (px__http_held_for_stream(c, data, len))
        return 0;
    if (h != NULL)
        h->in_data = true;
    rc = px__http_on_data(c, data, len);
    h = px__http_state_of(c);
    if (h != NULL) {
        h->in_data = false;
        if (h->ws != NULL && h->stream_paused) {
            h->stream_paused = false; /* what followed the upgrade: frames */
            px_conn_resume(c);
        }
        if (h->stream == NULL && h->ws == NULL && h->buf == NULL && !h->dropping && !h->in_body &&
            h->len == 0)
            px__http_free_state(c);
    }
    return rc;
}

void px__http_conn_gone(px_conn_t *c, http_conn_t *h, int err)
{
    struct px_ws *ws;

    if (h == NULL)
        return;
    ws = h->ws; /* read first: the stream's end may free h */
    h->ws = NULL;
    if (h->stream != NULL)
        px__http_stream_gone(h->stream, c, err);
    if (ws != NULL)
        px__ws_gone(ws, c, err);
}

/* ---- bodies read as they arrive (body.c) --------------------------------------- */

bool px__http_streams_body(px_conn_t *c, const px_http_server_t *s)
{
    /* a handler that waits for its body must be able to release its worker */
    return px__http_server_config(s)->stream_bodies &&
           px_engine_handoff_ms(px_worker_engine(px_conn_worker(c))) > 0;
}

int px__http_answer_streamed(px_conn_t *c, px_http_server_t *s, const px_http_request_t *req,
                             const char *rest, size_t restlen)
{
    const px_http_config_t *cfg = px__http_server_config(s);
    size_t cap = cfg->body_buffer ? cfg->body_buffer : PX_HTTP_BODY_BUFFER;
    http_conn_t *h = px__http_conn_state(c);
    px__http_body_rest_t left;
    px_http_body_t *b;

    b = h ? px__http_body_new(c, req, cfg->limits.max_body, cap, cfg->body_timeout_ms) : NULL;
    if (b == NULL || (restlen > 0 && px_conn_unread(c, rest, restlen) < 0)) {
        if (b != NULL)
            px__http_body_detach(b, c, &left);
        px__http_fail(c, s, 500);
        return -1;
    }
    h->body = b;
    px_conn_set_tap(c, &http_tap);
    /* A client waiting for 100 Continue sends nothing before the app reads. */
    if (!req->expect_continue)
        px_conn_set_deadline(c, cfg->body_timeout_ms);
    px_conn_tap_resume(c); /* what came with the head, then read on */
    px__http_dispatch(c, s, req, NULL, 0, b);
    h = px__http_state_of(c);
    h->body = NULL;
    if (px__http_body_detach(b, c, &left)) {
        if (!px_conn_closing(c))
            px_conn_set_deadline(c, 0);
    } else if (px_conn_closing(c) || left.err || left.unasked) {
        /* A broken body, or a client waiting for a 100 Continue never sent:
         * closed after the answer. A stream's writes may still be posted (or
         * not made yet): closing now would cut them, so it closes at its end. */
        if (h->stream != NULL && !px_conn_closing(c))
            px__http_stream_close_after(h->stream);
        else
            px_conn_close(c);
    } else {
        h->dropping = true; /* the rest is read and dropped as it comes */
        h->drop.chunked = left.chunked;
        h->drop.left = left.left;
        h->drop.dec = left.dec;
    }
    px__http_stream_holds(c, false);
    return px_conn_closing(c) ? -1 : 0;
}
