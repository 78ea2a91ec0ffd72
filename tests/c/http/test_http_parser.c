/*
 * Checks the strict HTTP/1.x parser: valid requests and their fields, every
 * split point of every input, smuggling and malformed vectors with their exact
 * status, limits, the chunked decoder, path decoding, and guard pages that make
 * any read past the end of the input crash.
 *
 * Run with the argument "bench" to time the parse of a typical browser request.
 */
#include "px/http_parser.h"
#include "px/http_path.h"
#include "px_test.h"

#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct bytes {
    const char *s;
    size_t n;
} bytes_t;

/* clang-format off */
#define B(lit) {(lit), sizeof(lit) - 1}
/* clang-format on */
#define NHDR 128

#define CHECK_VIEW(v, lit)                                                                   \
    do {                                                                                     \
        px_view_t v_ = (v);                                                                  \
        const char *l_ = (lit);                                                              \
        if (v_.len != strlen(l_) || (v_.len && memcmp(v_.base, l_, v_.len) != 0))            \
            PX_FAIL_("%s: \"%.*s\" vs \"%s\"", #v, (int)v_.len, v_.base ? v_.base : "", l_); \
    } while (0)

static int parse(const char *s, size_t n, px_http_request_t *req, px_http_header_t *hdrs,
                 size_t cap, const px_http_limits_t *lim)
{
    memset(req, 0xa5, sizeof(*req)); /* outputs must not depend on old values */
    req->headers = hdrs;
    req->num_headers = cap;
    return px_http_parse_request(s, n, req, lim);
}

/* ---- valid requests ---- */

typedef struct valid_case {
    bytes_t in;
    int head_len; /* see head_len_of */
    const char *method, *target, *path, *query, *host;
    int minor;
    size_t nhdr;
    int64_t cl;
    bool chunked, keep_alive, expect, close, upgrade;
} valid_case_t;

/* clang-format off */
static const valid_case_t valid_cases[] = {
    {B("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 27, "GET", "/", "/", "", "a", 1, 1,
     -1, false, true, false, false, false},
    {B("GET /p/q.html?x=1&y=%20 HTTP/1.1\r\nHost: example.org:8080\r\n"
       "User-Agent: t\t\r\nAccept:*/*\r\nX-Empty:\r\nX-Sp:   \t \r\n\r\n"),
     -1, "GET", "/p/q.html?x=1&y=%20", "/p/q.html", "x=1&y=%20",
     "example.org:8080", 1, 5, -1, false, true, false, false, false},
    {B("POST /form HTTP/1.1\r\nhost: h\r\nCONTENT-LENGTH: 11\r\n\r\nhello world"),
     -11, "POST", "/form", "/form", "", "h", 1, 2, 11, false, true, false,
     false, false},
    {B("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n"),
     -15, "POST", "/up", "/up", "", "h", 1, 2, -1, true, true, false, false,
     false},
    {B("PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n"
       "Expect: 100-Continue\r\nConnection: close\r\n\r\n"),
     -1, "PUT", "/x", "/x", "", "h", 1, 4, -1, true, false, true, true, false},
    /* pipelined: the first head ends where the second request starts */
    {B("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
     28, "GET", "/1", "/1", "", "a", 1, 1, -1, false, true, false, false, false},
    {B("GET http://Example.com:81/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n"), -1,
     "GET", "http://Example.com:81/a/b?c", "/a/b", "c", "Example.com:81", 1, 1,
     -1, false, true, false, false, false},
    {B("GET HTTPS://h?q HTTP/1.1\r\nHost: h\r\n\r\n"), -1, "GET", "HTTPS://h?q",
     "/", "q", "h", 1, 1, -1, false, true, false, false, false},
    {B("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), -1, "OPTIONS", "*", "*", "", "h",
     1, 1, -1, false, true, false, false, false},
    {B("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), -1, "GET", "/", "/",
     "", "", 0, 1, -1, false, true, false, false, false},
    {B("POST / HTTP/1.0\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n"), -1,
     "POST", "/", "/", "", "", 0, 2, -1, false, false, false, false, false},
    {B("GET / HTTP/1.0\r\n\r\n"), -1, "GET", "/", "/", "", "", 0, 0, -1, false,
     false, false, false, false},
    {B("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), -1, "GET", "/",
     "/", "", "", 0, 1, -1, false, false, false, true, false},
    {B("GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive ,\tUpgrade\r\n"
       "Upgrade: websocket\r\n\r\n"),
     -1, "GET", "/chat", "/chat", "", "h", 1, 3, -1, false, true, false, false,
     true},
    {B("M-SEARCH! /?? HTTP/1.1\r\nHost: [::1]:80\r\nX: \x80\xff obs-text\r\n\r\n"),
     -1, "M-SEARCH!", "/??", "/", "?", "[::1]:80", 1, 2, -1, false, true, false,
     false, false},
    {B("POST / HTTP/1.1\r\nHost:\r\nContent-Length: 0000\r\n\r\n"), -1, "POST",
     "/", "/", "", "", 1, 2, 0, false, true, false, false, false},
    {B("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n"), -1,
     "POST", "/", "/", "", "h", 1, 2, 1048576, false, true, false, false, false},
    /* empty lines before the request line are skipped (RFC 9112 section 2.2) */
    {B("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), -1, "GET", "/", "/", "", "a", 1,
     1, -1, false, true, false, false, false},
    {B("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET /8 HTTP/1.0\r\n\r\n"), -1, "GET", "/8",
     "/8", "", "", 0, 0, -1, false, false, false, false, false},
    /* IP literals in absolute-form targets and in Host */
    {B("GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), -1, "GET",
     "http://[::1]:8080/x", "/x", "", "[::1]:8080", 1, 1, -1, false, true, false,
     false, false},
    {B("GET http://[fe80::1%25eth0]?q HTTP/1.1\r\nHost: x\r\n\r\n"), -1, "GET",
     "http://[fe80::1%25eth0]?q", "/", "q", "[fe80::1%25eth0]", 1, 1, -1, false,
     true, false, false, false},
    {B("GET https://[::ffff:127.0.0.1]:/a HTTP/1.1\r\nHost: [v1.x]\r\n\r\n"), -1,
     "GET", "https://[::ffff:127.0.0.1]:/a", "/a", "", "[::ffff:127.0.0.1]:", 1, 1,
     -1, false, true, false, false, false},
    {B("GET http://127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"), -1,
     "GET", "http://127.0.0.1:80", "/", "", "127.0.0.1:80", 1, 1, -1, false, true,
     false, false, false},
};
/* clang-format on */

/* head_len in the table: > 0 exact; -1 the whole input; -k all but k body bytes */
static int head_len_of(const valid_case_t *c)
{
    if (c->head_len > 0)
        return c->head_len;
    if (c->head_len == -1)
        return (int)c->in.n;
    return (int)c->in.n + c->head_len;
}

static void check_valid_fields(const valid_case_t *c, const px_http_request_t *r)
{
    CHECK_VIEW(r->method, c->method);
    CHECK_VIEW(r->target, c->target);
    CHECK_VIEW(r->path, c->path);
    CHECK_VIEW(r->query, c->query);
    CHECK_VIEW(r->host, c->host);
    PX_CHECK_EQ(r->minor_version, c->minor);
    PX_CHECK_EQ(r->num_headers, c->nhdr);
    PX_CHECK_EQ(r->content_length, c->cl);
    PX_CHECK_EQ(r->chunked, c->chunked);
    PX_CHECK_EQ(r->keep_alive, c->keep_alive);
    PX_CHECK_EQ(r->expect_continue, c->expect);
    PX_CHECK_EQ(r->connection_close, c->close);
    PX_CHECK_EQ(r->connection_upgrade, c->upgrade);
    PX_CHECK_EQ(r->status, 0);
}

static void test_valid(void)
{
    px_http_header_t hdrs[NHDR];
    px_http_request_t req;
    for (size_t i = 0; i < PX_ARRAY_SIZE(valid_cases); i++) {
        const valid_case_t *c = &valid_cases[i];
        int r = parse(c->in.s, c->in.n, &req, hdrs, NHDR, NULL);
        if (r != head_len_of(c))
            PX_FAIL_("valid case %zu: %d vs %d", i, r, head_len_of(c));
        check_valid_fields(c, &req);
    }

    /* header views: names as sent, values trimmed */
    const char *s = valid_cases[1].in.s;
    int r = parse(s, strlen(s), &req, hdrs, NHDR, NULL);
    PX_CHECK_GT(r, 0);
    CHECK_VIEW(hdrs[0].name, "Host");
    CHECK_VIEW(hdrs[1].name, "User-Agent");
    CHECK_VIEW(hdrs[1].value, "t");
    CHECK_VIEW(hdrs[2].value, "*/*");
    CHECK_VIEW(hdrs[3].name, "X-Empty");
    CHECK_VIEW(hdrs[3].value, "");
    CHECK_VIEW(hdrs[4].value, "");

    /* the second pipelined request parses from where the first ended */
    const valid_case_t *pc = &valid_cases[5];
    r = parse(pc->in.s + 28, pc->in.n - 28, &req, hdrs, NHDR, NULL);
    PX_CHECK_EQ(r, 28);
    CHECK_VIEW(req.path, "/2");

    /* without a header array the headers are still checked and counted */
    r = parse(s, strlen(s), &req, NULL, 0, NULL);
    PX_CHECK_GT(r, 0);
    PX_CHECK_EQ(req.num_headers, 5);
}

/* ---- malformed and smuggling vectors ---- */

typedef struct bad_case {
    bytes_t in;
    int status;
} bad_case_t;

/* clang-format off */
static const bad_case_t bad_cases[] = {
    /* request line */
    {B("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400}, /* a bare LF line */
    {B("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("\r\n \r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n"), 400}, /* 9 */
    /* CONNECT: no tunnels (501), unless its target is not an authority */
    {B("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), 501},
    {B("CONNECT [::1]:443 HTTP/1.1\r\n"), 501},
    {B("CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("CONNECT a:443 HTTP/2.0\r\n"), 505},
    /* authorities: brackets only around an IP literal, one port of digits */
    {B("GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://a]b[/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://[::1]x/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://[[::1]]/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://[]/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://a:b:c/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://[::1]:8x/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a]\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), 400},
    {B(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GE T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400},
    {B("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET /x#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET ftp://h/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400},   /* bare CR */
    {B("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400},   /* bare LF */
    {B("GET /\r\nHost: a\r\n\r\n"), 400},          /* no version */
    {B("GET / http/1.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/11\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/x.1\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505},
    {B("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505},
    {B("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505},
    {B("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400},
    /* header lines */
    {B("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"), 400},  /* obs-fold */
    {B("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400}, /* space before colon */
    {B("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHo\"st: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nX(y): a\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nX\x80: a\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nContent-Lengthx: 1\r\nTransfer-Encodingx: y\r\n"
       "Content-Lengtx: 1\r\nTransfer-Encodinx: 1\r\n\n"), 400}, /* not special */
    /* Host */
    {B("GET / HTTP/1.1\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400},
    /* Content-Length */
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1.0\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n"), 413},
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"), 413},
    /* Transfer-Encoding */
    {B("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 501},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), 501},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun ked\r\n\r\n"), 400},
    {B("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), 400},
    {B("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n \r\n\r\n"), 400},
    /* Connection, Expect */
    {B("GET / HTTP/1.1\r\nHost: a\r\nConnection: close,,x\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nConnection: close;x\r\n\r\n"), 400},
    {B("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-x\r\n\r\n"), 417},
    {B("GET / HTTP/1.1\r\nHost: a\r\nExpect: 102-processing\r\n\r\n"), 417},
};
/* clang-format on */

static void test_bad(void)
{
    px_http_header_t hdrs[NHDR];
    px_http_request_t req;
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_cases); i++) {
        const bad_case_t *c = &bad_cases[i];
        int r = parse(c->in.s, c->in.n, &req, hdrs, NHDR, NULL);
        if (r != PX_HTTP_ERROR || req.status != c->status)
            PX_FAIL_("bad case %zu (%.*s): %d status %d, want status %d", i,
                     (int)PX_MIN(c->in.n, 60), c->in.s, r, req.status, c->status);
    }
}

/* ---- every split point ---- */

/* Feed every prefix of in: each gives PX_HTTP_INCOMPLETE until some length, and
 * from then on exactly the result (and fields) of the whole input. */
static void check_prefixes(const char *s, size_t n, size_t cap, const px_http_limits_t *lim)
{
    px_http_header_t h1[NHDR], h2[NHDR];
    px_http_request_t whole, part;
    int rw = parse(s, n, &whole, h1, cap, lim);
    PX_CHECK_NE(rw, PX_HTTP_INCOMPLETE);
    bool done = false;
    for (size_t k = 0; k <= n; k++) {
        int r = parse(s, k, &part, h2, cap, lim);
        if (r == PX_HTTP_INCOMPLETE) {
            if (done)
                PX_FAIL_("prefix %zu of \"%.*s\" went back to INCOMPLETE", k, (int)PX_MIN(n, 60),
                         s);
            PX_CHECK_EQ(part.status, 0);
            continue;
        }
        done = true;
        if (r != rw || part.status != whole.status)
            PX_FAIL_("prefix %zu of \"%.*s\": %d/%d vs whole %d/%d", k, (int)PX_MIN(n, 60), s, r,
                     part.status, rw, whole.status);
        if (r > 0) {
            PX_CHECK_LE((size_t)r, k);
            PX_CHECK_EQ(part.num_headers, whole.num_headers);
            PX_CHECK_EQ(part.content_length, whole.content_length);
            PX_CHECK_EQ(part.chunked, whole.chunked);
            PX_CHECK_EQ(part.keep_alive, whole.keep_alive);
            PX_CHECK(part.method.base == whole.method.base);
            PX_CHECK(part.path.len == whole.path.len);
            PX_CHECK(part.query.len == whole.query.len);
            PX_CHECK(part.host.base == whole.host.base);
            for (size_t i = 0; i < whole.num_headers; i++) {
                PX_CHECK(h1[i].name.base == h2[i].name.base);
                PX_CHECK(h1[i].value.len == h2[i].value.len);
            }
        }
    }
    PX_CHECK(done);
}

static void test_incremental(void)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(valid_cases); i++)
        check_prefixes(valid_cases[i].in.s, valid_cases[i].in.n, NHDR, NULL);
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_cases); i++)
        check_prefixes(bad_cases[i].in.s, bad_cases[i].in.n, NHDR, NULL);

    /* errors are reported on the byte that makes them certain */
    px_http_request_t req;
    px_http_header_t h[4];
    PX_CHECK_EQ(parse("G\x01", 2, &req, h, 4, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(parse("\r", 1, &req, h, 4, NULL), PX_HTTP_INCOMPLETE); /* an empty line? */
    PX_CHECK_EQ(parse("\r\r", 2, &req, h, 4, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(parse("\n", 1, &req, h, 4, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(parse("GET / HTTP/1.1\r\n ", 17, &req, h, 4, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(parse("GET / HTTP/1.1\r\nA:\x01", 19, &req, h, 4, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(parse("", 0, &req, h, 4, NULL), PX_HTTP_INCOMPLETE);
}

/* ---- limits ---- */

static char big[70000];

static size_t fill_line(size_t target_len)
{
    /* "GET /aaaa HTTP/1.1" of exactly target_len bytes before its CRLF */
    size_t n = 0;
    memcpy(big, "GET /", 5);
    n = 5;
    while (n < target_len - 9)
        big[n++] = 'a';
    memcpy(big + n, " HTTP/1.1", 9);
    return n + 9;
}

static void test_limits(void)
{
    px_http_header_t hdrs[NHDR];
    px_http_request_t req;
    px_http_limits_t lim;
    px_http_limits_default(&lim);
    PX_CHECK_EQ(lim.max_request_line, 8192);
    PX_CHECK_EQ(lim.max_header_bytes, 16384);
    PX_CHECK_EQ(lim.max_headers, 100);
    PX_CHECK_EQ(lim.max_body, 1048576);

    /* request line of exactly the limit is fine, one more byte is 414 at once */
    size_t n = fill_line(8192);
    memcpy(big + n, "\r\nHost: a\r\n\r\n", 13);
    PX_CHECK_EQ(parse(big, n + 13, &req, hdrs, NHDR, NULL), (int)(n + 13));
    PX_CHECK_EQ(parse(big, 8192, &req, hdrs, NHDR, NULL), PX_HTTP_INCOMPLETE);
    n = fill_line(9000);
    PX_CHECK_EQ(parse(big, 8192, &req, hdrs, NHDR, NULL), PX_HTTP_INCOMPLETE);
    PX_CHECK_EQ(parse(big, 8193, &req, hdrs, NHDR, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 414);
    memset(big, 'A', 9000); /* even a line of method characters */
    PX_CHECK_EQ(parse(big, 8193, &req, hdrs, NHDR, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 414);
    check_prefixes(big, 9000, NHDR, NULL);

    /* a request line longer than the head limit hits the head limit first */
    lim.max_header_bytes = 100;
    fill_line(200);
    PX_CHECK_EQ(parse(big, 101, &req, hdrs, NHDR, &lim), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 431);
    px_http_limits_default(&lim);

    /* too many headers: 431 as soon as the 101st line starts */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < 100; i++)
        n += (size_t)sprintf(big + n, "X-%d: v\r\n", i);
    memcpy(big + n, "\r\n", 2);
    PX_CHECK_EQ(parse(big, n + 2, &req, hdrs, NHDR, NULL), (int)(n + 2));
    PX_CHECK_EQ(req.num_headers, 100);
    memcpy(big + n, "Y", 1);
    PX_CHECK_EQ(parse(big, n + 1, &req, hdrs, NHDR, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 431);
    /* ... or past the caller's capacity */
    PX_CHECK_EQ(parse(big, n + 1, &req, hdrs, 10, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 431);
    PX_CHECK_EQ(req.num_headers, 10);

    /* a head of exactly max_header_bytes passes; 431 on the first byte over */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    while (n < 16384 - 4)
        big[n++] = 'v';
    memcpy(big + n, "\r\n\r\n", 4);
    PX_CHECK_EQ(parse(big, 16384, &req, hdrs, NHDR, NULL), 16384);
    memset(big + 16380, 'v', 30);
    PX_CHECK_EQ(parse(big, 16384, &req, hdrs, NHDR, NULL), PX_HTTP_INCOMPLETE);
    PX_CHECK_EQ(parse(big, 16385, &req, hdrs, NHDR, NULL), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 431);
    check_prefixes(big, 16400, NHDR, NULL);

    /* smaller limits, and the body limit */
    lim.max_body = 10;
    const char *cl = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
    PX_CHECK_GT(parse(cl, strlen(cl), &req, hdrs, NHDR, &lim), 0);
    cl = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    PX_CHECK_EQ(parse(cl, strlen(cl), &req, hdrs, NHDR, &lim), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 413);
    lim.max_headers = 0;
    cl = "GET / HTTP/1.0\r\n\r\n";
    PX_CHECK_GT(parse(cl, strlen(cl), &req, hdrs, NHDR, &lim), 0);
    cl = "GET / HTTP/1.0\r\nX: y\r\n\r\n";
    PX_CHECK_EQ(parse(cl, strlen(cl), &req, hdrs, NHDR, &lim), PX_HTTP_ERROR);
    PX_CHECK_EQ(req.status, 431);
    check_prefixes(cl, strlen(cl), NHDR, &lim);
}

/* ---- chunked bodies ---- */

typedef struct chunk_case {
    bytes_t in;
    int status;           /* 0 when valid */
    const char *body;     /* decoded, when valid */
    const char *leftover; /* bytes after the body, when valid */
    uint64_t max_body;    /* 0: 1 MiB */
} chunk_case_t;

/* clang-format off */
static const chunk_case_t chunk_cases[] = {
    {B("5\r\nhello\r\n0\r\n\r\n"), 0, "hello", "", 0},
    {B("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 0,
     "hello world", "GET / HTTP/1.1\r\n", 0},
    {B("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"), 0,
     "0123456789abcdefghij", "", 0},
    {B("0000000000000005\r\nhello\r\n00\r\n\r\nX"), 0, "hello", "X", 0},
    {B("5;foo\r\nhello\r\n0;a=b;c=\"q \\\"x\\\\ \t\x80\";d\r\n\r\n"), 0, "hello",
     "", 0},
    {B("3\r\n\r\n\n\r\n0\r\nX-Trailer: v\r\nEmpty:\r\n\r\n\r\n"), 0, "\r\n\n",
     "\r\n", 0},
    {B("0\r\n\r\n"), 0, "", "", 0},
    {B("1;a=\"\"\r\nx\r\n0;b=\"c\";d\r\n\r\n"), 0, "x", "", 0},
    {B("a\r\n0123456789\r\n0\r\n\r\n"), 0, "0123456789", "", 10},
    /* BWS around ';' and '=' (RFC 9112 section 7.1.1) */
    {B("5 ;a\r\nhello\r\n0\t;b=c\r\n\r\n"), 0, "hello", "", 0},
    {B("5 \t ; a = b ;\tc= \"d\" ;e\r\nhello\r\n0\r\n\r\n"), 0, "hello", "", 0},
    {B("5; a\r\nhello\r\n0\r\n\r\n"), 0, "hello", "", 0},
    {B("5;a =b\r\nhello\r\n0\r\n\r\n"), 0, "hello", "", 0},
    {B("5;a= b\r\nhello\r\n0\r\n\r\n"), 0, "hello", "", 0},
    /* malformed sizes */
    {B("0x5\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("-1\r\n"), 400, NULL, NULL, 0},
    {B("+1\r\n"), 400, NULL, NULL, 0},
    {B("5 \r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B(" 5\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5\t\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("00000000000000005\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("g\r\n"), 400, NULL, NULL, 0},
    /* bare CR / LF, data not followed by exactly CRLF */
    {B("5\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5\rhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5\r\nhelloX\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5\r\nhello\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5\r\nhello\r0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5\r\nhello\r\n0\r\n\n"), 400, NULL, NULL, 0},
    {B("5\r\nhello\r\n0\n\r\n"), 400, NULL, NULL, 0},
    {B("5\r\nhello\r\n0\r\n\rX"), 400, NULL, NULL, 0},
    /* extensions */
    {B("5;\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5 ; \r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a \r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=b \r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=\"b\" \r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a = \r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5 a\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5 \n;a\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5\v;a\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;=b\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=b c\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=\"b\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a;\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=b=c\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n"), 400, NULL, NULL, 0},
    {B("0\r\nX: a\rY: b\r\n\r\n"), 400, NULL, NULL, 0},
    /* trailers */
    {B("0\r\nX: a\r\n b\r\n\r\n"), 400, NULL, NULL, 0},
    {B("0\r\n X: a\r\n\r\n"), 400, NULL, NULL, 0},
    {B("0\r\nX : a\r\n\r\n"), 400, NULL, NULL, 0},
    {B("0\r\n: a\r\n\r\n"), 400, NULL, NULL, 0},
    {B("0\r\nX\r\n\r\n"), 400, NULL, NULL, 0},
    {B("0\r\nX: a\x7f\r\n\r\n"), 400, NULL, NULL, 0},
    {B("0\r\nX: a\nY: b\r\n\r\n"), 400, NULL, NULL, 0},
    /* body limit */
    {B("b\r\nhello world\r\n0\r\n\r\n"), 413, NULL, NULL, 10},
    {B("6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"), 413, NULL, NULL, 10},
    {B("FFFFFFFFFFFFFFFF\r\n"), 413, NULL, NULL, 0},
    {B("100001\r\n"), 413, NULL, NULL, 0},
};
/* clang-format on */

/* Decode in pieces: the input cut at cut1 and cut2 (each <= n), or one byte at
 * a time when step is set. Gathers the body, the leftover and the result. */
static int decode_pieces(const chunk_case_t *c, size_t cut1, size_t cut2, bool step, char *body,
                         size_t *body_len, char *left, size_t *left_len, int *status)
{
    px_http_chunked_t d;
    char tmp[1024];
    size_t pos = 0, n = c->in.n;
    int r = PX_HTTP_INCOMPLETE;
    px_http_chunked_init(&d, c->max_body ? c->max_body : 1048576);
    PX_CHECK_EQ(d.total, 0);
    *body_len = *left_len = 0;
    PX_CHECK_LE(n, sizeof(tmp));
    while (pos < n) {
        size_t piece = step ? 1 : pos < cut1 ? cut1 - pos : pos < cut2 ? cut2 - pos : n - pos;
        size_t len = piece;
        memcpy(tmp, c->in.s + pos, piece);
        r = px_http_chunked_decode(&d, tmp, &len);
        if (r == PX_HTTP_ERROR)
            break;
        PX_CHECK_LE(len, piece);
        memcpy(body + *body_len, tmp, len);
        *body_len += len;
        pos += piece;
        if (r >= 0) {
            PX_CHECK_LE((size_t)r, piece);
            memcpy(left, tmp + piece - (size_t)r, (size_t)r);
            *left_len = (size_t)r;
            /* everything after the end is leftover, in later calls too */
            memcpy(left + *left_len, c->in.s + pos, n - pos);
            *left_len += n - pos;
            len = n - pos;
            memcpy(tmp, c->in.s + pos, len);
            PX_CHECK_EQ(px_http_chunked_decode(&d, tmp, &len), (int)(n - pos));
            PX_CHECK_EQ(len, 0);
            break;
        }
    }
    if (r != PX_HTTP_ERROR) /* on errors *len is left alone */
        PX_CHECK_EQ(d.total, *body_len);
    *status = d.status;
    if (r == PX_HTTP_ERROR) {
        size_t len = 1;
        tmp[0] = '0';
        PX_CHECK_EQ(px_http_chunked_decode(&d, tmp, &len), PX_HTTP_ERROR);
    }
    return r;
}

static void check_chunk_result(const chunk_case_t *c, size_t i, int r, const char *body,
                               size_t body_len, const char *left, size_t left_len, int status)
{
    if (c->status) {
        if (r != PX_HTTP_ERROR || status != c->status)
            PX_FAIL_("chunk case %zu: %d status %d, want %d", i, r, status, c->status);
        return;
    }
    if (r < 0)
        PX_FAIL_("chunk case %zu: %d status %d", i, r, status);
    PX_CHECK_EQ(body_len, strlen(c->body));
    PX_CHECK_MEM(body, c->body, body_len);
    PX_CHECK_EQ(left_len, strlen(c->leftover));
    PX_CHECK_MEM(left, c->leftover, left_len);
}

static void test_chunked(void)
{
    char body[1024], left[1024];
    size_t bl, ll;
    int st, r;
    for (size_t i = 0; i < PX_ARRAY_SIZE(chunk_cases); i++) {
        const chunk_case_t *c = &chunk_cases[i];
        size_t n = c->in.n;
        r = decode_pieces(c, n, n, false, body, &bl, left, &ll, &st);
        check_chunk_result(c, i, r, body, bl, left, ll, st);
        r = decode_pieces(c, 0, 0, true, body, &bl, left, &ll, &st);
        check_chunk_result(c, i, r, body, bl, left, ll, st);
        for (size_t a = 0; a <= n; a++) {
            r = decode_pieces(c, a, n, false, body, &bl, left, &ll, &st);
            check_chunk_result(c, i, r, body, bl, left, ll, st);
            for (size_t b = a; b <= n && n < 40; b++) {
                r = decode_pieces(c, a, b, false, body, &bl, left, &ll, &st);
                check_chunk_result(c, i, r, body, bl, left, ll, st);
            }
        }
    }

    /* an endless chunk line or trailer section is cut off: a chunk line's
     * extensions may take 1 KiB (with the CR), one byte more is a 400 */
    px_http_chunked_t d;
    size_t len;
    static char ext[8192];
    memcpy(ext, "1;a=", 4);
    memset(ext + 4, 'x', sizeof(ext) - 4);
    px_http_chunked_init(&d, 1048576);
    len = 1000;
    PX_CHECK_EQ(px_http_chunked_decode(&d, ext, &len), PX_HTTP_INCOMPLETE);
    len = 4000;
    memset(ext, 'x', 4000);
    PX_CHECK_EQ(px_http_chunked_decode(&d, ext, &len), PX_HTTP_ERROR);
    PX_CHECK_EQ(d.status, 400);
    for (size_t name = 1023; name <= 1024; name++) { /* the name and the CR */
        px_http_chunked_init(&d, 1048576);
        memcpy(ext, "1;", 2);
        memset(ext + 2, 'e', name);
        len = 2 + name + (size_t)sprintf(ext + 2 + name, "\r\nx\r\n0\r\n\r\n");
        r = px_http_chunked_decode(&d, ext, &len);
        PX_CHECK_EQ(r, name == 1023 ? 0 : PX_HTTP_ERROR);
        PX_CHECK_EQ(d.status, name == 1023 ? 0 : 400);
    }
    px_http_chunked_init(&d, 1048576);
    for (int i = 0; i < 5; i++) {
        len = (size_t)sprintf(ext, "%s", i == 0 ? "0\r\n" : "");
        for (int k = 0; k < 500; k++)
            len += (size_t)sprintf(ext + len, "X-%d: v\r\n", k);
        r = px_http_chunked_decode(&d, ext, &len);
        if (r == PX_HTTP_ERROR)
            break;
        PX_CHECK_EQ(r, PX_HTTP_INCOMPLETE);
    }
    PX_CHECK_EQ(r, PX_HTTP_ERROR);
    PX_CHECK_EQ(d.status, 400);

    /* what the client sends counts: framing and extensions may add a
     * sixteenth of max_body and 4 KiB to it, then 413 */
    PX_CHECK_EQ(px_http_chunked_raw_max(16000), 16000 + 1000 + PX_HTTP_CHUNKED_SLACK);
    PX_CHECK_EQ(px_http_chunked_raw_max(UINT64_MAX - 5), UINT64_MAX);
    px_http_chunked_init(&d, 16000);
    for (int i = 0; i < 1000; i++) {
        len = (size_t)sprintf(ext, "1;e=%090d\r\nx\r\n", i); /* 100 bytes for 1 */
        r = px_http_chunked_decode(&d, ext, &len);
        if (r == PX_HTTP_ERROR)
            break;
        PX_CHECK_EQ(r, PX_HTTP_INCOMPLETE);
        PX_CHECK_EQ(len, 1);
    }
    PX_CHECK_EQ(r, PX_HTTP_ERROR);
    PX_CHECK_EQ(d.status, 413);
    PX_CHECK_EQ(d.raw, px_http_chunked_raw_max(16000) + 1);
    PX_CHECK_LT(d.total, 250); /* far below max_body */
    /* a chunk size that cannot fit in what is left of it: 413 at once */
    px_http_chunked_init(&d, 16000);
    len = (size_t)sprintf(ext, "3E80\r\n"); /* 16000 */
    PX_CHECK_EQ(px_http_chunked_decode(&d, ext, &len), PX_HTTP_INCOMPLETE);
    px_http_chunked_init(&d, 0);
    len = (size_t)sprintf(ext, "1001\r\n");
    PX_CHECK_EQ(px_http_chunked_decode(&d, ext, &len), PX_HTTP_ERROR);
    PX_CHECK_EQ(d.status, 413);
    /* a body exactly at max_body in small chunks still passes */
    px_http_chunked_init(&d, 1024);
    for (int i = 0; i < 8; i++) {
        len = (size_t)sprintf(ext, "80\r\n%0128d\r\n", 0);
        PX_CHECK_EQ(px_http_chunked_decode(&d, ext, &len), PX_HTTP_INCOMPLETE);
    }
    len = 5;
    memcpy(ext, "0\r\n\r\n", 5);
    PX_CHECK_EQ(px_http_chunked_decode(&d, ext, &len), 0);
    PX_CHECK_EQ(d.total, 1024);
    PX_CHECK_EQ(d.raw, 1024 + 8 * 6 + 3);

    /* total accumulates across calls against max_body */
    px_http_chunked_init(&d, 8);
    memcpy(ext, "4\r\nabcd\r\n4\r\nefgh\r\n1\r\n", 21);
    len = 21;
    PX_CHECK_EQ(px_http_chunked_decode(&d, ext, &len), PX_HTTP_ERROR);
    PX_CHECK_EQ(d.status, 413);
    PX_CHECK_EQ(d.total, 8);
}

/* ---- paths ---- */

static void test_path_decode(void)
{
    static const struct {
        const char *in, *out;
        int ret;
    } cases[] = {
        {"/", "/", 1},
        {"/index.html", "/index.html", 11},
        {"/a%20b/c%2fd", "/a b/c/d", 8},
        {"/a//b///c", "/a/b/c", 6},
        {"/a/./b/.", "/a/b/", 5},
        {"/./", "/", 1},
        {"/dir/", "/dir/", 5},
        {"/%2e%2E%2e/x", "/.../x", 6},
        {"/.hidden/..x/x..", "/.hidden/..x/x..", 16},
        {"/%C3%A9", "/\xc3\xa9", 3},
        {"/..", NULL, -EINVAL},
        {"/../etc/passwd", NULL, -EINVAL},
        {"/a/../b", NULL, -EINVAL},
        {"/a/%2e%2e/b", NULL, -EINVAL},
        {"/a%2f..%2fb", NULL, -EINVAL},
        {"/a/.%2E", NULL, -EINVAL},
        {"/a%00b", NULL, -EINVAL},
        {"/a\\b", NULL, -EINVAL},
        {"/a%5cb", NULL, -EINVAL},
        {"/a%", NULL, -EINVAL},
        {"/a%4", NULL, -EINVAL},
        {"/a%g0", NULL, -EINVAL},
        {"/a%0g", NULL, -EINVAL},
        {"a", NULL, -EINVAL},
        {"", NULL, -EINVAL},
    };
    char out[64];
    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        int r = px_http_path_decode(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        if (r != cases[i].ret)
            PX_FAIL_("path \"%s\": %d vs %d", cases[i].in, r, cases[i].ret);
        if (r >= 0)
            PX_CHECK_STR(out, cases[i].out);
    }
    PX_CHECK_EQ(px_http_path_decode("/abc", 4, out, 5), 4);
    PX_CHECK_EQ(px_http_path_decode("/abc", 4, out, 4), -ENAMETOOLONG);
    PX_CHECK_EQ(px_http_path_decode("/a/b", 4, out, 4), -ENAMETOOLONG);
    PX_CHECK_EQ(px_http_path_decode("/", 1, out, 1), -ENAMETOOLONG);
}

/* ---- guard pages ---- */

static char *guard_base;
static size_t guard_size; /* accessible bytes; the next page is PROT_NONE */

static void guard_setup(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_size = (sizeof(big) + page - 1) / page * page;
    char *m = mmap(NULL, guard_size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
    if (m == MAP_FAILED)
        PX_SKIP("mmap: %s", strerror(errno));
    PX_CHECK_EQ(mprotect(m + guard_size, page, PROT_NONE), 0);
    guard_base = m;
}

/* in's first k bytes, placed to end exactly at the inaccessible page */
static char *at_guard(const char *in, size_t k)
{
    char *p = guard_base + guard_size - k;
    memmove(p, in, k);
    return p;
}

static void guard_parse_all(const char *s, size_t n, const px_http_limits_t *lim)
{
    px_http_header_t hdrs[NHDR];
    px_http_request_t req;
    for (size_t k = 0; k <= n; k++) {
        char *p = at_guard(s, k);
        int r = parse(p, k, &req, hdrs, NHDR, lim);
        PX_CHECK(r == PX_HTTP_INCOMPLETE || r == PX_HTTP_ERROR || (r > 0 && (size_t)r <= k));
        if (r > 0)
            for (size_t i = 0; i < req.num_headers; i++)
                PX_CHECK(hdrs[i].value.base + hdrs[i].value.len <= p + k);
    }
}

static void test_guard(void)
{
    guard_setup();
    for (size_t i = 0; i < PX_ARRAY_SIZE(valid_cases); i++)
        guard_parse_all(valid_cases[i].in.s, valid_cases[i].in.n, NULL);
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_cases); i++)
        guard_parse_all(bad_cases[i].in.s, bad_cases[i].in.n, NULL);

    /* limits: lines and heads that end right at the guard */
    px_http_limits_t lim = {64, 128, 3, 100};
    size_t n = fill_line(200);
    guard_parse_all(big, n, &lim);
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nA: b\r\nC: d\r\nE: f\r\n\r\n");
    guard_parse_all(big, n, &lim);
    n = (size_t)sprintf(
        big,
        "GET / HTTP/1.1\r\nHost: a\r\nA: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n");
    guard_parse_all(big, n, &lim);
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
    guard_parse_all(big, n, &lim);

    /* chunked: every prefix decoded in place right before the guard */
    for (size_t i = 0; i < PX_ARRAY_SIZE(chunk_cases); i++) {
        const chunk_case_t *c = &chunk_cases[i];
        for (size_t k = 0; k <= c->in.n; k++) {
            px_http_chunked_t d;
            size_t len = k;
            px_http_chunked_init(&d, c->max_body ? c->max_body : 1048576);
            char *p = at_guard(c->in.s, k);
            int r = px_http_chunked_decode(&d, p, &len);
            PX_CHECK(r >= PX_HTTP_INCOMPLETE);
            PX_CHECK_LE(len, k);
        }
    }

    /* paths ending at the guard, escapes cut short included */
    static const char *paths[] = {"/a%2", "/a%", "/a/..", "/a/.", "/x%41"};
    char out[32];
    for (size_t i = 0; i < PX_ARRAY_SIZE(paths); i++) {
        size_t k = strlen(paths[i]);
        char *p = at_guard(paths[i], k);
        (void)px_http_path_decode(p, k, out, sizeof(out));
    }
    munmap(guard_base, guard_size + (size_t)sysconf(_SC_PAGESIZE));
}

/* ---- rough timing ---- */

static const char bench_req[] =
    "GET /static/css/site.css?v=3 HTTP/1.1\r\n"
    "Host: www.example.org\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/css,*/*;q=0.1\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.org/index.html\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

static void bench(void)
{
    px_http_header_t hdrs[100];
    px_http_request_t req;
    struct timespec a, b;
    const long iters = 5000000;
    long sum = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < iters; i++) {
        req.headers = hdrs;
        req.num_headers = 100;
        __asm__ volatile("" ::: "memory");
        sum += px_http_parse_request(bench_req, sizeof(bench_req) - 1, &req, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) /
                (double)iters;
    PX_CHECK_EQ(sum / iters, (long)sizeof(bench_req) - 1);
    printf("%zu-byte request, %zu headers: %.1f ns/request, %.2f GB/s\n", sizeof(bench_req) - 1,
           req.num_headers, ns, (double)(sizeof(bench_req) - 1) / ns);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        bench();
        return 0;
    }
    test_valid();
    test_bad();
    test_incremental();
    test_limits();
    test_chunked();
    test_path_decode();
    test_guard();
    printf("ok\n");
    return 0;
}
