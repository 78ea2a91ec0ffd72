/*
 * libFuzzer target for the WebSocket frame parser (include/px/websocket.h).
 *
 * The first byte of an input picks the side (client or server frames), the
 * limits and whether permessage-deflate was agreed (RSV1 allowed on a
 * message's first frame, whose text is then not the parser's to check); the
 * rest is fed to the parser in pieces whose sizes come from the second byte,
 * so that every header and payload split is reached. What the parser hands
 * over must keep its promises: a message never passes max_message, a text
 * message is valid UTF-8 when it ends, a control payload holds at most 125
 * bytes, a close code is valid, an error has its close code and stays, and
 * the bytes consumed never pass the input. Any violation calls
 * __builtin_trap().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "px/websocket.h"

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

typedef struct {
    uint64_t max_message;
    uint64_t msg_len;
    int msg_op;
    px_utf8_t utf8;
    bool in_message;
    const px_ws_parser_t *p;
} state_t;

static int on_data(void *arg, int op, const char *d, size_t n, bool fin)
{
    state_t *s = arg;

    CHECK(op == PX_WS_TEXT || op == PX_WS_BINARY);
    if (!s->in_message) {
        s->in_message = true;
        s->msg_op = op;
        s->msg_len = 0;
        px_utf8_init(&s->utf8);
    }
    CHECK(op == s->msg_op);
    s->msg_len += n;
    CHECK(s->msg_len <= s->max_message);
    if (op == PX_WS_TEXT && !s->p->compressed)
        CHECK(px_utf8_feed(&s->utf8, d, n) == 0);
    if (fin) {
        if (op == PX_WS_TEXT && !s->p->compressed)
            CHECK(px_utf8_complete(&s->utf8));
        s->in_message = false;
    }
    return 0;
}

static int on_control(void *arg, int op, const char *d, size_t n, unsigned code)
{
    (void)arg;
    (void)d;
    CHECK(op == PX_WS_CLOSE || op == PX_WS_PING || op == PX_WS_PONG);
    CHECK(n <= PX_WS_MAX_CONTROL);
    if (op == PX_WS_CLOSE)
        CHECK(n == 0 ? code == 0 : (n >= 2 && px_ws_close_code_valid(code)));
    return 0;
}

static const px_ws_parser_cb_t CB = {on_data, on_control};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_ws_parser_t p;
    state_t s = {0};
    size_t off = 2, piece;
    bool client;

    if (size < 2)
        return 0;
    client = data[0] & 1;
    s.max_message = (data[0] & 2) ? 200 : 70000;
    piece = data[1] ? data[1] : 1;
    px_ws_parser_init(&p, (data[0] & 4) ? 100 : 0, s.max_message, client);
    p.deflate = (data[0] & 8) != 0;
    s.p = &p;
    while (off < size) {
        size_t n = piece < size - off ? piece : size - off;
        ssize_t rc = px_ws_parse(&p, (const char *)data + off, n, &CB, &s);

        if (rc < 0) {
            CHECK(rc == -EPROTO || rc == -EILSEQ || rc == -EMSGSIZE);
            CHECK(p.close_code == (rc == -EPROTO   ? PX_WS_CLOSE_PROTOCOL
                                   : rc == -EILSEQ ? PX_WS_CLOSE_INVALID_DATA
                                                   : PX_WS_CLOSE_TOO_BIG));
            CHECK(px_ws_parse(&p, (const char *)data + off, n, &CB, &s) == rc);
            break;
        }
        CHECK((size_t)rc == n);
        off += n;
    }
    return 0;
}
