/*
 * permessage-deflate (RFC 7692) for the WebSocket server: the client's
 * offers read and one answered, messages inflated within a limit, messages
 * deflated.
 *
 * Memory is kept off idle connections: the server always answers
 * server_no_context_takeover and compresses each message afresh with a
 * deflate stream of the sending thread; a connection holds an inflater only
 * while a compressed message is arriving, unless the client is let keep its
 * context (then one inflater of 2^window_bits for the connection's life).
 * Idle inflaters wait one per thread for the next message.
 *
 * Errors: functions return >= 0 or -errno.
 */
#ifndef PX_WS_DEFLATE_H
#define PX_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "px/http_parser.h"

/* Room for the answer px_ws_deflate_negotiate writes (its longest, every
 * parameter with two digits, is 128 bytes and its NUL). */
#define PX_WS_DEFLATE_ANSWER 144

/* What the server accepts of the client's offers. */
typedef struct px_ws_deflate_policy {
    bool client_context;  /* let the client keep its context between
                             messages; false: client_no_context_takeover */
    unsigned window_bits; /* the client's window when the offer lets the
                             server choose it: 9..15, 0: 15 */
} px_ws_deflate_policy_t;

/* What was agreed. */
typedef struct px_ws_deflate_params {
    bool client_context;  /* the client keeps its context: so must our inflater */
    uint8_t server_bits;  /* our compressor's window (9..15) */
    uint8_t inflate_bits; /* our inflater's window (9..15) */
} px_ws_deflate_params_t;

/* Read req's Sec-WebSocket-Extensions headers and take the first
 * permessage-deflate offer whose parameters are valid and possible (an
 * offer with an unknown, repeated or out-of-range parameter, or with
 * server_max_window_bits=8, which zlib cannot make, is declined as section
 * 7.1 says). 1: taken, *out filled and answer holds the header's value; 0:
 * none taken (the connection runs uncompressed). */
int px_ws_deflate_negotiate(const px_http_request_t *req, const px_ws_deflate_policy_t *policy,
                            px_ws_deflate_params_t *out, char answer[PX_WS_DEFLATE_ANSWER]);

typedef struct px_ws_inflater px_ws_inflater_t;

/* An inflater of the given window (9..15): this thread's idle one when it
 * has one, else a new one. NULL: out of memory. */
px_ws_inflater_t *px_ws_inflater_get(unsigned bits);

/* Done with inf (NULL: nothing): it becomes this thread's idle inflater,
 * or is freed when the thread has one. */
void px_ws_inflater_put(px_ws_inflater_t *inf);

/* Free inf now (NULL: nothing). */
void px_ws_inflater_free(px_ws_inflater_t *inf);

/* Bytes an inflater of that window holds (for memory accounting). */
size_t px_ws_inflater_size(unsigned bits);

/* Where inflated bytes go, in pieces of at most 16 KiB: < 0 stops
 * inflating and is returned (a sink enforcing a message limit stops a
 * compression bomb at its limit, not at its size). */
typedef int (*px_ws_sink_fn)(void *arg, const char *data, size_t len);

/* Inflate the next len compressed bytes of a message; fin: its end (the
 * empty stored block section 7.2.2 removed is put back). The inflater
 * stays ready for the next message: reset unless it keeps the context.
 * 0; -EPROTO (not deflate data, or data after the message's end); a sink's
 * error; -ENOMEM. */
int px_ws_inflate(px_ws_inflater_t *inf, bool keep_context, const void *in, size_t len, bool fin,
                  px_ws_sink_fn sink, void *arg);

/* Compress the message in[0..len) with this thread's compressor of the
 * given window (9..15) and level (1..9; 0: zlib's default), ready to send
 * (its end's empty block removed). *out points into this thread's buffer,
 * valid until its next call. The same message again (up to 64 KiB; a
 * broadcast to many connections from one thread) is not compressed again.
 * The length; -ENOMEM. */
ssize_t px_ws_deflate(unsigned bits, int level, const void *in, size_t len, const uint8_t **out);

#endif
