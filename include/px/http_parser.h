/*
 * Strict HTTP/1.0 and HTTP/1.1 request parsing: the request head and chunked
 * request bodies (request paths: px/http_path.h).
 *
 * Nothing here allocates or copies: results are views into the caller's buffer,
 * valid as long as that buffer is. Every function is pure over its arguments, so
 * any thread may call it on data it owns. Input is never read past buf + len.
 *
 * Strictness is the defence against request smuggling: whatever a lenient
 * front-end could read differently from us is rejected, with the status code to
 * answer before closing the connection.
 */
#ifndef PX_HTTP_PARSER_H
#define PX_HTTP_PARSER_H

#include "px/common.h"

#define PX_HTTP_ERROR (-1)      /* malformed or over a limit: see ->status */
#define PX_HTTP_INCOMPLETE (-2) /* call again once more bytes have arrived */

typedef struct px_http_header {
    px_view_t name, value; /* value without surrounding spaces or tabs */
} px_http_header_t;

typedef struct px_http_limits {
    size_t max_request_line; /* bytes before its CRLF; over it: 414 */
    size_t max_header_bytes; /* whole head with request line and both final
                                CRLFs (capped at INT_MAX); over it: 431 */
    size_t max_headers;      /* header lines; over it: 431 */
    uint64_t max_body;       /* Content-Length or decoded chunked body (whose raw
                                bytes px_http_chunked_raw_max bounds); 413 */
} px_http_limits_t;

/* Defaults of px_http_limits_t (DESIGN section 6). */
#define PX_HTTP_MAX_REQUEST_LINE 8192
#define PX_HTTP_MAX_HEADER_BYTES 16384
#define PX_HTTP_MAX_HEADERS 100
#define PX_HTTP_MAX_BODY (1024 * 1024)

/* Fill l with the defaults above. */
void px_http_limits_default(px_http_limits_t *l);

typedef struct px_http_request {
    px_view_t method;          /* a token; compared case-sensitively by callers */
    px_view_t target;          /* as sent: "/p?q", "*" or "http://host/p?q" */
    px_view_t path;            /* target up to its first '?' (for absolute-form, from
                                  the path on; a static "/" when it has none) */
    px_view_t query;           /* after the first '?', without it; empty if none */
    int minor_version;         /* 0 or 1 */
    px_http_header_t *headers; /* caller's array, in request order */
    size_t num_headers;        /* in: capacity of headers; out: headers found */
    int64_t content_length;    /* -1 when absent (always -1 when chunked) */
    bool chunked;              /* Transfer-Encoding: chunked; decode the body with
                                  px_http_chunked_decode */
    bool keep_alive;           /* 1.1 unless "close"; 1.0 only with "keep-alive" */
    bool expect_continue;      /* Expect: 100-continue (1.1 only; other values: 417) */
    bool has_host;             /* a Host header was present */
    bool connection_close;     /* Connection lists "close" */
    bool connection_upgrade;   /* Connection lists "upgrade" */
    px_view_t host;            /* the Host header value, or for an absolute-form
                                  target its authority (which then takes precedence,
                                  as RFC 9112 section 3.2.2 requires); NULL base and
                                  length 0 when there is neither */
    int status;                /* 0, or on PX_HTTP_ERROR the status to answer: 400,
                                  413, 414, 417, 431, 501 (also CONNECT: no
                                  tunnels here) or 505 */
} px_http_request_t;

/* Parse the request head at the start of buf[0..len).
 *
 * Up to 8 empty lines (CRLF) before the request line are skipped (RFC 9112
 * section 2.2) and belong to the head; a 9th is a 400. Targets: origin-form,
 * absolute-form (http or https, an authority with an optional port, IP literals
 * in brackets), "*" for OPTIONS only; CONNECT with a valid authority-form target
 * is a 501. Host values must be a valid host with an optional port.
 *
 * Before the call set req->headers and req->num_headers (its capacity; with
 * headers NULL nothing is stored). Every other field is output.
 *
 * Returns the length of the head (> 0, up to and including the CRLF of the empty
 * line) when it is complete and valid; the body and any pipelined request follow
 * at buf + that length. Returns PX_HTTP_INCOMPLETE when buf is a valid prefix of
 * a head: call again with the same start and more bytes (the result of a longer
 * buffer is either PX_HTTP_INCOMPLETE again or the result the whole head gives).
 * Returns PX_HTTP_ERROR with req->status set as soon as the bytes seen are enough
 * to know the head is malformed or over a limit; more headers than the smaller of
 * lim->max_headers and the capacity count as over a limit (431).
 *
 * Fields other than status and num_headers mean something only on success.
 * lim may be NULL for the defaults. Work is O(len) per call, len bounded by the
 * head limit, so a server parses once after each receive. */
int px_http_parse_request(const char *buf, size_t len, px_http_request_t *req,
                          const px_http_limits_t *lim);

/* Incremental, in-place decoder of a chunked request body. Fields starting with
 * '_' are private. */
typedef struct px_http_chunked {
    uint64_t _size; /* chunk size being read, or data bytes left */
    uint32_t _state;
    uint32_t _count;   /* hex digits of the chunk size read */
    uint32_t _line;    /* bytes of a chunk line's extensions, or of all trailers */
    int status;        /* 0, or on PX_HTTP_ERROR 400 or 413 */
    uint64_t total;    /* decoded body bytes so far */
    uint64_t max_body; /* over it: 413 */
    uint64_t raw;      /* bytes read so far as sent, framing and extensions
                          included, trailers not; over
                          px_http_chunked_raw_max(max_body): 413 */
} px_http_chunked_t;

/* What framing may add to a chunked body's limit: max_body / 16 plus this. */
#define PX_HTTP_CHUNKED_SLACK 4096

/* The most bytes a chunked body of at most max_body decoded bytes may take as
 * sent (sizes, extensions, data, CRLFs; trailers have their own limit):
 * max_body plus PX_HTTP_CHUNKED_SLACK plus a sixteenth of max_body, which
 * chunks of 128 bytes or more never need. Saturates at UINT64_MAX. */
uint64_t px_http_chunked_raw_max(uint64_t max_body);

/* Prepare d to decode one chunked body of at most max_body bytes. */
void px_http_chunked_init(px_http_chunked_t *d, uint64_t max_body);

/* Decode the next received bytes buf[0..*len) in place (*len <= INT_MAX).
 *
 * On return buf[0..*len) holds the body bytes decoded by this call (*len is
 * updated on every return value except PX_HTTP_ERROR); take them before the next
 * call, whose input starts with the next received bytes.
 *
 * Returns PX_HTTP_INCOMPLETE when all input was consumed and the body goes on.
 * Returns n >= 0 when the body ended, trailers included: the n bytes after it,
 * which belong to the next request, are the LAST n bytes of the input, still at
 * buf[old_len - n .. old_len) where old_len is *len before the call (they are
 * not moved; the decoded bytes before them never overlap them).
 * Chunk extensions are checked and ignored; whitespace (BWS) is accepted before
 * and after ';' and around '=' (RFC 9112 section 7.1.1), not before the CRLF.
 * Returns PX_HTTP_ERROR with d->status 400 (malformed; also a chunk line whose
 * extensions take over 1 KiB, or trailers over 16 KiB) or 413 (total over
 * d->max_body, or raw over px_http_chunked_raw_max); it stays in error.
 * Once the body has ended, further calls return *len (all input is leftover). */
int px_http_chunked_decode(px_http_chunked_t *d, char *buf, size_t *len);

#endif
