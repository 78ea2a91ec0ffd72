/*
 * Strict HTTP/1.x response head parser.
 *
 * The head is read line by line; a line is judged only once its CRLF has
 * arrived, so a prefix of a head is either PX_HTTP_INCOMPLETE or the verdict the
 * whole head gives. Responses are small and parsed once per receive, so clarity
 * wins over the word-at-a-time scans of the request parser.
 */
#include "px/http_response.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "grammar.h"

typedef struct head_state {
    bool cl_seen, conn_close, conn_keep_alive;
} head_state_t;

static int check_content_length(px_http_response_t *res, head_state_t *hs, const char *v,
                                const char *ve)
{
    uint64_t n = 0;

    if (hs->cl_seen || res->transfer_encoding || v == ve)
        return -1;
    hs->cl_seen = true;
    for (; v < ve; v++) {
        unsigned d = (unsigned)(unsigned char)*v - '0';
        if (d > 9 || n > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    res->content_length = (int64_t)n;
    return 0;
}

static int check_transfer_encoding(px_http_response_t *res, head_state_t *hs, const char *v,
                                   const char *ve)
{
    px_view_t tok;
    int r;

    /* HTTP/1.0 has no transfer codings; with a length it is ambiguous. */
    if (res->minor_version == 0 || hs->cl_seen || v == ve)
        return -1;
    res->transfer_encoding = true;
    while ((r = next_list_token(&v, ve, &tok)) > 0) {
        if (res->chunked)
            return -1; /* chunked must be the final coding, applied once */
        res->chunked = EQ_LOWER(tok.base, tok.len, "chunked");
    }
    return r;
}

static int check_connection(head_state_t *hs, const char *v, const char *ve)
{
    px_view_t tok;
    int r;

    while ((r = next_list_token(&v, ve, &tok)) > 0) {
        if (EQ_LOWER(tok.base, tok.len, "close"))
            hs->conn_close = true;
        else if (EQ_LOWER(tok.base, tok.len, "keep-alive"))
            hs->conn_keep_alive = true;
    }
    return r;
}

static int check_header(px_http_response_t *res, head_state_t *hs, px_view_t name, const char *v,
                        const char *ve)
{
    if (EQ_LOWER(name.base, name.len, "content-length"))
        return check_content_length(res, hs, v, ve);
    if (EQ_LOWER(name.base, name.len, "transfer-encoding"))
        return check_transfer_encoding(res, hs, v, ve);
    if (EQ_LOWER(name.base, name.len, "connection"))
        return check_connection(hs, v, ve);
    return 0;
}

/* "HTTP/1.x SP 3DIGIT [SP reason]" without its CRLF. A missing SP before an
 * empty reason is accepted: common in the wild and unambiguous. */
static int parse_status_line(px_http_response_t *res, const char *p, const char *e)
{
    size_t n = (size_t)(e - p);

    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    res->minor_version = p[7] - '0';
    if (p[9] < '1' || p[9] > '9' || (unsigned)(p[10] - '0') > 9 || (unsigned)(p[11] - '0') > 9)
        return -1;
    res->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    p += 12;
    if (p < e && *p++ != ' ')
        return -1;
    res->reason = (px_view_t){p, (size_t)(e - p)};
    for (; p < e; p++)
        if (!is_field_byte((unsigned char)*p))
            return -1;
    return 0;
}

/* "name: OWS value OWS" without its CRLF. */
static int parse_field(px_http_response_t *res, head_state_t *hs, size_t *nh, const char *p,
                       const char *e)
{
    const char *n = p, *v, *ve;
    px_view_t name;

    while (p < e && is_tchar((unsigned char)*p))
        p++;
    /* obs-fold, an empty name or whitespace before the colon stop on non-':' */
    if (p == n || p == e || *p != ':')
        return -1;
    name = (px_view_t){n, (size_t)(p - n)};
    p++;
    while (p < e && is_ows((unsigned char)*p))
        p++;
    v = p;
    for (ve = v; p < e; p++) {
        if (!is_field_byte((unsigned char)*p))
            return -1;
        if (!is_ows((unsigned char)*p))
            ve = p + 1;
    }
    if (res->headers != NULL) {
        if (*nh == res->num_headers)
            return -1;
        res->headers[*nh] = (px_http_header_t){name, {v, (size_t)(ve - v)}};
    }
    (*nh)++;
    return check_header(res, hs, name, v, ve);
}

int px_http_parse_response(const char *buf, size_t len, px_http_response_t *res, size_t max_head)
{
    const char *end, *p = buf;
    head_state_t hs = {0};
    size_t nh = 0;
    bool first = true;

    res->minor_version = -1;
    res->status = 0;
    res->reason = (px_view_t){NULL, 0};
    res->content_length = -1;
    res->chunked = res->transfer_encoding = res->keep_alive = false;
    max_head = PX_MIN(max_head, (size_t)INT_MAX);
    end = buf + PX_MIN(len, max_head);

    for (;;) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        const char *lf = memchr(p, '\n', (size_t)((cr ? cr : end) - p));

        if (lf != NULL)
            return PX_HTTP_ERROR; /* bare LF */
        if (cr == NULL || cr + 1 == end)
            return len >= max_head ? PX_HTTP_ERROR : PX_HTTP_INCOMPLETE;
        if (cr[1] != '\n')
            return PX_HTTP_ERROR; /* bare CR */
        if (first) {
            if (parse_status_line(res, p, cr) < 0)
                return PX_HTTP_ERROR;
            first = false;
        } else if (cr == p) {
            p = cr + 2;
            break;
        } else if (parse_field(res, &hs, &nh, p, cr) < 0) {
            return PX_HTTP_ERROR;
        }
        p = cr + 2;
    }
    res->num_headers = nh;
    res->keep_alive = res->minor_version == 1 ? !hs.conn_close
                                              : hs.conn_keep_alive && !hs.conn_close;
    return (int)(p - buf);
}

px_http_body_kind_t px_http_response_body(const px_http_response_t *res, bool head_request)
{
    if (head_request || res->status < 200 || res->status == 204 || res->status == 304)
        return PX_HTTP_BODY_NONE;
    if (res->chunked)
        return PX_HTTP_BODY_CHUNKED;
    if (res->transfer_encoding)
        return PX_HTTP_BODY_UNTIL_CLOSE; /* a coding we cannot frame ends at close */
    if (res->content_length >= 0)
        return PX_HTTP_BODY_LENGTH;
    return PX_HTTP_BODY_UNTIL_CLOSE;
}

/* ---- response fields a server sends ---------------------------------------- */

bool px_http_token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

bool px_http_field_value_ok(const char *s, size_t n, size_t *bad)
{
    for (size_t i = 0; i < n; i++)
        if (!is_field_byte((unsigned char)s[i])) {
            if (bad)
                *bad = i;
            return false;
        }
    return true;
}

static int fault_at(px_http_field_fault_t *f, px_view_t name, size_t offset, int byte,
                    const char *why)
{
    if (f)
        *f = (px_http_field_fault_t){name, offset, byte, why};
    return -EINVAL;
}

/* why for a byte refused in a value */
static const char *value_why(unsigned char c)
{
    if (c == '\r' || c == '\n')
        return "CR or LF in the value";
    if (c == 0)
        return "NUL in the value";
    return "control byte in the value";
}

int px_http_check_header_lines(const char *lines, size_t len, px_http_field_fault_t *fault)
{
    const char *p = lines, *e = lines + len;

    while (p < e) {
        const char *n = p, *v, *eol;
        px_view_t name;
        size_t bad;

        while (p < e && is_tchar((unsigned char)*p))
            p++;
        name = (px_view_t){n, (size_t)(p - n)};
        if (p == n)
            return fault_at(fault, name, 0, p < e ? (unsigned char)*p : -1,
                            "empty name or a byte not allowed in a name");
        if (p == e || *p != ':')
            return fault_at(fault, name, (size_t)(p - n), p < e ? (unsigned char)*p : -1,
                            "a byte not allowed in a name, or no colon");
        /* The server frames the body itself: a second length or coding would
         * let a client or a proxy read another body than the one sent. */
        if (EQ_LOWER(name.base, name.len, "content-length") ||
            EQ_LOWER(name.base, name.len, "transfer-encoding"))
            return fault_at(fault, name, 0, -1, "the server sets the body's framing itself");
        v = ++p;
        /* The value ends at the first byte that may not be in one; it must be
         * the CR of the line's CRLF. */
        eol = px_http_field_value_ok(v, (size_t)(e - v), &bad) ? e : v + bad;
        if (eol == e || *eol != '\r' || eol + 1 == e || eol[1] != '\n') {
            if (eol == e)
                return fault_at(fault, name, (size_t)(e - v), -1, "line not ended by CRLF");
            return fault_at(fault, name, (size_t)(eol - v), (unsigned char)*eol,
                            value_why((unsigned char)*eol));
        }
        p = eol + 2;
    }
    return 0;
}

int px_http_check_response_fields(int status, const char *reason, const char *content_type,
                                  const char *extra, size_t extra_len, px_http_field_fault_t *fault)
{
    static const char ctype_name[] = "Content-Type";
    size_t bad;

    if (status < 100 || status > 999)
        return fault_at(fault, (px_view_t){"status", 6}, 0, -1, "status not within 100..999");
    if (reason && !px_http_field_value_ok(reason, strlen(reason), &bad))
        return fault_at(fault, (px_view_t){"reason", 6}, bad, (unsigned char)reason[bad],
                        value_why((unsigned char)reason[bad]));
    if (content_type && !px_http_field_value_ok(content_type, strlen(content_type), &bad))
        return fault_at(fault, (px_view_t){ctype_name, sizeof(ctype_name) - 1}, bad,
                        (unsigned char)content_type[bad],
                        value_why((unsigned char)content_type[bad]));
    if (extra && extra_len)
        return px_http_check_header_lines(extra, extra_len, fault);
    return 0;
}
