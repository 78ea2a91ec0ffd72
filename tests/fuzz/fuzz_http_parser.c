/*
 * libFuzzer target for the HTTP/1.x request parser and the chunked decoder.
 *
 * The input is a byte stream in which the line "--MARK--" (with a newline on
 * both sides) separates successive reads. The stream is served three ways, as a
 * server would: read by read (parse after every read, decode chunked bodies, skip
 * Content-Length bodies, continue with the pipelined rest), all at once, and in
 * pseudo-random small reads; each twice, with default and with tiny limits.
 * Everything the parser reports is hashed; the three ways must agree exactly,
 * and every view must lie inside the request it came from. Any disagreement
 * traps.
 */
#include "px/http_parser.h"
#include "px/http_path.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NHDR 100

static const char mark[] = "\n--MARK--\n";

typedef struct trace {
    uint64_t h;
} trace_t;

static void mix(trace_t *t, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        t->h = (t->h ^ b[i]) * 0x100000001b3u;
}

static void mix_u64(trace_t *t, uint64_t v)
{
    mix(t, &v, sizeof(v));
}

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

/* A view as its offset in the stream (the same in every run), checked to lie
 * inside the head [lo, hi). Views that are not into the buffer (empty ones and
 * the static "/" of an absolute-form target without a path) hash apart. */
static void mix_view(trace_t *t, px_view_t v, const char *buf, const char *lo, const char *hi)
{
    uintptr_t b = (uintptr_t)v.base;
    if (b >= (uintptr_t)lo && b <= (uintptr_t)hi) {
        CHECK(v.base + v.len <= hi);
        mix_u64(t, (uint64_t)(v.base - buf));
    } else {
        CHECK(v.base == NULL ? v.len == 0 : (v.len == 1 && v.base[0] == '/'));
        mix_u64(t, v.base == NULL ? UINT64_MAX : UINT64_MAX - 1);
    }
    mix_u64(t, v.len);
}

static void mix_head(trace_t *t, int r, const px_http_request_t *q, const px_http_header_t *h,
                     const char *buf, size_t pos)
{
    mix_u64(t, (uint64_t)(int64_t)r);
    mix_u64(t, (uint64_t)q->status);
    if (r < 0) {
        static const int ok[] = {400, 413, 414, 417, 431, 501, 505};
        bool found = false;
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
            found |= q->status == ok[i];
        CHECK(found);
        return;
    }
    const char *lo = buf + pos, *hi = buf + pos + (size_t)r;
    CHECK(q->status == 0 && q->num_headers <= NHDR);
    CHECK(q->minor_version == 0 || q->minor_version == 1);
    mix_view(t, q->method, buf, lo, hi);
    mix_view(t, q->target, buf, lo, hi);
    mix_view(t, q->path, buf, lo, hi);
    mix_view(t, q->query, buf, lo, hi);
    mix_view(t, q->host, buf, lo, hi);
    CHECK(q->method.len > 0 && q->target.len > 0);
    mix_u64(t, (uint64_t)q->minor_version);
    mix_u64(t, q->num_headers);
    for (size_t i = 0; i < q->num_headers; i++) {
        CHECK(h[i].name.len > 0);
        mix_view(t, h[i].name, buf, lo, hi);
        mix_view(t, h[i].value, buf, lo, hi);
    }
    mix_u64(t, (uint64_t)q->content_length);
    CHECK(!(q->chunked && q->content_length >= 0));
    CHECK(!q->chunked || q->minor_version == 1);
    CHECK(q->has_host || q->minor_version == 0);
    unsigned flags = (unsigned)q->chunked | (unsigned)q->keep_alive << 1 |
                     (unsigned)q->expect_continue << 2 | (unsigned)q->has_host << 3 |
                     (unsigned)q->connection_close << 4 | (unsigned)q->connection_upgrade << 5;
    mix_u64(t, flags);
}

enum {
    M_HEAD,
    M_BODY,
    M_CHUNKED,
    M_DEAD
};

/* Serve stream[0..n) as reads ending at cuts[0..ncuts) (the last is n). */
static uint64_t serve(const char *stream, size_t n, const size_t *cuts, size_t ncuts,
                      const px_http_limits_t *lim)
{
    trace_t t = {0xcbf29ce484222325u}, body = {0};
    char *buf = malloc(n ? n : 1);
    px_http_header_t hdrs[NHDR];
    px_http_request_t req;
    px_http_chunked_t dec;
    size_t have = 0, pos = 0;
    uint64_t left = 0;
    int mode = M_HEAD, r;

    CHECK(buf != NULL);
    for (size_t c = 0; c < ncuts && mode != M_DEAD; c++) {
        memcpy(buf + have, stream + have, cuts[c] - have);
        have = cuts[c];
        while (mode != M_DEAD) {
            if (mode == M_HEAD) {
                req.headers = hdrs;
                req.num_headers = NHDR;
                r = px_http_parse_request(buf + pos, have - pos, &req, lim);
                if (r == PX_HTTP_INCOMPLETE) {
                    CHECK(req.status == 0);
                    break;
                }
                CHECK(r == PX_HTTP_ERROR || (r > 0 && (size_t)r <= have - pos));
                mix_head(&t, r, &req, hdrs, buf, pos);
                if (r < 0) {
                    mode = M_DEAD;
                    break;
                }
                CHECK(req.content_length <= (int64_t)lim->max_body);
                pos += (size_t)r;
                body.h = 0xcbf29ce484222325u;
                if (req.chunked) {
                    px_http_chunked_init(&dec, lim->max_body);
                    mode = M_CHUNKED;
                } else if (req.content_length > 0) {
                    left = (uint64_t)req.content_length;
                    mode = M_BODY;
                }
            } else if (mode == M_BODY) {
                size_t take = have - pos < left ? have - pos : (size_t)left;
                mix(&body, buf + pos, take);
                pos += take;
                left -= take;
                if (left != 0)
                    break;
                mix_u64(&t, body.h);
                mode = M_HEAD;
            } else {
                size_t len = have - pos, old = len;
                if (len == 0)
                    break;
                r = px_http_chunked_decode(&dec, buf + pos, &len);
                if (r == PX_HTTP_ERROR) {
                    CHECK(dec.status == 400 || dec.status == 413);
                    mix_u64(&t, (uint64_t)dec.status);
                    mode = M_DEAD;
                    break;
                }
                CHECK(len <= old && dec.total <= dec.max_body);
                mix(&body, buf + pos, len);
                if (r == PX_HTTP_INCOMPLETE) {
                    pos = have;
                    break;
                }
                CHECK((size_t)r <= old - len);
                mix_u64(&t, dec.total);
                mix_u64(&t, body.h);
                pos = have - (size_t)r;
                mode = M_HEAD;
            }
        }
    }
    mix_u64(&t, (uint64_t)mode);
    mix_u64(&t, mode == M_DEAD ? 0 : pos);
    mix_u64(&t, left);
    if (mode == M_CHUNKED) {
        mix_u64(&t, dec.total);
        mix_u64(&t, body.h);
    }
    free(buf);
    return t.h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char *stream = malloc(size ? size : 1);
    size_t *cuts = malloc((size / (sizeof(mark) - 1) + 2) * sizeof(size_t));
    size_t *rcuts = malloc((size + 1) * sizeof(size_t));
    size_t n = 0, ncuts = 0, i = 0, nr = 0;
    px_http_limits_t lims[2] = {{0}, {64, 256, 8, 64}};

    CHECK(stream != NULL && cuts != NULL && rcuts != NULL);
    px_http_limits_default(&lims[0]);

    /* strip the marks, remembering where each read ends */
    while (i < size) {
        const char *m = memmem(in + i, size - i, mark, sizeof(mark) - 1);
        size_t seg = m ? (size_t)(m - (in + i)) : size - i;
        memcpy(stream + n, in + i, seg);
        n += seg;
        i += seg;
        if (m) {
            i += sizeof(mark) - 1;
            cuts[ncuts++] = n;
        }
    }
    cuts[ncuts++] = n;

    /* small reads of 1 to 32 bytes from a generator seeded by the input */
    uint64_t x = 0x9e3779b97f4a7c15u ^ size;
    for (size_t k = 0; k < size && k < 16; k++)
        x = (x ^ data[k]) * 0x100000001b3u;
    for (size_t p = 0; p < n;) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p += 1 + (size_t)(x % 32);
        rcuts[nr++] = p < n ? p : n;
    }
    if (nr == 0)
        rcuts[nr++] = 0;

    for (int l = 0; l < 2; l++) {
        size_t whole = n;
        uint64_t a = serve(stream, n, cuts, ncuts, &lims[l]);
        uint64_t b = serve(stream, n, &whole, 1, &lims[l]);
        uint64_t c = serve(stream, n, rcuts, nr, &lims[l]);
        CHECK(a == b && b == c);
    }

    /* the path decoder on the same bytes, as a path */
    if (n > 0 && stream[0] == '/') {
        char out[512];
        int r = px_http_path_decode(stream, n < 400 ? n : 400, out, sizeof(out));
        CHECK(r == -EINVAL || r == -ENAMETOOLONG || r > 0);
        if (r > 0) {
            CHECK(out[0] == '/' && out[r] == '\0' && strlen(out) == (size_t)r);
            CHECK(!strstr(out, "//") && !strstr(out, "/./") && !strstr(out, "/../"));
            CHECK(!strchr(out, '\\'));
            CHECK(!(r >= 2 && out[r - 1] == '.' && out[r - 2] == '/'));
            CHECK(!(r >= 3 && memcmp(out + r - 3, "/..", 3) == 0));
        }
    }

    free(rcuts);
    free(cuts);
    free(stream);
    return 0;
}
