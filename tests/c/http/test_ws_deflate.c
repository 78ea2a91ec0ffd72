/* permessage-deflate (RFC 7692): the offers a server takes or declines and
 * its answers, RFC 7692's own examples inflated, messages across pieces and
 * fragments, a client that keeps its context, a compression bomb stopped at
 * the sink's limit, data that is not deflate, the compressor's output read
 * back, and the parser's RSV1 rules. */
#include "px/websocket.h"
#include "px/ws_deflate.h"
#include "px_test.h"

#include <errno.h>
#include <zlib.h>

/* ---- negotiation ---------------------------------------------------------------- */

static int negotiate(const char *value, const char *value2, bool client_context, unsigned bits,
                     px_ws_deflate_params_t *out, char *answer)
{
    px_http_header_t hdrs[3] = {
        {{"Host", 4}, {"x", 1}},
        {{"Sec-WebSocket-Extensions", 24}, {value, strlen(value)}},
        {{"sec-websocket-extensions", 24}, {value2 ? value2 : "", value2 ? strlen(value2) : 0}},
    };
    px_http_request_t req = {.headers = hdrs, .num_headers = value2 ? 3 : 2};
    px_ws_deflate_policy_t policy = {client_context, bits};

    answer[0] = '\0';
    return px_ws_deflate_negotiate(&req, &policy, out, answer);
}

static void test_negotiation(void)
{
    px_ws_deflate_params_t p;
    char a[PX_WS_DEFLATE_ANSWER];

    /* a browser's offer: no context kept by the client, 15-bit windows */
    PX_CHECK_EQ(negotiate("permessage-deflate; client_max_window_bits", NULL, false, 0, &p, a), 1);
    PX_CHECK(strcmp(a, "permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover") == 0);
    PX_CHECK(!p.client_context);
    PX_CHECK_EQ(p.server_bits, 15);
    PX_CHECK_EQ(p.inflate_bits, 15);
    /* the client may keep its context: its window is limited when it lets us */
    PX_CHECK_EQ(negotiate("permessage-deflate; client_max_window_bits", NULL, true, 10, &p, a), 1);
    PX_CHECK(strcmp(a, "permessage-deflate; server_no_context_takeover; "
                       "client_max_window_bits=10") == 0);
    PX_CHECK(p.client_context);
    PX_CHECK_EQ(p.inflate_bits, 10);
    /* without client_max_window_bits in the offer it is not in the answer */
    PX_CHECK_EQ(negotiate("permessage-deflate", NULL, true, 10, &p, a), 1);
    PX_CHECK(strcmp(a, "permessage-deflate; server_no_context_takeover") == 0);
    PX_CHECK_EQ(p.inflate_bits, 15);
    /* the client's own limit is kept when smaller; quoted values */
    PX_CHECK_EQ(
        negotiate("permessage-deflate; client_max_window_bits=\"9\"", NULL, true, 12, &p, a), 1);
    PX_CHECK(strstr(a, "client_max_window_bits=9") != NULL);
    PX_CHECK_EQ(p.inflate_bits, 9);
    /* the client asks for no context of its own */
    PX_CHECK_EQ(negotiate("permessage-deflate;client_no_context_takeover", NULL, true, 0, &p, a),
                1);
    PX_CHECK(!p.client_context);
    PX_CHECK(strstr(a, "client_no_context_takeover") != NULL);
    /* our window as the client limits it, said back */
    PX_CHECK_EQ(negotiate("permessage-deflate; server_max_window_bits=10", NULL, false, 0, &p, a),
                1);
    PX_CHECK_EQ(p.server_bits, 10);
    PX_CHECK(strstr(a, "server_max_window_bits=10") != NULL);
    /* the longest answer, every parameter in it (a fuzzer found it cut) */
    PX_CHECK_EQ(negotiate("permessage-deflate; client_max_window_bits=10; "
                          "server_max_window_bits=12",
                          NULL, false, 0, &p, a),
                1);
    PX_CHECK(strcmp(a, "permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover; server_max_window_bits=12; "
                       "client_max_window_bits=10") == 0);
    /* 8 bits cannot be made: that offer is declined, the fallback taken */
    PX_CHECK_EQ(negotiate("permessage-deflate; server_max_window_bits=8, permessage-deflate", NULL,
                          false, 0, &p, a),
                1);
    PX_CHECK_EQ(p.server_bits, 15);
    PX_CHECK(strstr(a, "server_max_window_bits") == NULL);
    /* another extension first, the offer in a second header */
    PX_CHECK_EQ(
        negotiate("x-webkit-deflate-frame; max=\"a,b\"", "permessage-deflate", false, 0, &p, a), 1);
    /* a long value of another parameter declines that offer only */
    PX_CHECK_EQ(negotiate("permessage-deflate; x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, "
                          "permessage-deflate",
                          NULL, false, 0, &p, a),
                1);
    PX_CHECK_EQ(negotiate("permessage-deflate; client_max_window_bits=100000000000000000015", NULL,
                          false, 0, &p, a),
                0);
    /* a policy out of range is brought into it */
    PX_CHECK_EQ(negotiate("permessage-deflate; client_max_window_bits", NULL, true, 5, &p, a), 1);
    PX_CHECK(strstr(a, "client_max_window_bits=9") != NULL);
    /* declined: unknown, repeated, valueless or out-of-range parameters */
    PX_CHECK_EQ(negotiate("permessage-deflate; foo", NULL, false, 0, &p, a), 0);
    PX_CHECK_EQ(negotiate("permessage-deflate; server_no_context_takeover; "
                          "server_no_context_takeover",
                          NULL, false, 0, &p, a),
                0);
    PX_CHECK_EQ(negotiate("permessage-deflate; server_max_window_bits", NULL, false, 0, &p, a), 0);
    PX_CHECK_EQ(negotiate("permessage-deflate; server_max_window_bits=16", NULL, false, 0, &p, a),
                0);
    PX_CHECK_EQ(negotiate("permessage-deflate; client_max_window_bits=08", NULL, false, 0, &p, a),
                0);
    PX_CHECK_EQ(
        negotiate("permessage-deflate; client_no_context_takeover=1", NULL, false, 0, &p, a), 0);
    /* malformed headers: nothing taken from them */
    PX_CHECK_EQ(negotiate("permessage-deflate; client_max_window_bits=\"10", NULL, false, 0, &p, a),
                0);
    PX_CHECK_EQ(negotiate("; permessage-deflate", NULL, false, 0, &p, a), 0);
    PX_CHECK_EQ(negotiate("x-other", NULL, false, 0, &p, a), 0);
}

/* ---- inflating ---------------------------------------------------------------------- */

typedef struct {
    char out[1 << 20];
    size_t len, limit;
} sink_t;

static int sink(void *arg, const char *d, size_t n)
{
    sink_t *s = arg;

    PX_CHECK_LE(n, (size_t)16384);
    if (n > s->limit - s->len)
        return -EMSGSIZE;
    memcpy(s->out + s->len, d, n);
    s->len += n;
    return 0;
}

static void test_rfc_examples(void)
{
    /* section 7.2.3.1: "Hello" compressed; 7.2.3.3: a stored block */
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                     0x65, 0x6c, 0x6c, 0x6f, 0x00};
    /* section 7.2.3.2: the second "Hello" of a context-keeping sender */
    static const uint8_t second[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    /* a final block (BFINAL set): allowed, the next message a new stream */
    static const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    sink_t *s = calloc(1, sizeof(*s));
    px_ws_inflater_t *inf = px_ws_inflater_get(15);

    s->limit = sizeof(s->out);
    PX_CHECK_EQ(px_ws_inflate(inf, false, hello, sizeof(hello), true, sink, s), 0);
    PX_CHECK(s->len == 5 && memcmp(s->out, "Hello", 5) == 0);
    s->len = 0;
    PX_CHECK_EQ(px_ws_inflate(inf, false, stored, sizeof(stored), true, sink, s), 0);
    PX_CHECK(s->len == 5 && memcmp(s->out, "Hello", 5) == 0);
    /* context kept: the second message refers back into the first */
    s->len = 0;
    PX_CHECK_EQ(px_ws_inflate(inf, true, hello, sizeof(hello), true, sink, s), 0);
    PX_CHECK_EQ(px_ws_inflate(inf, true, second, sizeof(second), true, sink, s), 0);
    PX_CHECK(s->len == 10 && memcmp(s->out, "HelloHello", 10) == 0);
    s->len = 0;
    PX_CHECK_EQ(px_ws_inflate(inf, false, final, sizeof(final), true, sink, s), 0);
    PX_CHECK(s->len == 5 && memcmp(s->out, "Hello", 5) == 0);
    s->len = 0;
    PX_CHECK_EQ(px_ws_inflate(inf, false, hello, sizeof(hello), true, sink, s), 0);
    PX_CHECK_EQ(s->len, (size_t)5);
    /* without the context the second message cannot be read */
    PX_CHECK_EQ(px_ws_inflate(inf, false, second, sizeof(second), true, sink, s), -EPROTO);
    /* data after a final block */
    {
        uint8_t more[sizeof(final) + 2];
        memcpy(more, final, sizeof(final));
        more[sizeof(final)] = 0x12;
        more[sizeof(final) + 1] = 0x34;
        PX_CHECK_EQ(px_ws_inflate(inf, false, more, sizeof(more), true, sink, s), -EPROTO);
    }
    /* cut inside a stored block: the tail must not become its data */
    PX_CHECK_EQ(px_ws_inflate(inf, false,
                              "\x00\x0a\x00\xf5\xff"
                              "abc",
                              8, true, sink, s),
                -EPROTO);
    /* not deflate data at all (a reserved block type) */
    PX_CHECK_EQ(px_ws_inflate(inf, false, "\xff\xff\xff", 3, true, sink, s), -EPROTO);
    px_ws_inflater_put(inf);
    free(s);
}

/* The server's own compressor, read back in pieces of every size. */
static void test_roundtrip_in_pieces(void)
{
    sink_t *s = calloc(1, sizeof(*s));
    char *msg = malloc(200000);
    const uint8_t *z;
    ssize_t zn;

    for (size_t i = 0; i < 200000; i++)
        msg[i] = (char)("abcdefgh"[i % 8] + (i / 5000) % 3);
    s->limit = sizeof(s->out);
    for (unsigned bits = 9; bits <= 15; bits += 3) {
        zn = px_ws_deflate(bits, 6, msg, 200000, &z);
        PX_CHECK_GT(zn, 0);
        PX_CHECK_LT(zn, 20000);
        /* the flush's tail was removed */
        PX_CHECK(!(zn >= 4 && memcmp(z + zn - 4, "\x00\x00\xff\xff", 4) == 0));
        uint8_t *copy = malloc((size_t)zn);
        memcpy(copy, z, (size_t)zn);
        for (size_t piece = 1; piece <= 4097; piece = piece * 8 + 1) {
            px_ws_inflater_t *inf = px_ws_inflater_get(bits);
            s->len = 0;
            for (size_t off = 0; off < (size_t)zn; off += piece) {
                size_t n = PX_MIN(piece, (size_t)zn - off);
                PX_CHECK_EQ(
                    px_ws_inflate(inf, false, copy + off, n, off + n == (size_t)zn, sink, s), 0);
            }
            PX_CHECK(s->len == 200000 && memcmp(s->out, msg, 200000) == 0);
            px_ws_inflater_put(inf);
        }
        free(copy);
    }
    /* the same message again (a broadcast) comes from the memo, the same
     * bytes; a changed one, or another level, is compressed afresh */
    {
        char a1[3000], a2[3000];
        const uint8_t *z1, *z2;
        ssize_t n1, n2;
        uint8_t first[3000];

        memset(a1, 'q', sizeof(a1));
        memcpy(a2, a1, sizeof(a2));
        n1 = px_ws_deflate(15, 6, a1, sizeof(a1), &z1);
        PX_CHECK_GT(n1, 0);
        memcpy(first, z1, (size_t)n1);
        n2 = px_ws_deflate(15, 6, a2, sizeof(a2), &z2);
        PX_CHECK(n2 == n1 && memcmp(z2, first, (size_t)n1) == 0);
        a2[2999] = 'r';
        n2 = px_ws_deflate(15, 6, a2, sizeof(a2), &z2);
        s->len = 0;
        {
            px_ws_inflater_t *inf = px_ws_inflater_get(15);
            PX_CHECK_EQ(px_ws_inflate(inf, false, z2, (size_t)n2, true, sink, s), 0);
            PX_CHECK(s->len == sizeof(a2) && memcmp(s->out, a2, sizeof(a2)) == 0);
            px_ws_inflater_put(inf);
        }
        n2 = px_ws_deflate(15, 1, a1, sizeof(a1), &z2);
        s->len = 0;
        {
            px_ws_inflater_t *inf = px_ws_inflater_get(15);
            PX_CHECK_EQ(px_ws_inflate(inf, false, z2, (size_t)n2, true, sink, s), 0);
            PX_CHECK(s->len == sizeof(a1) && memcmp(s->out, a1, sizeof(a1)) == 0);
            px_ws_inflater_put(inf);
        }
    }
    /* an empty message compresses to a byte and comes back empty */
    zn = px_ws_deflate(15, 0, "", 0, &z);
    PX_CHECK_EQ(zn, 1);
    {
        px_ws_inflater_t *inf = px_ws_inflater_get(15);
        s->len = 0;
        PX_CHECK_EQ(px_ws_inflate(inf, false, z, 1, true, sink, s), 0);
        PX_CHECK_EQ(s->len, (size_t)0);
        px_ws_inflater_free(inf);
    }
    free(msg);
    free(s);
}

/* 64 MiB of zeros is 64 KiB on the wire: the sink's limit stops it after a
 * chunk past the limit, whatever the inflated size would be. */
static void test_bomb(void)
{
    size_t big = (size_t)64 << 20;
    char *zeros = calloc(1, big);
    const uint8_t *z;
    ssize_t zn = px_ws_deflate(15, 9, zeros, big, &z);
    sink_t *s = calloc(1, sizeof(*s));
    px_ws_inflater_t *inf = px_ws_inflater_get(15);

    PX_CHECK_GT(zn, 0);
    PX_CHECK_LT(zn, 100000);
    s->limit = 1000;
    PX_CHECK_EQ(px_ws_inflate(inf, false, z, (size_t)zn, true, sink, s), -EMSGSIZE);
    PX_CHECK_LE(s->len, (size_t)1000);
    /* the inflater is usable again for the next connection */
    px_ws_inflater_put(inf);
    inf = px_ws_inflater_get(15);
    s->limit = sizeof(s->out);
    s->len = 0;
    zn = px_ws_deflate(15, 6, "again", 5, &z);
    PX_CHECK_EQ(px_ws_inflate(inf, false, z, (size_t)zn, true, sink, s), 0);
    PX_CHECK(s->len == 5 && memcmp(s->out, "again", 5) == 0);
    px_ws_inflater_free(inf);
    free(zeros);
    free(s);
}

/* ---- the parser's RSV1 rules -------------------------------------------------------- */

static int count_data(void *arg, int op, const char *d, size_t n, bool fin)
{
    (void)op;
    (void)d;
    (void)n;
    *(int *)arg += fin;
    return 0;
}

static int no_control(void *arg, int op, const char *d, size_t n, unsigned code)
{
    (void)arg;
    (void)op;
    (void)d;
    (void)n;
    (void)code;
    return 0;
}

static ssize_t parse_frames(bool deflate, const uint8_t *frames, size_t n, int *messages,
                            bool *compressed)
{
    static const px_ws_parser_cb_t cb = {count_data, no_control};
    px_ws_parser_t p;
    ssize_t rc;

    px_ws_parser_init(&p, 0, 0, false);
    p.deflate = deflate;
    *messages = 0;
    rc = px_ws_parse(&p, (const char *)frames, n, &cb, messages);
    *compressed = p.compressed;
    if (rc < 0)
        PX_CHECK_EQ(p.close_code, (unsigned)PX_WS_CLOSE_PROTOCOL);
    return rc;
}

static void test_parser_rsv1(void)
{
    static const uint8_t zero_mask[4] = {0};
    uint8_t buf[64];
    size_t n;
    int messages;
    bool compressed;

    /* RSV1 on a text frame: a compressed message once agreed; its bytes
     * (here not UTF-8) are not checked by the parser */
    n = px_ws_frame_header(buf, true, PX_WS_TEXT | PX_WS_RSV1, 2, zero_mask);
    buf[n++] = 0xf2;
    buf[n++] = 0xff;
    PX_CHECK_EQ(parse_frames(false, buf, n, &messages, &compressed), -EPROTO);
    PX_CHECK_EQ(parse_frames(true, buf, n, &messages, &compressed), (ssize_t)n);
    PX_CHECK(compressed && messages == 1);
    /* RSV1 on a continuation frame, on a control frame: never */
    n = px_ws_frame_header(buf, false, PX_WS_BINARY | PX_WS_RSV1, 0, zero_mask);
    n += px_ws_frame_header(buf + n, true, PX_WS_CONTINUATION | PX_WS_RSV1, 0, zero_mask);
    PX_CHECK_EQ(parse_frames(true, buf, n, &messages, &compressed), -EPROTO);
    n = px_ws_frame_header(buf, true, PX_WS_PING | PX_WS_RSV1, 0, zero_mask);
    PX_CHECK_EQ(parse_frames(true, buf, n, &messages, &compressed), -EPROTO);
    /* RSV2 and RSV3 stay errors */
    n = px_ws_frame_header(buf, true, PX_WS_TEXT, 0, zero_mask);
    buf[0] |= 0x20;
    PX_CHECK_EQ(parse_frames(true, buf, n, &messages, &compressed), -EPROTO);
    /* a plain message after a compressed one is plain */
    n = px_ws_frame_header(buf, true, PX_WS_BINARY | PX_WS_RSV1, 0, zero_mask);
    n += px_ws_frame_header(buf + n, true, PX_WS_BINARY, 0, zero_mask);
    PX_CHECK_EQ(parse_frames(true, buf, n, &messages, &compressed), (ssize_t)n);
    PX_CHECK(!compressed && messages == 2);
}

int main(void)
{
    test_negotiation();
    test_rfc_examples();
    test_roundtrip_in_pieces();
    test_bomb();
    test_parser_rsv1();
    printf("ok\n");
    return 0;
}
