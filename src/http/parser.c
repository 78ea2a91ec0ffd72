/*
 * Strict HTTP/1.x request head parser (chunked bodies: chunked.c).
 *
 * The head is parsed in one left-to-right pass in which every decision depends
 * only on bytes already seen, and every scan stops at the first byte a limit
 * forbids. That is what makes incremental parsing exact: a prefix of a request
 * gives either PX_HTTP_INCOMPLETE or the very result the whole request gives, and
 * a limit or syntax violation is reported as soon as its byte arrives.
 */
#include "px/http_parser.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "grammar.h"

#define EMPTY_LINES_MAX 8 /* CRLFs skipped before a request line */

void px_http_limits_default(px_http_limits_t *l)
{
    l->max_request_line = PX_HTTP_MAX_REQUEST_LINE;
    l->max_header_bytes = PX_HTTP_MAX_HEADER_BYTES;
    l->max_headers = PX_HTTP_MAX_HEADERS;
    l->max_body = PX_HTTP_MAX_BODY;
}

static px_view_t view(const unsigned char *b, const unsigned char *e)
{
    return (px_view_t){(const char *)b, (size_t)(e - b)};
}

/* Semantic state gathered across header lines. */
typedef struct head_state {
    bool cl_seen, te_seen, te_chunked, conn_keep_alive, absolute, connect;
} head_state_t;

/* uri-host [ ":" port ] (RFC 3986 section 3.2.2, RFC 9112 section 3.2): an
 * IP-literal in brackets (IPv6, IPvFuture, a zone), or reg-name / IPv4address
 * bytes; then an optional port of digits. need_host: an empty host is invalid
 * (an absolute-form target's authority); need_port: the port is required
 * (authority-form). Brackets anywhere else and a second ':' are refused, so
 * every recipient splits host and port the same way. */
static bool valid_authority(const unsigned char *a, const unsigned char *e, bool need_host,
                            bool need_port)
{
    const unsigned char *p = a;
    if (p < e && *p == '[') {
        for (p++; p < e && *p != ']'; p++)
            if (!(http_ctype[*p] & C_HOST) || *p == '[')
                return false;
        if (p == e || p == a + 1)
            return false;
        p++;
    } else {
        while (p < e && (http_ctype[*p] & C_HOST) && *p != ':' && *p != '[' && *p != ']')
            p++;
    }
    if (need_host && p == a)
        return false;
    if (p == e)
        return !need_port;
    if (*p != ':' || (need_port && p + 1 == e))
        return false;
    for (p++; p < e; p++)
        if ((unsigned)*p - '0' > 9)
            return false;
    return true;
}

static int check_content_length(px_http_request_t *req, head_state_t *hs, const unsigned char *v,
                                const unsigned char *ve, uint64_t max_body)
{
    if (hs->cl_seen || hs->te_seen || v == ve)
        return 400;
    hs->cl_seen = true;
    uint64_t n = 0;
    for (; v < ve; v++) {
        unsigned d = (unsigned)*v - '0';
        if (d > 9 || n > ((uint64_t)INT64_MAX - d) / 10)
            return 400;
        n = n * 10 + d;
    }
    if (n > max_body)
        return 413;
    req->content_length = (int64_t)n;
    return 0;
}

static int check_transfer_encoding(px_http_request_t *req, head_state_t *hs, const unsigned char *v,
                                   const unsigned char *ve)
{
    const char *p = (const char *)v;
    px_view_t tok;
    int r, verdict = 0;
    if (req->minor_version == 0 || hs->cl_seen || v == ve)
        return 400;
    hs->te_seen = true;
    while ((r = next_list_token(&p, (const char *)ve, &tok)) > 0) {
        /* After "chunked" nothing may follow (400); a coding we do not decode
         * is 501, unless chunked came first, which already makes it a 400. */
        if (hs->te_chunked)
            verdict = verdict ? verdict : 400;
        else if (EQ_LOWER(tok.base, tok.len, "chunked"))
            hs->te_chunked = true;
        else
            verdict = verdict ? verdict : 501;
    }
    return r < 0 ? 400 : verdict;
}

static int check_connection(px_http_request_t *req, head_state_t *hs, const unsigned char *v,
                            const unsigned char *ve)
{
    const char *p = (const char *)v;
    px_view_t tok;
    int r;
    while ((r = next_list_token(&p, (const char *)ve, &tok)) > 0) {
        if (EQ_LOWER(tok.base, tok.len, "close"))
            req->connection_close = true;
        else if (EQ_LOWER(tok.base, tok.len, "keep-alive"))
            hs->conn_keep_alive = true;
        else if (EQ_LOWER(tok.base, tok.len, "upgrade"))
            req->connection_upgrade = true;
    }
    return r < 0 ? 400 : 0;
}

/* The headers the parser itself must understand; 0 or a status. */
static int check_header(px_http_request_t *req, head_state_t *hs, const unsigned char *n,
                        size_t nlen, const unsigned char *v, const unsigned char *ve,
                        const px_http_limits_t *lim)
{
    switch (nlen) {
    case 4:
        if (EQ_LOWER(n, nlen, "host")) {
            if (req->has_host)
                return 400;
            req->has_host = true;
            /* an invalid Host value is a 400 (RFC 9112 section 3.2) */
            if (!valid_authority(v, ve, false, false))
                return 400;
            if (!hs->absolute)
                req->host = view(v, ve);
        }
        break;
    case 6:
        /* HTTP/1.0 has no Expect: ignore it there (RFC 9110 section 10.1.1) */
        if (req->minor_version == 1 && EQ_LOWER(n, nlen, "expect")) {
            if (!EQ_LOWER(v, (size_t)(ve - v), "100-continue"))
                return 417;
            req->expect_continue = true;
        }
        break;
    case 10:
        if (EQ_LOWER(n, nlen, "connection"))
            return check_connection(req, hs, v, ve);
        break;
    case 14:
        if (EQ_LOWER(n, nlen, "content-length"))
            return check_content_length(req, hs, v, ve, lim->max_body);
        break;
    case 17:
        if (EQ_LOWER(n, nlen, "transfer-encoding"))
            return check_transfer_encoding(req, hs, v, ve);
        break;
    default: break;
    }
    return 0;
}

/* First byte in [p, end) that is not a tchar; unrolled for header names. */
static inline const unsigned char *scan_token(const unsigned char *p, const unsigned char *end)
{
    for (; end - p >= 4; p += 4) {
        if (!(http_ctype[p[0]] & C_TOKEN))
            return p;
        if (!(http_ctype[p[1]] & C_TOKEN))
            return p + 1;
        if (!(http_ctype[p[2]] & C_TOKEN))
            return p + 2;
        if (!(http_ctype[p[3]] & C_TOKEN))
            return p + 3;
    }
    while (p < end && (http_ctype[*p] & C_TOKEN))
        p++;
    return p;
}

/* First byte in [p, end) that is not a field-value byte. Values are most of a
 * head, so eight bytes are checked at a time for anything below SP or DEL; the
 * byte loop then finds the exact stop (which may be a harmless HTAB). */
static inline const unsigned char *scan_value(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t x, y;
        memcpy(&x, p, 8);
        y = x ^ (ones * 0x7f);
        if (((x - ones * 0x20) & ~x & highs) | ((y - ones) & ~y & highs))
            break;
        p += 8;
    }
    while (p < end && (http_ctype[*p] & C_VALUE))
        p++;
    return p;
}

/* The same for request-target bytes: stop at anything up to SP, DEL and above,
 * or '#'. */
static inline const unsigned char *scan_target(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    while (end - p >= 8) {
        uint64_t x, y, z;
        memcpy(&x, p, 8);
        y = x ^ (ones * 0x7f);
        z = x ^ (ones * '#');
        if ((((x - ones * 0x21) & ~x) | x | ((y - ones) & ~y) | ((z - ones) & ~z)) & highs)
            break;
        p += 8;
    }
    while (p < end && (http_ctype[*p] & C_TARGET))
        p++;
    return p;
}

static const char root_path[] = "/";

/* Split a complete target [t, te) into path and query; 0 or 400. */
static int split_target(px_http_request_t *req, head_state_t *hs, const unsigned char *t,
                        const unsigned char *te)
{
    const unsigned char *p = t, *q;
    if (req->method.len == 7 && memcmp(req->method.base, "CONNECT", 7) == 0) {
        /* authority-form (RFC 9112 section 3.2.3); refused later with 501 */
        if (!valid_authority(t, te, true, true))
            return 400;
        hs->connect = true;
        return 0;
    }
    if (*t == '*') {
        if (te - t != 1 || !(req->method.len == 7 && memcmp(req->method.base, "OPTIONS", 7) == 0))
            return 400;
        req->path = view(t, te);
        req->query = view(te, te);
        return 0;
    }
    if (*t != '/') {
        /* absolute-form: http or https scheme, an authority without userinfo */
        size_t n = (size_t)(te - t);
        if (n > 7 && eq_lower(t, 7, "http://", 7))
            p = t + 7;
        else if (n > 8 && eq_lower(t, 8, "https://", 8))
            p = t + 8;
        else
            return 400;
        const unsigned char *a = p;
        while (p < te && *p != '/' && *p != '?')
            p++;
        if (!valid_authority(a, p, true, false))
            return 400;
        req->host = view(a, p);
        hs->absolute = true;
        if (p == te || *p == '?') {
            req->path = (px_view_t){root_path, 1};
            req->query = p == te ? view(te, te) : view(p + 1, te);
            return 0;
        }
    }
    q = memchr(p, '?', (size_t)(te - p));
    if (q == NULL) {
        req->path = view(p, te);
        req->query = view(te, te);
    } else {
        req->path = view(p, q);
        req->query = view(q + 1, te);
    }
    return 0;
}

/* The request line ran into lend (p == lend): p may be the end of the input, the
 * head limit, or the request-line limit where only its CR may still stand. */
static int line_stop(const unsigned char *buf, const unsigned char *p, size_t len, size_t max_head)
{
    size_t at = (size_t)(p - buf);
    if (at == len)
        return 0;
    if (at >= max_head)
        return 431;
    return *p == '\r' ? 400 : 414;
}

int px_http_parse_request(const char *buf_, size_t len, px_http_request_t *req,
                          const px_http_limits_t *lim)
{
    px_http_limits_t defaults;
    if (lim == NULL) {
        px_http_limits_default(&defaults);
        lim = &defaults;
    }
    const unsigned char *buf = (const unsigned char *)buf_;
    size_t max_head = PX_MIN(lim->max_header_bytes, (size_t)INT_MAX);
    /* Head bytes may lie in [buf, end); request-line bytes before its CR in
     * [buf, lend). Reaching either bound with input left means a limit. */
    const unsigned char *end = buf + PX_MIN(len, max_head);
    const unsigned char *lend;
    px_http_header_t *hdrs = req->headers;
    size_t max_hdrs = hdrs ? PX_MIN(req->num_headers, lim->max_headers) : lim->max_headers;
    size_t nh = 0;
    head_state_t hs = {0};
    const unsigned char *p = buf, *t, *line;
    int st, empty_lines = 0;

    req->method = req->target = req->path = req->query = (px_view_t){NULL, 0};
    req->minor_version = -1;
    req->num_headers = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = false;
    req->has_host = req->connection_close = req->connection_upgrade = false;
    req->host = (px_view_t){NULL, 0};
    req->status = 0;

#define RL_NEED(q)                                   \
    do {                                             \
        if (PX_UNLIKELY((q) >= lend)) {              \
            st = line_stop(buf, (q), len, max_head); \
            goto stop;                               \
        }                                            \
    } while (0)
#define HEAD_NEED(q)                                 \
    do {                                             \
        if (PX_UNLIKELY((q) >= end)) {               \
            st = (size_t)((q)-buf) == len ? 0 : 431; \
            goto stop;                               \
        }                                            \
    } while (0)
#define FAIL(code)   \
    do {             \
        st = (code); \
        goto stop;   \
    } while (0)

    /* A few empty lines (CRLF) before the request line are skipped, as RFC 9112
     * section 2.2 asks; a bare LF or more of them than that is a 400. */
    while (p < end && *p == '\r') {
        if (++empty_lines > EMPTY_LINES_MAX)
            FAIL(400);
        p++;
        HEAD_NEED(p);
        if (*p != '\n')
            FAIL(400);
        p++;
    }
    line = p;
    lend = p + PX_MIN((size_t)(end - p), lim->max_request_line);

    /* method SP: a token */
    while (p < lend && (http_ctype[*p] & C_TOKEN))
        p++;
    RL_NEED(p);
    if (*p != ' ' || p == line)
        FAIL(400);
    req->method = view(line, p);

    /* request-target SP */
    t = ++p;
    p = scan_target(p, lend);
    RL_NEED(p);
    if (*p != ' ' || p == t)
        FAIL(400);
    req->target = view(t, p);
    if ((st = split_target(req, &hs, t, p)) != 0)
        goto stop;
    p++;

    /* HTTP-version CRLF */
    for (const char *v = "HTTP/"; *v; v++, p++) {
        RL_NEED(p);
        if (*p != (unsigned char)*v)
            FAIL(400);
    }
    RL_NEED(p);
    if ((unsigned)*p - '0' > 9)
        FAIL(400);
    int major = *p++ - '0';
    RL_NEED(p);
    if (*p != '.')
        FAIL(400);
    p++;
    RL_NEED(p);
    if ((unsigned)*p - '0' > 9)
        FAIL(400);
    int minor = *p++ - '0';
    HEAD_NEED(p); /* the CR may stand right at the request-line limit */
    if (*p != '\r')
        FAIL(400);
    p++;
    HEAD_NEED(p);
    if (*p != '\n')
        FAIL(400);
    p++;
    if (major != 1 || minor > 1)
        FAIL(505);
    /* No tunnels here: CONNECT is a method this server does not implement
     * (RFC 9110 section 9.1). */
    if (hs.connect)
        FAIL(501);
    req->minor_version = minor;

    /* header fields, then the empty line */
    for (;;) {
        const unsigned char *n, *ne, *v, *ve;
        HEAD_NEED(p);
        if (*p == '\r') {
            p++;
            HEAD_NEED(p);
            if (*p != '\n')
                FAIL(400);
            p++;
            break;
        }
        if (nh == max_hdrs)
            FAIL(431);
        /* A leading SP or HTAB (obs-fold), a missing name, whitespace before
         * the colon: all stop this loop on something other than ':'. */
        n = p;
        p = scan_token(p, end);
        HEAD_NEED(p);
        if (*p != ':' || p == n)
            FAIL(400);
        ne = p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        v = p;
        p = scan_value(p, end);
        HEAD_NEED(p);
        if (*p != '\r') /* bare LF, a control byte or DEL */
            FAIL(400);
        ve = p++;
        HEAD_NEED(p);
        if (*p != '\n')
            FAIL(400);
        p++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (hdrs != NULL) {
            hdrs[nh].name = view(n, ne);
            hdrs[nh].value = view(v, ve);
        }
        nh++;
        if ((st = check_header(req, &hs, n, (size_t)(ne - n), v, ve, lim)) != 0)
            goto stop;
    }

    if (minor == 1 && !req->has_host)
        FAIL(400);
    req->num_headers = nh;
    req->chunked = hs.te_chunked;
    req->keep_alive = !req->connection_close && (minor == 1 || hs.conn_keep_alive);
    return (int)(p - buf);

stop:
    req->num_headers = nh;
    if (st == 0)
        return PX_HTTP_INCOMPLETE;
    req->status = st;
    return PX_HTTP_ERROR;
#undef RL_NEED
#undef HEAD_NEED
#undef FAIL
}
