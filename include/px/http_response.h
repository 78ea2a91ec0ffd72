/*
 * Strict HTTP/1.0 and HTTP/1.1 response head parsing, for clients (the load
 * generator reads every response with it).
 *
 * Same contract as px_http_parse_request: no allocation, no copying, results are
 * views into the caller's buffer, nothing is read past buf + len, any thread may
 * call it on data it owns. Whatever two implementations could frame differently
 * (conflicting lengths, Content-Length with Transfer-Encoding, bare LF, obs-fold)
 * is an error: a client that guesses can desynchronise from the server and
 * count the wrong bytes as the next response.
 */
#ifndef PX_HTTP_RESPONSE_H
#define PX_HTTP_RESPONSE_H

#include "px/common.h"
#include "px/http_parser.h"

typedef struct px_http_response {
    int minor_version;         /* 0 or 1 */
    int status;                /* 100..999 */
    px_view_t reason;          /* may be empty */
    px_http_header_t *headers; /* caller's array, in response order, or NULL */
    size_t num_headers;        /* in: capacity of headers; out: headers found */
    int64_t content_length;    /* -1 when absent */
    bool chunked;              /* Transfer-Encoding whose last coding is chunked */
    bool transfer_encoding;    /* a Transfer-Encoding header was present */
    bool keep_alive;           /* 1.1 unless "close"; 1.0 only with "keep-alive" */
} px_http_response_t;

/* Parse the response head at the start of buf[0..len).
 *
 * Before the call set res->headers and res->num_headers (its capacity); with
 * headers NULL nothing is stored and any number of headers is accepted.
 *
 * Returns the length of the head (> 0, up to and including the empty line's
 * CRLF) when it is complete and valid; the body follows. Returns
 * PX_HTTP_INCOMPLETE when buf is a valid prefix of a head shorter than max_head
 * bytes: call again with the same start and more bytes. Returns PX_HTTP_ERROR
 * for a malformed head, a head longer than max_head, or more headers than the
 * capacity. Other fields mean something only on success. */
int px_http_parse_response(const char *buf, size_t len, px_http_response_t *res, size_t max_head);

/* How the body of a response is delimited (RFC 9112 section 6.3). */
typedef enum px_http_body_kind {
    PX_HTTP_BODY_NONE,        /* no body: HEAD request, 1xx, 204, 304 */
    PX_HTTP_BODY_LENGTH,      /* content_length bytes */
    PX_HTTP_BODY_CHUNKED,     /* decode with px_http_chunked_decode */
    PX_HTTP_BODY_UNTIL_CLOSE, /* everything until the server closes */
} px_http_body_kind_t;

/* The framing of the body of res, a response to a HEAD request or not. */
px_http_body_kind_t px_http_response_body(const px_http_response_t *res, bool head_request);

#endif
