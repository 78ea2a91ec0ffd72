/* The WebSocket frame parser and writer: masked client frames, every length
 * encoding, fragmentation with control frames between fragments, input fed
 * byte by byte and ending at an inaccessible page, and each protocol error
 * with its close code (1002, 1007, 1009), caught at the header where the
 * header alone tells. */
#include "px/websocket.h"
#include "px_test.h"

#include <errno.h>
#include <sys/mman.h>

typedef struct {
    char msg[1 << 17];
    size_t msg_len;
    int msg_op;
    int messages;
    int controls;
    int last_ctl;
    unsigned last_code;
    char ctl[126];
    size_t ctl_len;
} sink_t;

static int on_data(void *arg, int op, const char *d, size_t n, bool fin)
{
    sink_t *s = arg;

    PX_CHECK_LE(s->msg_len + n, sizeof(s->msg));
    memcpy(s->msg + s->msg_len, d, n);
    s->msg_len += n;
    s->msg_op = op;
    if (fin)
        s->messages++;
    return 0;
}

static int on_control(void *arg, int op, const char *d, size_t n, unsigned code)
{
    sink_t *s = arg;

    s->controls++;
    s->last_ctl = op;
    s->last_code = code;
    memcpy(s->ctl, d, n);
    s->ctl_len = n;
    return 0;
}

static const px_ws_parser_cb_t CB = {on_data, on_control};
static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A client frame: header, masked payload. */
static size_t frame(uint8_t *out, bool fin, int op, const void *payload, size_t n)
{
    size_t h = px_ws_frame_header(out, fin, op, n, MASK);

    memcpy(out + h, payload, n);
    px_ws_mask(out + h, n, MASK, 0);
    return h + n;
}

static ssize_t parse(px_ws_parser_t *p, sink_t *s, const uint8_t *d, size_t n)
{
    return px_ws_parse(p, (const char *)d, n, &CB, s);
}

static void test_rfc_example(void)
{
    /* RFC 6455 section 5.7: a masked "Hello" */
    static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    px_ws_parser_t p;
    sink_t *s = calloc(1, sizeof(*s));

    px_ws_parser_init(&p, 0, 0, false);
    PX_CHECK_EQ(parse(&p, s, hello, sizeof(hello)), sizeof(hello));
    PX_CHECK_EQ(s->messages, 1);
    PX_CHECK_EQ(s->msg_op, PX_WS_TEXT);
    PX_CHECK_EQ(s->msg_len, 5);
    PX_CHECK_MEM(s->msg, "Hello", 5);
    free(s);
}

static void test_lengths_bytewise(void)
{
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 100000};
    uint8_t *buf = malloc(200000), *payload = malloc(100000);

    for (size_t i = 0; i < 100000; i++)
        payload[i] = (uint8_t)(i * 7);
    for (size_t k = 0; k < PX_ARRAY_SIZE(sizes); k++) {
        px_ws_parser_t p;
        sink_t *s = calloc(1, sizeof(*s));
        size_t n = frame(buf, true, PX_WS_BINARY, payload, sizes[k]);

        px_ws_parser_init(&p, 0, 0, false);
        if (sizes[k] < 1000) {
            for (size_t i = 0; i < n; i++)
                PX_CHECK_EQ(parse(&p, s, buf + i, 1), 1);
        } else {
            PX_CHECK_EQ(parse(&p, s, buf, n), n);
        }
        PX_CHECK_EQ(s->messages, 1);
        PX_CHECK_EQ(s->msg_len, sizes[k]);
        PX_CHECK(memcmp(s->msg, payload, sizes[k]) == 0);
        free(s);
    }
    free(buf);
    free(payload);
}

static void test_fragments_with_controls(void)
{
    uint8_t buf[512];
    size_t n = 0;
    px_ws_parser_t p;
    sink_t *s = calloc(1, sizeof(*s));

    n += frame(buf + n, false, PX_WS_TEXT, "frag", 4);
    n += frame(buf + n, true, PX_WS_PING, "p1", 2);
    n += frame(buf + n, false, PX_WS_CONTINUATION, "\xce", 1); /* a character cut in two */
    n += frame(buf + n, true, PX_WS_PONG, "", 0);
    n += frame(buf + n, false, PX_WS_CONTINUATION, "", 0);
    n += frame(buf + n, true, PX_WS_CONTINUATION, "\xba!", 2);
    px_ws_parser_init(&p, 0, 0, false);
    for (size_t i = 0; i < n; i++)
        PX_CHECK_EQ(parse(&p, s, buf + i, 1), 1);
    PX_CHECK_EQ(s->messages, 1);
    PX_CHECK_EQ(s->controls, 2);
    PX_CHECK_EQ(s->msg_len, 7);
    PX_CHECK_MEM(s->msg, "frag\xce\xba!", 7);
    /* a close with a code and a reason */
    n = frame(buf, true, PX_WS_CLOSE,
              "\x03\xe8"
              "bye",
              5);
    PX_CHECK_EQ(parse(&p, s, buf, n), n);
    PX_CHECK_EQ(s->last_ctl, PX_WS_CLOSE);
    PX_CHECK_EQ(s->last_code, 1000);
    free(s);
}

/* raw bytes (header given whole) and the code they must fail with */
static void expect_error(const uint8_t *d, size_t n, int err, unsigned code)
{
    px_ws_parser_t p;
    sink_t *s = calloc(1, sizeof(*s));

    px_ws_parser_init(&p, 1000, 2000, false);
    PX_CHECK_EQ(parse(&p, s, d, n), err);
    PX_CHECK_EQ(p.close_code, code);
    PX_CHECK_EQ(parse(&p, s, d, n), err); /* sticky */
    free(s);
}

static void test_errors(void)
{
    uint8_t b[300];
    size_t n;

    /* RSV bits, each */
    for (int bit = 4; bit <= 6; bit++) {
        uint8_t f[] = {(uint8_t)(0x81 | 1 << bit), 0x80, 0, 0, 0, 0};
        expect_error(f, 2, -EPROTO, 1002); /* refused from the first two bytes */
    }
    /* reserved opcodes */
    for (int op = 3; op <= 15; op++) {
        uint8_t f[] = {(uint8_t)(0x80 | op), 0x80, 0, 0, 0, 0};
        if (op >= 8 && op <= 10)
            continue;
        expect_error(f, 2, -EPROTO, 1002);
    }
    /* unmasked client frame */
    expect_error((const uint8_t *)"\x81\x05hello", 7, -EPROTO, 1002);
    /* control frame too long (126) or fragmented */
    expect_error((const uint8_t *)"\x89\xfe\x00\x7e", 4, -EPROTO, 1002);
    expect_error((const uint8_t *)"\x09\x80", 2, -EPROTO, 1002);
    /* continuation with nothing to continue; a new message inside one */
    expect_error((const uint8_t *)"\x80\x80", 2, -EPROTO, 1002);
    n = frame(b, false, PX_WS_TEXT, "a", 1);
    n += frame(b + n, true, PX_WS_BINARY, "b", 1);
    expect_error(b, n, -EPROTO, 1002);
    /* non-minimal lengths, a 64-bit length with its top bit set */
    expect_error((const uint8_t *)"\x82\xfe\x00\x05", 4, -EPROTO, 1002);
    expect_error((const uint8_t *)"\x82\xff\x00\x00\x00\x00\x00\x00\xff\xff", 10, -EPROTO, 1002);
    expect_error((const uint8_t *)"\x82\xff\x80\x00\x00\x00\x00\x01\x00\x00", 10, -EPROTO, 1002);
    /* over the frame limit (1000), over the message limit (2000) across frames:
     * known from the header, before any payload */
    expect_error((const uint8_t *)"\x82\xfe\x03\xe9\x01\x02\x03\x04", 8, -EMSGSIZE, 1009);
    {
        static uint8_t big[4000], pay[1000];
        n = frame(big, false, PX_WS_BINARY, pay, 1000);
        n += frame(big + n, false, PX_WS_CONTINUATION, pay, 1000);
        n += px_ws_frame_header(big + n, true, PX_WS_CONTINUATION, 1, MASK);
        expect_error(big, n, -EMSGSIZE, 1009);
    }
    /* invalid UTF-8, fail-fast: the frame's payload not even complete */
    n = px_ws_frame_header(b, true, PX_WS_TEXT, 100, MASK);
    memcpy(b + n, "ok\xc0\xaf", 4);
    px_ws_mask(b + n, 4, MASK, 0);
    expect_error(b, n + 4, -EILSEQ, 1007);
    /* a text message ending mid-character */
    n = frame(b, true, PX_WS_TEXT, "\xe2\x82", 2);
    expect_error(b, n, -EILSEQ, 1007);
    /* close payloads: one byte, invalid codes, invalid reason */
    n = frame(b, true, PX_WS_CLOSE, "\x03", 1);
    expect_error(b, n, -EPROTO, 1002);
    {
        static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000};
        for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
            uint8_t code[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
            n = frame(b, true, PX_WS_CLOSE, code, 2);
            expect_error(b, n, -EPROTO, 1002);
        }
    }
    n = frame(b, true, PX_WS_CLOSE,
              "\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", 16);
    expect_error(b, n, -EILSEQ, 1007);
}

static void test_valid_close_codes(void)
{
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                    1010, 1011, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < PX_ARRAY_SIZE(good); i++)
        PX_CHECK(px_ws_close_code_valid(good[i]));
}

/* Every prefix of a stream of frames placed to end at an inaccessible page:
 * nothing is read past the input. */
static void test_guard_page(void)
{
    long page = sysconf(_SC_PAGESIZE);
    uint8_t src[600];
    size_t n = 0;
    char *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);

    PX_CHECK(mem != MAP_FAILED);
    PX_CHECK_EQ(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    n += frame(src + n, false, PX_WS_TEXT, "abc", 3);
    n += frame(src + n, true, PX_WS_PING, "xyz", 3);
    {
        static uint8_t pay[300];
        memset(pay, 'q', sizeof(pay));
        n += frame(src + n, true, PX_WS_CONTINUATION, pay, sizeof(pay));
    }
    for (size_t len = 0; len <= n; len++) {
        px_ws_parser_t p;
        sink_t *s = calloc(1, sizeof(*s));
        char *at = mem + page - len;

        memcpy(at, src, len);
        px_ws_parser_init(&p, 0, 0, false);
        PX_CHECK_EQ(px_ws_parse(&p, at, len, &CB, s), len);
        PX_CHECK_EQ(s->messages, len == n ? 1 : 0);
        free(s);
    }
    munmap(mem, (size_t)page * 2);
}

/* The writer's frames read back by a client-side parser (unmasked). */
static void test_writer_roundtrip(void)
{
    static uint8_t buf[70000], pay[66000];
    px_ws_parser_t p;
    sink_t *s = calloc(1, sizeof(*s));
    size_t n = px_ws_frame_header(buf, true, PX_WS_BINARY, sizeof(pay), NULL);

    PX_CHECK_EQ(n, 10);
    memset(pay, 7, sizeof(pay));
    memcpy(buf + n, pay, sizeof(pay));
    px_ws_parser_init(&p, 0, 0, true);
    PX_CHECK_EQ(parse(&p, s, buf, n + sizeof(pay)), n + sizeof(pay));
    PX_CHECK_EQ(s->msg_len, sizeof(pay));
    /* a masked frame is an error for the client side */
    n = frame(buf, true, PX_WS_TEXT, "x", 1);
    PX_CHECK_EQ(parse(&p, s, buf, n), -EPROTO);
    {
        uint8_t out[PX_WS_MAX_CONTROL];
        char reason[200];
        memset(reason, 'r', sizeof(reason));
        reason[120] = '\xce';
        reason[121] = '\xba';
        reason[122] = '\xce';
        reason[123] = '\xba';
        /* cut to 123 bytes, not inside the character at 122..123 */
        PX_CHECK_EQ(px_ws_close_payload(out, 1000, reason, sizeof(reason)), 2 + 122);
    }
    free(s);
}

int main(void)
{
    test_rfc_example();
    test_lengths_bytewise();
    test_fragments_with_controls();
    test_errors();
    test_valid_close_codes();
    test_guard_page();
    test_writer_roundtrip();
    printf("ok\n");
    return 0;
}
