/*
 * libFuzzer target for chunked request bodies: px_http_chunked_decode and the
 * server's dropping of bodies nothing takes (px__http_drop, src/http/early.c).
 *
 * The first two input bytes give the body limit (little-endian; 0xffff: the
 * default 1 MiB), the rest is the body as sent, and whatever follows it. The
 * body is decoded three ways: whole, a byte at a time, and in pseudo-random
 * reads of 1 to 64 bytes; and dropped the same three ways. The results must
 * agree exactly (verdict, status, decoded bytes, where the body ended), and
 * the limits must hold: decoded bytes within max_body, bytes read as sent
 * within px_http_chunked_raw_max, the leftover inside the last read. Any
 * violation traps.
 */
#include "px/http_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/http/early.h"

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

typedef struct outcome {
    int verdict;       /* PX_HTTP_INCOMPLETE, PX_HTTP_ERROR or 0: ended */
    int status;        /* on PX_HTTP_ERROR */
    size_t end;        /* ended: the offset right after the body */
    uint64_t total;    /* decoded bytes */
    uint64_t body_sum; /* a hash of them */
} outcome_t;

static uint64_t mix(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3u;
    return h;
}

/* Next read length from the generator x (0: the whole rest, 1: one byte). */
static size_t next_read(uint64_t *x, int how, size_t left)
{
    size_t n;
    if (how == 0)
        return left;
    if (how == 1)
        return 1;
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    n = 1 + (size_t)(*x % 64);
    return n < left ? n : left;
}

static outcome_t decode(const char *in, size_t n, uint64_t max_body, int how, uint64_t seed)
{
    outcome_t o = {PX_HTTP_INCOMPLETE, 0, 0, 0, 0xcbf29ce484222325u};
    px_http_chunked_t d;
    char *buf = malloc(n ? n : 1);
    size_t pos = 0;

    CHECK(buf != NULL);
    px_http_chunked_init(&d, max_body);
    while (pos < n) {
        size_t piece = next_read(&seed, how, n - pos), len = piece;
        int r;
        memcpy(buf, in + pos, piece);
        r = px_http_chunked_decode(&d, buf, &len);
        CHECK(d.total <= d.max_body);
        /* the byte over the raw limit is counted, then refused */
        CHECK(d.raw <= px_http_chunked_raw_max(max_body) ||
              (r == PX_HTTP_ERROR && d.status == 413 &&
               d.raw == px_http_chunked_raw_max(max_body) + 1));
        if (r == PX_HTTP_ERROR) {
            CHECK(d.status == 400 || d.status == 413);
            o.verdict = r;
            o.status = d.status;
            break;
        }
        CHECK(len <= piece);
        o.body_sum = mix(o.body_sum, buf, len);
        if (r >= 0) {
            CHECK((size_t)r <= piece - len);
            /* the leftover is the last r bytes of the read, untouched */
            CHECK(memcmp(buf + piece - (size_t)r, in + pos + piece - (size_t)r, (size_t)r) == 0);
            o.verdict = 0;
            o.end = pos + piece - (size_t)r;
            /* once ended, everything is leftover */
            len = 3;
            CHECK(px_http_chunked_decode(&d, buf, &len) == 3 && len == 0);
            break;
        }
        CHECK(r == PX_HTTP_INCOMPLETE);
        pos += piece;
    }
    o.total = d.total;
    free(buf);
    return o;
}

static outcome_t drop(const char *in, size_t n, uint64_t max_body, int how, uint64_t seed)
{
    outcome_t o = {PX_HTTP_INCOMPLETE, 0, 0, 0, 0};
    px_http_request_t req = {.chunked = true, .content_length = -1};
    px__http_drop_t d;
    size_t pos = 0;

    px__http_drop_init(&d, &req, max_body);
    while (pos < n) {
        size_t piece = next_read(&seed, how, n - pos);
        bool done;
        ssize_t took = px__http_drop(&d, in + pos, piece, &done);
        if (took < 0) {
            o.verdict = PX_HTTP_ERROR;
            o.status = d.dec.status;
            break;
        }
        CHECK((size_t)took <= piece);
        CHECK(done || (size_t)took == piece);
        pos += (size_t)took;
        if (done) {
            o.verdict = 0;
            o.end = pos;
            break;
        }
    }
    o.total = d.dec.total;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t max_body = 1048576, seed = 0x9e3779b97f4a7c15u ^ size;
    const char *in = (const char *)data;
    outcome_t ref;

    if (size >= 2) {
        unsigned v = data[0] | (unsigned)data[1] << 8;
        if (v != 0xffff)
            max_body = v;
        in += 2;
        size -= 2;
    }
    for (size_t k = 0; k < size && k < 16; k++)
        seed = (seed ^ (unsigned char)in[k]) * 0x100000001b3u;
    ref = decode(in, size, max_body, 0, seed);
    for (int how = 0; how < 3; how++) {
        outcome_t o = how ? decode(in, size, max_body, how, seed) : ref;
        outcome_t p = drop(in, size, max_body, how, seed);
        CHECK(o.verdict == ref.verdict && o.status == ref.status && o.end == ref.end);
        /* on an error the bytes decoded by the failing call are not handed out */
        CHECK(o.total == ref.total);
        CHECK(o.verdict == PX_HTTP_ERROR || o.body_sum == ref.body_sum);
        /* dropping reads exactly what decoding reads */
        CHECK(p.verdict == ref.verdict && p.status == ref.status && p.end == ref.end);
        CHECK(p.total == ref.total);
    }
    return 0;
}
