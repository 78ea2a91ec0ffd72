/*
 * libFuzzer target for permessage-deflate (include/px/ws_deflate.h).
 *
 * An input is an offer, a NUL, then compressed bytes. The first byte picks
 * the server's policy (client context, window) and the second the piece size.
 * The offer goes through px_ws_deflate_negotiate: an accepted one has
 * windows of 9..15 bits and an answer that fits and starts with the
 * extension's name. The rest is inflated in pieces with a sink limited to
 * 3000 bytes: the sink is never handed more than a 16 KiB piece, nothing
 * past its limit is taken, and every error is one the header lists; then the
 * same bytes are compressed by the server's compressor and must inflate back
 * to exactly themselves. Any violation calls __builtin_trap().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "px/ws_deflate.h"

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

#define LIMIT 3000

typedef struct {
    uint8_t out[LIMIT];
    size_t len;
} sink_t;

static int sink(void *arg, const char *d, size_t n)
{
    sink_t *s = arg;

    CHECK(n > 0 && n <= 16384);
    if (n > LIMIT - s->len)
        return -EMSGSIZE;
    memcpy(s->out + s->len, d, n);
    s->len += n;
    return 0;
}

static void check_offer(const uint8_t *data, size_t len, uint8_t policy_bits)
{
    px_http_header_t h = {{"Sec-WebSocket-Extensions", 24}, {(const char *)data, len}};
    px_http_request_t req = {.headers = &h, .num_headers = 1};
    px_ws_deflate_policy_t policy = {policy_bits & 1, 9 + (policy_bits >> 1) % 7};
    px_ws_deflate_params_t p;
    char answer[PX_WS_DEFLATE_ANSWER];

    if (px_ws_deflate_negotiate(&req, &policy, &p, answer) != 1)
        return;
    CHECK(p.server_bits >= 9 && p.server_bits <= 15);
    CHECK(p.inflate_bits >= 9 && p.inflate_bits <= 15);
    CHECK(strlen(answer) < PX_WS_DEFLATE_ANSWER - 1);
    CHECK(strncmp(answer, "permessage-deflate; server_no_context_takeover", 46) == 0);
    CHECK(p.client_context == (strstr(answer, "client_no_context_takeover") == NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul, *z;
    size_t piece, off = 0, zlen;
    px_ws_inflater_t *inf;
    sink_t s = {.len = 0};
    const uint8_t *packed;
    ssize_t packed_len;
    int rc = 0;

    if (size < 2)
        return 0;
    piece = data[1] ? data[1] : 1;
    nul = memchr(data + 2, 0, size - 2);
    check_offer(data + 2, nul ? (size_t)(nul - data - 2) : size - 2, data[0]);
    if (nul == NULL)
        return 0;
    z = nul + 1;
    zlen = size - (size_t)(z - data);
    inf = px_ws_inflater_get(9 + data[0] % 7);
    CHECK(inf != NULL);
    while (rc == 0 && off < zlen) {
        size_t n = piece < zlen - off ? piece : zlen - off;
        rc = px_ws_inflate(inf, data[0] & 1, z + off, n, off + n == zlen, sink, &s);
        off += n;
    }
    CHECK(rc == 0 || rc == -EPROTO || rc == -EMSGSIZE);
    CHECK(s.len <= LIMIT);
    px_ws_inflater_put(inf);

    /* the compressor's output inflates back to its input */
    packed_len = px_ws_deflate(9 + data[0] % 7, data[0] % 10, z, zlen, &packed);
    CHECK(packed_len > 0);
    inf = px_ws_inflater_get(15);
    CHECK(inf != NULL);
    s.len = 0;
    rc = px_ws_inflate(inf, false, packed, (size_t)packed_len, true, sink, &s);
    CHECK(zlen > LIMIT ? rc == -EMSGSIZE
                       : (rc == 0 && s.len == zlen && memcmp(s.out, z, zlen) == 0));
    px_ws_inflater_free(inf);
    return 0;
}
