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

/* ---- what a server may put on the wire ------------------------------------
 *
 * Everything a handler can choose that ends up in a response head is checked
 * here before it is sent: a CR, LF or NUL there would let the handler's input
 * (a redirect target, a cookie) write headers or a body of its own. */

/* Why a response field was refused. */
typedef struct px_http_field_fault {
    px_view_t name;  /* the field's name (as far as it is readable), or a
                        pseudo-name: "status", "reason", "Content-Type" */
    size_t offset;   /* of the refused byte within the field's value (or name) */
    int byte;        /* the refused byte, or -1 when something is missing */
    const char *why; /* static text: what is wrong */
} px_http_field_fault_t;

/* A non-empty token (RFC 9110 section 5.6.2): a valid field name. */
bool px_http_token_ok(const char *s, size_t n);

/* A valid field value or reason phrase: HTAB, SP, VCHAR and obs-text only, so
 * no CR, LF, NUL or other control byte. The offset of the first refused byte
 * in *bad (may be NULL) when it is not. */
bool px_http_field_value_ok(const char *s, size_t n, size_t *bad);

/* Check raw header lines ("Name: value\r\n"..., each line a token name, a
 * colon, optional whitespace and a valid value, ended by CRLF) that a server
 * adds to its own: Content-Length and Transfer-Encoding, which it sets itself,
 * are refused too. 0, or -EINVAL with *fault (may be NULL) saying which line
 * and why. Any thread. */
int px_http_check_header_lines(const char *lines, size_t len, px_http_field_fault_t *fault);

/* Check what a response head is made of: the status (100..999), its reason
 * phrase, the content type (NULL: none) and the extra header lines (as
 * px_http_check_header_lines; NULL or empty: none). 0, or -EINVAL with *fault
 * (may be NULL) filled. Any thread. */
int px_http_check_response_fields(int status, const char *reason, const char *content_type,
                                  const char *extra, size_t extra_len,
                                  px_http_field_fault_t *fault);

#endif
