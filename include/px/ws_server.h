/*
 * WebSocket connections on the HTTP server (RFC 6455 on px/websocket.h): a
 * handler accepts an upgrade request, the connection leaves HTTP and carries
 * frames from then on. Complete messages reach the application on the
 * connection's worker; any thread sends, pings and closes. Ping keep-alive,
 * the close handshake and its timeouts are kept here; a protocol error closes
 * with its code (1002, 1007, 1009) and nothing of the peer's is held past the
 * message limit.
 *
 * Errors: functions return >= 0 or -errno.
 */
#ifndef PX_WS_SERVER_H
#define PX_WS_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "px/http_server.h"
#include "px/websocket.h"

typedef struct px_ws px_ws_t;

/* Defaults of px_ws_config_t's zero fields. */
#define PX_WS_MAX_MESSAGE ((uint64_t)1 << 20)
#define PX_WS_CLOSE_TIMEOUT_MS 5000u

typedef struct px_ws_config {
    uint64_t max_message;      /* payload of a message (all its frames); over it:
                                  1009. 0: PX_WS_MAX_MESSAGE */
    uint64_t max_frame;        /* payload of one frame; 0: max_message */
    unsigned ping_interval_ms; /* ping when this long passed since the last
                                  pong; 0: no pings */
    unsigned ping_timeout_ms;  /* a ping unanswered this long closes with 1011;
                                  0: ping_interval_ms */
    unsigned idle_timeout_ms;  /* nothing received this long: the connection
                                  closes (no close frame); 0: never */
    unsigned close_timeout_ms; /* after our close frame, how long the peer's is
                                  awaited before the TCP close; 0: default */
    const char *subprotocol;   /* the one chosen (Sec-WebSocket-Protocol of the
                                  101), or NULL; copied */
    const char *headers;       /* more header lines of the 101, each "Name:
                                  value\r\n" (the caller checked them), or
                                  NULL; used during px_ws_accept only */
    /* permessage-deflate (px/ws_deflate.h), when the client offers it */
    bool deflate;                 /* take an offer */
    bool deflate_client_context;  /* let the client keep its context: an
                                     inflater per connection for its life */
    unsigned deflate_window_bits; /* the client's window when it lets us
                                     choose: 9..15; 0: 15 */
    int deflate_level;            /* 1..9; 0: zlib's default (6) */
    size_t deflate_min_size;      /* shorter messages are sent uncompressed */
} px_ws_config_t;

/* What the application hears, on the connection's worker. */
typedef struct px_ws_handler {
    /* A complete message (opcode PX_WS_TEXT, valid UTF-8, or PX_WS_BINARY);
     * data valid during the call. Runs inside the connection's handler: it
     * may release the worker (px_worker_release) to block. */
    void (*on_message)(px_ws_t *ws, int opcode, const char *data, size_t len, void *arg);
    /* Once, last: the connection is over. code/reason: the peer's close frame
     * (1005: it had no code), or what we closed with (a protocol error, a
     * timeout, px_ws_close), 1006 when it ended without a close frame. The
     * application's reference stays valid; sends fail from now on. */
    void (*on_close)(px_ws_t *ws, unsigned code, const char *reason, size_t len, void *arg);
} px_ws_handler_t;

/* Answer x (a request px_ws_handshake_check accepted: checked again here)
 * with 101 Switching Protocols and make its connection a WebSocket. *out gets
 * one reference for the caller (px_ws_release); the connection holds its own
 * until it closes. From x's handler, owning the worker. 0; -EINVAL (not a
 * valid upgrade: x unanswered), -EALREADY (x answered), -ENOTCONN, -ENOMEM. */
int px_ws_accept(px_http_exchange_t *x, const px_ws_config_t *cfg, const px_ws_handler_t *h,
                 void *arg, px_ws_t **out);

void px_ws_ref(px_ws_t *ws);
void px_ws_release(px_ws_t *ws);

/* Flags of px_ws_send. */
enum {
    PX_WS_SEND_FORCE = 1u << 0, /* take it even over the high-water mark */
};

/* Send one message (PX_WS_TEXT: valid UTF-8, the caller's promise;
 * PX_WS_BINARY) or a PX_WS_PING / PX_WS_PONG (payload <= 125). Any thread;
 * the frames of one message are never interleaved with others. 0; -EAGAIN
 * over the engine's send_high_water without PX_WS_SEND_FORCE (nothing taken:
 * wait with px_ws_wait_writable); -ENOTCONN once closing or closed; -EINVAL
 * (opcode, control payload too long); -ENOMEM. */
int px_ws_send(px_ws_t *ws, int opcode, const void *data, size_t len, unsigned flags);

/* Block until a send would be taken, the connection is closing, or timeout_ms
 * passes (< 0: no limit). 0, -ENOTCONN, -ETIMEDOUT. Not on the owning worker
 * while it owns it. */
int px_ws_wait_writable(px_ws_t *ws, int timeout_ms);

/* Start the close handshake: a close frame with code (0: none; else a code
 * px_ws_close_code_valid takes, or 1011) and reason (<= 123 bytes of UTF-8),
 * then the peer's close frame is awaited (close_timeout_ms) before the TCP
 * connection closes. Any thread. 0 (also when already closing), -EINVAL (a
 * code that may not be sent), -ENOMEM. */
int px_ws_close(px_ws_t *ws, unsigned code, const char *reason, size_t len);

/* True once the connection is closing or closed (no more sends). */
bool px_ws_closed(const px_ws_t *ws);

/* True when permessage-deflate was agreed at accept. */
bool px_ws_deflating(const px_ws_t *ws);

/* The subprotocol chosen at accept, or NULL. */
const char *px_ws_subprotocol(const px_ws_t *ws);

/* The connection's handle (px/handle.h), borrowed for ws's life. */
struct px_handle *px_ws_handle(const px_ws_t *ws);

#endif
