/*
 * permessage-deflate (RFC 7692): the offer read and answered, inflating
 * within a sink's limit, deflating with a stream of the sending thread. See
 * include/px/ws_deflate.h.
 */
#define ZLIB_CONST
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "px/common.h"
#include "px/ws_deflate.h"

#define MIN_BITS 9
#define MAX_BITS 15
#define OUT_CHUNK 16384
/* A thread's output buffer above this is given back once a smaller
 * message comes: one big message does not pin its size for good. */
#define KEEP_OUT (256u * 1024)
/* Messages up to this size are remembered with their compressed form: the
 * same message sent again by the thread (a broadcast) is not compressed
 * again. */
#define MEMO_MAX (64u * 1024)

/* ---- negotiation (section 7.1) ------------------------------------------------- */

static unsigned clamp_bits(unsigned bits)
{
    return bits < MIN_BITS ? MIN_BITS : bits > MAX_BITS ? MAX_BITS : bits;
}

typedef struct {
    const char *p, *end;
} cursor_t;

static void skip_space(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static bool is_tchar(char ch)
{
    return ch > ' ' && ch < 127 && strchr("()<>@,;:\\\"/[]?={}", ch) == NULL;
}

static size_t read_token(cursor_t *c, const char **start)
{
    *start = c->p;
    while (c->p < c->end && is_tchar(*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* A parameter's value, a token or a quoted-string, unescaped: its first cap
 * bytes into buf. Its whole length (more than cap: the caller's to refuse),
 * or -1 when malformed. */
static long read_value(cursor_t *c, char *buf, size_t cap)
{
    size_t n = 0;

    if (c->p < c->end && *c->p == '"') {
        for (c->p++; c->p < c->end && *c->p != '"'; c->p++, n++) {
            if (*c->p == '\\' && ++c->p == c->end)
                return -1;
            if (n < cap)
                buf[n] = *c->p;
        }
        if (c->p == c->end)
            return -1;
        c->p++;
        return (long)n;
    }
    for (; c->p < c->end && is_tchar(*c->p); c->p++, n++)
        if (n < cap)
            buf[n] = *c->p;
    return n > 0 ? (long)n : -1;
}

/* A window size 8..15 written without leading zeros; -1 otherwise. */
static int window_bits(const char *s, long n)
{
    if (n == 1 && s[0] >= '8' && s[0] <= '9')
        return s[0] - '0';
    if (n == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5')
        return 10 + s[1] - '0';
    return -1;
}

enum {
    P_SERVER_NCT,
    P_CLIENT_NCT,
    P_SERVER_BITS,
    P_CLIENT_BITS,
    P_COUNT
};
static const char *const PARAM_NAMES[P_COUNT] = {
    "server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
    "client_max_window_bits"};

typedef struct {
    bool seen[P_COUNT];
    int server_bits, client_bits; /* -1: given without a value */
} offer_t;

/* One parameter of an offer (the cursor after its name). 1: recorded; 0: the
 * offer cannot be taken (unknown, repeated, bad value); -1: malformed. */
static int offer_param(cursor_t *c, const char *name, size_t len, offer_t *o)
{
    char value[16];
    long n = -2;
    int i, bits = -1;

    skip_space(c);
    if (c->p < c->end && *c->p == '=') {
        c->p++;
        skip_space(c);
        if ((n = read_value(c, value, sizeof(value))) < 0)
            return -1;
        if (n > (long)sizeof(value))
            n = (long)sizeof(value); /* no valid value is that long */
    }
    for (i = 0; i < P_COUNT; i++)
        if (strlen(PARAM_NAMES[i]) == len && strncasecmp(PARAM_NAMES[i], name, len) == 0)
            break;
    if (i == P_COUNT || o->seen[i])
        return 0;
    o->seen[i] = true;
    if (i == P_SERVER_NCT || i == P_CLIENT_NCT)
        return n == -2; /* these take no value */
    if (n >= 0 && (bits = window_bits(value, n)) < 0)
        return 0;
    if (i == P_SERVER_BITS) {
        if (bits < 0)
            return 0; /* a value is required */
        o->server_bits = bits;
    } else {
        o->client_bits = bits;
    }
    return 1;
}

/* One element of the list (the cursor at its start). 1: an offer of
 * permessage-deflate the server can take, in *o; 0: another extension or
 * one it cannot; -1: malformed. The cursor ends after the element. */
static int list_element(cursor_t *c, offer_t *o)
{
    const char *name;
    size_t len = read_token(c, &name);
    bool ours = len == 18 && strncasecmp(name, "permessage-deflate", 18) == 0, ok = ours;

    if (len == 0)
        return -1;
    memset(o, 0, sizeof(*o));
    for (;;) {
        skip_space(c);
        if (c->p == c->end || *c->p == ',')
            break;
        if (*c->p++ != ';')
            return -1;
        skip_space(c);
        if ((len = read_token(c, &name)) == 0)
            return -1;
        if (ours) {
            int rc = offer_param(c, name, len, o);
            if (rc < 0)
                return -1;
            ok = ok && rc == 1;
        } else {
            skip_space(c);
            if (c->p < c->end && *c->p == '=' && (c->p++, skip_space(c), 1) &&
                read_value(c, NULL, 0) < 0)
                return -1;
        }
    }
    /* zlib cannot compress with a 256-byte window: an offer asking it is
     * declined (section 7.1.2.1 lets a server decline) */
    return ok && !(o->seen[P_SERVER_BITS] && o->server_bits == 8);
}

static void answer_of(const offer_t *o, const px_ws_deflate_policy_t *policy,
                      px_ws_deflate_params_t *out, char *answer)
{
    unsigned policy_bits = policy->window_bits ? clamp_bits(policy->window_bits) : MAX_BITS;
    int n;

    out->client_context = policy->client_context && !o->seen[P_CLIENT_NCT];
    out->server_bits = (uint8_t)(o->seen[P_SERVER_BITS] ? o->server_bits : MAX_BITS);
    out->inflate_bits = MAX_BITS;
    n = snprintf(answer, PX_WS_DEFLATE_ANSWER, "permessage-deflate; server_no_context_takeover%s",
                 out->client_context ? "" : "; client_no_context_takeover");
    if (o->seen[P_SERVER_BITS])
        n += snprintf(answer + n, (size_t)(PX_WS_DEFLATE_ANSWER - n), "; server_max_window_bits=%d",
                      o->server_bits);
    if (o->seen[P_CLIENT_BITS]) {
        unsigned bits = o->client_bits > 0 ? PX_MIN((unsigned)o->client_bits, policy_bits)
                                           : policy_bits;
        /* a larger window inflates a smaller one's output: never below 9 */
        out->inflate_bits = (uint8_t)PX_MAX(bits, (unsigned)MIN_BITS);
        if (bits < MAX_BITS)
            snprintf(answer + n, (size_t)(PX_WS_DEFLATE_ANSWER - n), "; client_max_window_bits=%u",
                     bits);
    }
}

int px_ws_deflate_negotiate(const px_http_request_t *req, const px_ws_deflate_policy_t *policy,
                            px_ws_deflate_params_t *out, char answer[PX_WS_DEFLATE_ANSWER])
{
    for (size_t i = 0; i < req->num_headers; i++) {
        px_view_t name = req->headers[i].name, v = req->headers[i].value;
        cursor_t c = {v.base, v.base + v.len};

        if (!(name.len == 24 && strncasecmp(name.base, "sec-websocket-extensions", 24) == 0))
            continue;
        for (;;) {
            offer_t o;
            int rc;

            while (c.p < c.end && (*c.p == ' ' || *c.p == '\t' || *c.p == ','))
                c.p++;
            if (c.p == c.end)
                break;
            if ((rc = list_element(&c, &o)) < 0)
                return 0; /* a malformed header: nothing in it is trusted */
            if (rc == 1) {
                answer_of(&o, policy, out, answer);
                return 1;
            }
        }
    }
    return 0;
}

/* ---- per-thread streams --------------------------------------------------------- */

struct px_ws_inflater {
    z_stream z;
    unsigned bits;
    bool ended; /* the stream's final block is in: only our tail may follow */
};

/* What a thread keeps: one idle inflater, one compressor (about 256 KiB at
 * 15 bits; remade in the rare case a client asks for another window) and
 * its output buffer. Freed when the thread ends (idle hand-off threads end
 * after pool_idle_ms). */
typedef struct {
    px_ws_inflater_t *idle;
    z_stream *deflater;
    unsigned deflater_bits;
    int deflater_level;
    uint8_t *out;
    size_t out_cap;
    uint8_t *memo;      /* the last message compressed (<= MEMO_MAX) */
    size_t memo_len;    /* its length; its compressed form is in out */
    size_t memo_out;    /* the compressed length */
    unsigned memo_bits; /* the window and level it was compressed with */
    int memo_level;
    bool memo_valid;
} thread_zlib_t;

static pthread_key_t zlib_key;
static bool zlib_key_ok;
static pthread_once_t zlib_once = PTHREAD_ONCE_INIT;

static void deflater_free(thread_zlib_t *t)
{
    if (t->deflater != NULL) {
        deflateEnd(t->deflater);
        free(t->deflater);
        t->deflater = NULL;
    }
}

static void thread_zlib_free(void *arg)
{
    thread_zlib_t *t = arg;

    px_ws_inflater_free(t->idle);
    deflater_free(t);
    free(t->out);
    free(t->memo);
    free(t);
}

static void make_key(void)
{
    zlib_key_ok = pthread_key_create(&zlib_key, thread_zlib_free) == 0;
}

/* This thread's state; NULL without memory (then nothing is kept: each
 * message gets a fresh inflater and goes out uncompressed). */
static thread_zlib_t *thread_zlib(void)
{
    thread_zlib_t *t;

    pthread_once(&zlib_once, make_key);
    if (!zlib_key_ok)
        return NULL;
    t = pthread_getspecific(zlib_key);
    if (t == NULL && (t = calloc(1, sizeof(*t))) != NULL && pthread_setspecific(zlib_key, t) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

/* ---- inflating ------------------------------------------------------------------- */

px_ws_inflater_t *px_ws_inflater_get(unsigned bits)
{
    thread_zlib_t *t = thread_zlib();
    px_ws_inflater_t *inf;

    bits = clamp_bits(bits);
    if (t != NULL && (inf = t->idle) != NULL) {
        t->idle = NULL;
        if (inf->bits != bits) {
            if (inflateReset2(&inf->z, -(int)bits) != Z_OK) {
                px_ws_inflater_free(inf);
                return NULL;
            }
            inf->bits = bits;
        }
        return inf;
    }
    if ((inf = calloc(1, sizeof(*inf))) == NULL)
        return NULL;
    if (inflateInit2(&inf->z, -(int)bits) != Z_OK) {
        free(inf);
        return NULL;
    }
    inf->bits = bits;
    return inf;
}

void px_ws_inflater_free(px_ws_inflater_t *inf)
{
    if (inf == NULL)
        return;
    inflateEnd(&inf->z);
    free(inf);
}

void px_ws_inflater_put(px_ws_inflater_t *inf)
{
    thread_zlib_t *t;

    if (inf == NULL)
        return;
    t = thread_zlib();
    if (t != NULL && t->idle == NULL && inflateReset(&inf->z) == Z_OK) {
        inf->ended = false;
        t->idle = inf;
        return;
    }
    px_ws_inflater_free(inf);
}

size_t px_ws_inflater_size(unsigned bits)
{
    /* zlib's inflate state is about 7 KiB, its window 2^bits */
    return sizeof(px_ws_inflater_t) + 7 * 1024 + ((size_t)1 << clamp_bits(bits));
}

static int inflate_some(px_ws_inflater_t *inf, const uint8_t *in, size_t len, bool tail,
                        px_ws_sink_fn sink, void *arg)
{
    char out[OUT_CHUNK];

    inf->z.next_in = in;
    inf->z.avail_in = (uInt)len;
    for (;;) {
        int zr, rc;
        size_t n;

        if (inf->ended) /* after the final block: only the tail we add */
            return inf->z.avail_in == 0 || tail ? 0 : -EPROTO;
        inf->z.next_out = (Bytef *)out;
        inf->z.avail_out = sizeof(out);
        zr = inflate(&inf->z, Z_SYNC_FLUSH);
        n = sizeof(out) - inf->z.avail_out;
        if (zr == Z_STREAM_END)
            inf->ended = true;
        else if (zr == Z_MEM_ERROR)
            return -ENOMEM;
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return -EPROTO;
        if (n > 0 && (rc = sink(arg, out, n)) < 0)
            return rc;
        if (inf->z.avail_in == 0 && inf->z.avail_out > 0)
            return 0;
        if (zr == Z_BUF_ERROR && n == 0)
            return -EPROTO; /* no progress with input and room: cannot be */
    }
}

int px_ws_inflate(px_ws_inflater_t *inf, bool keep_context, const void *in, size_t len, bool fin,
                  px_ws_sink_fn sink, void *arg)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    int rc = 0;

    /* uInt is 32 bits: feed a long piece in parts */
    while (rc == 0 && len > 0) {
        size_t k = PX_MIN(len, (size_t)1 << 30);
        rc = inflate_some(inf, in, k, false, sink, arg);
        in = (const uint8_t *)in + k;
        len -= k;
    }
    if (rc == 0 && fin)
        rc = inflate_some(inf, tail, sizeof(tail), true, sink, arg);
    /* The tail completes an empty stored block: after it inflate must stand
     * between blocks (zlib's data_type 128), or the message was cut inside
     * one and the tail became part of its data. */
    if (rc == 0 && fin && !inf->ended && !(inf->z.data_type & 128))
        rc = -EPROTO;
    if (rc < 0 || (fin && (!keep_context || inf->ended))) {
        /* a new message starts a new stream (also after a final block, even
         * with the context kept: the client has ended its stream); after an
         * error the stream is dropped by the caller anyway */
        if (inflateReset(&inf->z) != Z_OK && rc == 0)
            rc = -ENOMEM;
        inf->ended = false;
    }
    return rc;
}

/* ---- deflating ------------------------------------------------------------------- */

static z_stream *thread_deflater(thread_zlib_t *t, unsigned bits, int level)
{
    z_stream *z = t->deflater;

    if (z != NULL && t->deflater_bits != bits)
        deflater_free(t);
    if ((z = t->deflater) == NULL) {
        if ((z = calloc(1, sizeof(*z))) == NULL)
            return NULL;
        if (deflateInit2(z, level, Z_DEFLATED, -(int)bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return NULL;
        }
        t->deflater = z;
        t->deflater_bits = bits;
        t->deflater_level = level;
        return z;
    }
    if (deflateReset(z) != Z_OK)
        return NULL;
    if (t->deflater_level != level) {
        if (deflateParams(z, level, Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        t->deflater_level = level;
    }
    return z;
}

/* Keep a copy of a short message beside its compressed form in t->out. */
static void remember(thread_zlib_t *t, const void *in, size_t len, unsigned bits, int level,
                     size_t out_len)
{
    if (len > MEMO_MAX)
        return;
    if (t->memo == NULL && (t->memo = malloc(MEMO_MAX)) == NULL)
        return;
    memcpy(t->memo, in, len);
    t->memo_len = len;
    t->memo_out = out_len;
    t->memo_bits = bits;
    t->memo_level = level;
    t->memo_valid = true;
}

ssize_t px_ws_deflate(unsigned bits, int level, const void *in, size_t len, const uint8_t **out)
{
    thread_zlib_t *t = thread_zlib();
    z_stream *z;
    size_t need;

    /* zlib counts in 32 bits: longer messages go out uncompressed */
    if (t == NULL || len > UINT32_MAX / 2)
        return -ENOMEM;
    level = level >= 1 && level <= 9 ? level : Z_DEFAULT_COMPRESSION;
    bits = clamp_bits(bits);
    /* the same message again (a broadcast from this thread): the same output,
     * since each message is compressed from a fresh stream */
    if (t->memo_valid && t->memo_len == len && t->memo_bits == bits && t->memo_level == level &&
        memcmp(t->memo, in, len) == 0) {
        *out = t->out;
        return (ssize_t)t->memo_out;
    }
    t->memo_valid = false;
    if ((z = thread_deflater(t, bits, level)) == NULL)
        return -ENOMEM;
    /* the bound of one call, and a sync flush's empty block */
    need = deflateBound(z, (uLong)len) + 16;
    if (need > t->out_cap || (t->out_cap > KEEP_OUT && need <= KEEP_OUT)) {
        size_t cap = PX_MAX(need, (size_t)OUT_CHUNK);
        uint8_t *p = realloc(t->out, cap);

        if (p == NULL)
            return -ENOMEM;
        t->out = p;
        t->out_cap = cap;
    }
    z->next_in = in;
    z->avail_in = (uInt)len;
    z->next_out = t->out;
    z->avail_out = (uInt)PX_MIN(t->out_cap, (size_t)UINT32_MAX);
    if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in != 0 || z->avail_out == 0)
        return -ENOMEM;
    need = t->out_cap - z->avail_out;
    need = need >= 4 ? need - 4 : need; /* section 7.2.1: 00 00 ff ff not sent */
    *out = t->out;
    remember(t, in, len, bits, level, need);
    return (ssize_t)need;
}
