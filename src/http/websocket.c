/*
 * RFC 6455 without a connection: the opening handshake's checks and answer
 * key, the strict incremental frame parser, the frame writer. See
 * include/px/websocket.h.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "px/base64.h"
#include "px/sha1.h"
#include "px/websocket.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define UNMASK_CHUNK 4096

bool px_ws_close_code_valid(unsigned code)
{
    /* 1004-1006 and 1015 are reserved and must never be on the wire; 1012-1014
     * were registered after the RFC (restart, try again later, bad gateway). */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ---- handshake ---------------------------------------------------------------- */

static bool view_eq_ci(px_view_t v, const char *s)
{
    size_t n = strlen(s);
    return v.len == n && strncasecmp(v.base, s, n) == 0;
}

px_view_t px_ws_header(const px_http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (view_eq_ci(req->headers[i].name, name))
            return req->headers[i].value;
    return (px_view_t){NULL, 0};
}

static unsigned header_count(const px_http_request_t *req, const char *name)
{
    unsigned n = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        n += view_eq_ci(req->headers[i].name, name);
    return n;
}

/* Call fn on each element of the comma-separated list v (spaces and tabs
 * around elements dropped, empty elements skipped); true as soon as fn is. */
static bool list_any(px_view_t v, bool (*fn)(px_view_t item, const void *arg), const void *arg)
{
    size_t i = 0;

    while (i < v.len) {
        size_t start, end;

        while (i < v.len && (v.base[i] == ' ' || v.base[i] == '\t' || v.base[i] == ','))
            i++;
        start = i;
        while (i < v.len && v.base[i] != ',')
            i++;
        end = i;
        while (end > start && (v.base[end - 1] == ' ' || v.base[end - 1] == '\t'))
            end--;
        if (end > start && fn((px_view_t){v.base + start, end - start}, arg))
            return true;
    }
    return false;
}

static bool is_websocket(px_view_t item, const void *arg)
{
    (void)arg;
    return view_eq_ci(item, "websocket");
}

static bool any_upgrade_websocket(const px_http_request_t *req)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (view_eq_ci(req->headers[i].name, "upgrade") &&
            list_any(req->headers[i].value, is_websocket, NULL))
            return true;
    return false;
}

int px_ws_handshake_check(const px_http_request_t *req, px_ws_handshake_t *out)
{
    uint8_t raw[18];
    px_view_t version;

    memset(out, 0, sizeof(*out));
    if (!(req->method.len == 3 && memcmp(req->method.base, "GET", 3) == 0)) {
        out->status = 405;
        return -EINVAL;
    }
    out->status = 400;
    if (req->minor_version < 1 || req->chunked || req->content_length > 0 ||
        !req->connection_upgrade || !any_upgrade_websocket(req))
        return -EINVAL;
    if (header_count(req, "sec-websocket-key") != 1 ||
        header_count(req, "sec-websocket-version") != 1)
        return -EINVAL;
    out->key = px_ws_header(req, "sec-websocket-key");
    if (px_base64_decode(out->key.base, out->key.len, raw, sizeof(raw)) != 16)
        return -EINVAL;
    version = px_ws_header(req, "sec-websocket-version");
    if (!(version.len == 2 && memcmp(version.base, "13", 2) == 0)) {
        out->status = 426; /* answered with the version we speak */
        return -EINVAL;
    }
    out->origin = px_ws_header(req, "origin");
    if (out->origin.base == NULL)
        out->origin = (px_view_t){"", 0};
    out->status = 0;
    return 0;
}

void px_ws_accept_key(px_view_t key, char out[PX_WS_ACCEPT_LEN + 1])
{
    uint8_t digest[PX_SHA1_LEN];
    px_sha1_t s;

    px_sha1_init(&s);
    px_sha1_update(&s, key.base, key.len);
    px_sha1_update(&s, WS_GUID, sizeof(WS_GUID) - 1);
    px_sha1_final(&s, digest);
    px_base64_encode(digest, sizeof(digest), out);
    out[PX_WS_ACCEPT_LEN] = '\0';
}

typedef struct {
    const char *name;
    size_t len;
} name_t;

static bool is_name(px_view_t item, const void *arg)
{
    const name_t *n = arg;
    return item.len == n->len && memcmp(item.base, n->name, n->len) == 0;
}

bool px_ws_protocol_offered(const px_http_request_t *req, const char *name, size_t len)
{
    name_t n = {name, len};

    for (size_t i = 0; i < req->num_headers; i++)
        if (view_eq_ci(req->headers[i].name, "sec-websocket-protocol") &&
            list_any(req->headers[i].value, is_name, &n))
            return true;
    return false;
}

/* ---- frame parser -------------------------------------------------------------- */

void px_ws_parser_init(px_ws_parser_t *p, uint64_t max_frame, uint64_t max_message, bool client)
{
    memset(p, 0, sizeof(*p));
    p->max_frame = max_frame ? max_frame : UINT64_MAX >> 1;
    p->max_message = max_message ? max_message : UINT64_MAX >> 1;
    p->client = client;
    p->_hdr_need = 2;
    p->_len_end = 2;
    px_utf8_init(&p->_utf8);
}

static ssize_t fail(px_ws_parser_t *p, int err, unsigned code)
{
    p->_err = err;
    p->close_code = code;
    return err;
}

/* The first two bytes are in: everything they alone can refuse, refused now. */
static ssize_t header_start(px_ws_parser_t *p)
{
    uint8_t b0 = p->_hdr[0], b1 = p->_hdr[1];
    unsigned op = b0 & 0x0f, len7 = b1 & 0x7f;
    bool masked = (b1 & 0x80) != 0;

    /* RSV2-3: no extension defines them; RSV1 only on a message's first
     * frame, when permessage-deflate was agreed (RFC 7692 section 6) */
    if ((b0 & 0x30) || ((b0 & 0x40) && !(p->deflate && (op == PX_WS_TEXT || op == PX_WS_BINARY))))
        return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
    if (!(op <= PX_WS_BINARY || (op >= PX_WS_CLOSE && op <= PX_WS_PONG)))
        return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
    if (masked == p->client) /* clients mask, servers do not (section 5.1) */
        return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
    if (op >= PX_WS_CLOSE && (!(b0 & 0x80) || len7 > PX_WS_MAX_CONTROL))
        return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
    if ((op == PX_WS_CONTINUATION && !p->_in_message) ||
        ((op == PX_WS_TEXT || op == PX_WS_BINARY) && p->_in_message))
        return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
    p->_opcode = (uint8_t)op;
    p->_fin = (b0 & 0x80) != 0;
    p->_rsv1 = (b0 & 0x40) != 0;
    p->_len_end = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0));
    p->_hdr_need = (uint8_t)(p->_len_end + (masked ? 4 : 0));
    return 0;
}

/* The length field is in: minimal encoding, 63 bits, the limits, checked
 * before the mask and the payload arrive. */
static ssize_t length_end(px_ws_parser_t *p)
{
    unsigned len7 = p->_hdr[1] & 0x7f;
    uint64_t len = len7;

    if (len7 == 126) {
        len = (uint64_t)p->_hdr[2] << 8 | p->_hdr[3];
        if (len < 126)
            return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p->_hdr[2 + i];
        if ((len >> 63) != 0 || len <= 0xffff)
            return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
    }
    if (len > p->max_frame)
        return fail(p, -EMSGSIZE, PX_WS_CLOSE_TOO_BIG);
    if (p->_opcode < PX_WS_CLOSE &&
        len > p->max_message - (p->_opcode == PX_WS_CONTINUATION ? p->_msg_len : 0))
        return fail(p, -EMSGSIZE, PX_WS_CLOSE_TOO_BIG);
    p->_left = len;
    return 0;
}

/* The whole header is in: the frame starts. */
static void header_end(px_ws_parser_t *p)
{
    if (p->_hdr[1] & 0x80)
        memcpy(p->_mask, p->_hdr + p->_hdr_need - 4, 4);
    else
        memset(p->_mask, 0, 4);
    if (p->_opcode == PX_WS_TEXT || p->_opcode == PX_WS_BINARY) {
        p->_in_message = true;
        p->_msg_opcode = p->_opcode;
        p->_msg_len = 0;
        p->compressed = p->_rsv1;
        px_utf8_init(&p->_utf8);
    }
    p->_ctl_len = 0;
    p->_off = 0;
    p->_in_frame = true;
}

/* The close code of a callback's error. */
static unsigned callback_code(int rc)
{
    return rc == -EMSGSIZE  ? PX_WS_CLOSE_TOO_BIG
           : rc == -EILSEQ  ? PX_WS_CLOSE_INVALID_DATA
           : rc == -EPROTO  ? PX_WS_CLOSE_PROTOCOL
           : rc == -ENOBUFS ? PX_WS_CLOSE_TRY_AGAIN
                            : PX_WS_CLOSE_INTERNAL;
}

/* Data payload bytes: unmasked in pieces, checked, handed over. */
static ssize_t data_bytes(px_ws_parser_t *p, const uint8_t *s, size_t n,
                          const px_ws_parser_cb_t *cb, void *arg)
{
    uint8_t buf[UNMASK_CHUNK];

    do {
        size_t k = PX_MIN(n, sizeof(buf));
        bool last = k == n && p->_left == k;
        bool fin = last && p->_fin;
        int rc;

        memcpy(buf, s, k);
        px_ws_mask(buf, k, p->_mask, p->_off);
        p->_off += k;
        p->_left -= k;
        p->_msg_len += k;
        if (p->_msg_opcode == PX_WS_TEXT && !p->compressed &&
            (px_utf8_feed(&p->_utf8, buf, k) < 0 || (fin && !px_utf8_complete(&p->_utf8))))
            return fail(p, -EILSEQ, PX_WS_CLOSE_INVALID_DATA);
        if (fin)
            p->_in_message = false;
        if ((k > 0 || fin) &&
            (rc = cb->on_data(arg, p->_msg_opcode, (const char *)buf, k, fin)) < 0)
            return fail(p, rc, callback_code(rc));
        s += k;
        n -= k;
    } while (n > 0);
    return 0;
}

/* A control frame is whole: its rules, then the callback. */
static ssize_t control_end(px_ws_parser_t *p, const px_ws_parser_cb_t *cb, void *arg)
{
    unsigned code = 0;
    int rc;

    if (p->_opcode == PX_WS_CLOSE && p->_ctl_len > 0) {
        px_utf8_t u;

        if (p->_ctl_len < 2)
            return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
        code = (unsigned)p->_ctl[0] << 8 | p->_ctl[1];
        if (!px_ws_close_code_valid(code))
            return fail(p, -EPROTO, PX_WS_CLOSE_PROTOCOL);
        px_utf8_init(&u);
        if (px_utf8_feed(&u, p->_ctl + 2, p->_ctl_len - 2u) < 0 || !px_utf8_complete(&u))
            return fail(p, -EILSEQ, PX_WS_CLOSE_INVALID_DATA);
    }
    rc = cb->on_control(arg, p->_opcode, (const char *)p->_ctl, p->_ctl_len, code);
    return rc < 0 ? fail(p, rc, callback_code(rc)) : 0;
}

ssize_t px_ws_parse(px_ws_parser_t *p, const char *data, size_t len, const px_ws_parser_cb_t *cb,
                    void *arg)
{
    const uint8_t *s = (const uint8_t *)data;
    size_t i = 0;
    ssize_t rc;

    if (p->_err)
        return p->_err;
    while (i < len || (p->_in_frame && p->_left == 0)) {
        if (!p->_in_frame) {
            /* up to the end of the length field first, then the rest */
            size_t stop = p->_hdr_len < 2             ? 2
                          : p->_hdr_len < p->_len_end ? p->_len_end
                                                      : p->_hdr_need;
            size_t k = PX_MIN(stop - p->_hdr_len, len - i);

            memcpy(p->_hdr + p->_hdr_len, s + i, k);
            p->_hdr_len = (uint8_t)(p->_hdr_len + k);
            i += k;
            if (p->_hdr_len < stop)
                continue;
            if (stop == 2 && (rc = header_start(p)) < 0)
                return rc;
            if (p->_hdr_len == p->_len_end && (rc = length_end(p)) < 0)
                return rc;
            if (p->_hdr_len < p->_hdr_need)
                continue;
            header_end(p);
        }
        if (p->_left > 0 && i < len) {
            size_t k = (size_t)PX_MIN(p->_left, (uint64_t)(len - i));

            if (p->_opcode >= PX_WS_CLOSE) {
                memcpy(p->_ctl + p->_ctl_len, s + i, k);
                px_ws_mask(p->_ctl + p->_ctl_len, k, p->_mask, p->_off);
                p->_ctl_len = (uint8_t)(p->_ctl_len + k);
                p->_off += k;
                p->_left -= k;
            } else if ((rc = data_bytes(p, s + i, k, cb, arg)) < 0) {
                return rc;
            }
            i += k;
        }
        if (p->_left > 0)
            break; /* more of this frame in the next call */
        /* the frame is complete */
        if (p->_opcode >= PX_WS_CLOSE)
            rc = control_end(p, cb, arg);
        else if (p->_off == 0 && p->_fin)
            rc = data_bytes(p, s + i, 0, cb, arg); /* an empty final frame ends its message */
        else
            rc = 0;
        p->_in_frame = false;
        p->_hdr_len = 0;
        p->_hdr_need = 2;
        p->_len_end = 2;
        if (rc < 0)
            return rc;
    }
    return (ssize_t)i;
}

/* ---- writer ---------------------------------------------------------------------- */

size_t px_ws_frame_header(uint8_t out[PX_WS_MAX_HEADER], bool fin, int opcode, uint64_t len,
                          const uint8_t *mask)
{
    size_t n = 2;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & (0x0f | PX_WS_RSV1)));
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask != NULL) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void px_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t off)
{
    uint8_t m[4];
    size_t i = 0;

    for (int k = 0; k < 4; k++)
        m[k] = mask[(off + (uint64_t)k) & 3];
    if (len >= 8) {
        uint64_t w8, m8;
        uint32_t m4;

        memcpy(&m4, m, 4);
        m8 = (uint64_t)m4 << 32 | m4; /* same byte order both halves */
        for (; i + 8 <= len; i += 8) {
            memcpy(&w8, data + i, 8);
            w8 ^= m8;
            memcpy(data + i, &w8, 8);
        }
    }
    for (; i < len; i++)
        data[i] ^= m[i & 3];
}

size_t px_ws_close_payload(uint8_t out[PX_WS_MAX_CONTROL], unsigned code, const char *reason,
                           size_t len)
{
    if (code == 0)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (len > PX_WS_MAX_CONTROL - 2) {
        len = PX_WS_MAX_CONTROL - 2;
        while (len > 0 && ((uint8_t)reason[len] & 0xc0) == 0x80)
            len--; /* not in the middle of a character */
    }
    memcpy(out + 2, reason, len);
    return 2 + len;
}
