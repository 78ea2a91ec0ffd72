/*
 * Checks the response head parser: valid heads and their fields, body framing,
 * every malformed case it must refuse, incremental parsing (every prefix of a
 * head is PX_HTTP_INCOMPLETE, never an error or a result), the head size limit
 * and header capacity, and guard pages: each input placed so that it ends right
 * before an inaccessible page, so any read past the end crashes.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "px/http_response.h"
#include "px_test.h"

#define S(lit) lit, sizeof(lit) - 1

typedef struct valid_case {
    const char *in;
    size_t n;
    int status, minor;
    int64_t content_length;
    bool chunked, keep_alive;
    px_http_body_kind_t body;
    size_t headers;
} valid_case_t;

static const valid_case_t valid_cases[] = {
    {S("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"), 200, 1, 13, false, true,
     PX_HTTP_BODY_LENGTH, 1},
    {S("HTTP/1.1 200 OK\r\nServer: x\r\nDate: y\r\nContent-Length:0\r\n\r\n"), 200, 1, 0, false,
     true, PX_HTTP_BODY_LENGTH, 3},
    {S("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"), 404, 1, -1, true, true,
     PX_HTTP_BODY_CHUNKED, 1},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n"), 200, 1, -1, true, true,
     PX_HTTP_BODY_CHUNKED, 1},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), 200, 1, -1, false, true,
     PX_HTTP_BODY_UNTIL_CLOSE, 1},
    {S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n"), 200, 1, 5, false,
     false, PX_HTTP_BODY_LENGTH, 2},
    {S("HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\n\r\n"), 200, 1, -1, false, false,
     PX_HTTP_BODY_UNTIL_CLOSE, 1},
    {S("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n"), 200, 0, 5, false, false,
     PX_HTTP_BODY_LENGTH, 1},
    {S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n"), 200, 0, 5, false,
     true, PX_HTTP_BODY_LENGTH, 2},
    {S("HTTP/1.1 204 No Content\r\n\r\n"), 204, 1, -1, false, true, PX_HTTP_BODY_NONE, 0},
    {S("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"), 304, 1, 99, false, true,
     PX_HTTP_BODY_NONE, 1},
    {S("HTTP/1.1 100 Continue\r\n\r\n"), 100, 1, -1, false, true, PX_HTTP_BODY_NONE, 0},
    {S("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n"), 200, 1, 1, false, true, PX_HTTP_BODY_LENGTH,
     1},
    {S("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n"), 200, 1, 1, false, true, PX_HTTP_BODY_LENGTH,
     1},
    {S("HTTP/1.1 503 Service \t Unavailable \xe9\r\nX-A:  spaced value \t\r\n\r\n"), 503, 1, -1,
     false, true, PX_HTTP_BODY_UNTIL_CLOSE, 1},
    {S("HTTP/1.1 999 Whatever\r\nContent-Length: 9223372036854775807\r\n\r\n"), 999, 1, INT64_MAX,
     false, true, PX_HTTP_BODY_LENGTH, 1},
};

static const struct {
    const char *in;
    size_t n;
    const char *why;
} bad_cases[] = {
    {S("HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n"), "bare LF after the status line"},
    {S("HTTP/1.1 200 OK\r\nContent-Length: 1\n\r\n"), "bare LF after a field"},
    {S("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n"), "bare CR in a value"},
    {S("HTTP/1.1 200 OK\r\n\n"), "bare LF ending the head"},
    {S("HTTP/2.0 200 OK\r\n\r\n"), "version 2"},
    {S("HTTP/1.2 200 OK\r\n\r\n"), "version 1.2"},
    {S("http/1.1 200 OK\r\n\r\n"), "lowercase protocol name"},
    {S("HTTP/1.1  200 OK\r\n\r\n"), "two spaces"},
    {S("HTTP/1.1 20 OK\r\n\r\n"), "two-digit status"},
    {S("HTTP/1.1 2000 OK\r\n\r\n"), "four-digit status"},
    {S("HTTP/1.1 099 OK\r\n\r\n"), "status below 100"},
    {S("HTTP/1.1 2x0 OK\r\n\r\n"), "non-digit status"},
    {S("HTTP/1.1 200 O\x01K\r\n\r\n"), "control byte in the reason"},
    {S(" HTTP/1.1 200 OK\r\n\r\n"), "leading space"},
    {S("\r\nHTTP/1.1 200 OK\r\n\r\n"), "leading empty line"},
    {S("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n"), "obs-fold"},
    {S("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n"), "obs-fold continuation"},
    {S("HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n"), "space before the colon"},
    {S("HTTP/1.1 200 OK\r\n: x\r\n\r\n"), "empty name"},
    {S("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n"), "no colon"},
    {S("HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n"), "DEL in a value"},
    {S("HTTP/1.1 200 OK\r\nA: b\x00\r\n\r\n"), "NUL in a value"},
    {S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
     "duplicate Content-Length"},
    {S("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n"), "Content-Length list"},
    {S("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), "negative Content-Length"},
    {S("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"), "empty Content-Length"},
    {S("HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n"),
     "Content-Length over INT64_MAX"},
    {S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
     "Content-Length then Transfer-Encoding"},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"),
     "Transfer-Encoding then Content-Length"},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), "chunked not last"},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
     "chunked twice"},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n"), "empty list element"},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n"), "trailing comma"},
    {S("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n"), "empty Transfer-Encoding"},
    {S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "chunked in HTTP/1.0"},
    {S("HTTP/1.1 200 OK\r\nConnection: close;x\r\n\r\n"), "non-token Connection"},
};

static void check_valid(const valid_case_t *c, const char *buf)
{
    px_http_header_t hdrs[8];
    px_http_response_t res = {.headers = hdrs, .num_headers = 8};
    int rc = px_http_parse_response(buf, c->n, &res, 16384);

    if (rc != (int)c->n)
        PX_FAIL_("valid head not accepted (%d): %.*s", rc, (int)c->n, c->in);
    PX_CHECK_EQ(res.status, c->status);
    PX_CHECK_EQ(res.minor_version, c->minor);
    PX_CHECK_EQ(res.content_length, c->content_length);
    PX_CHECK_EQ(res.chunked, c->chunked);
    PX_CHECK_EQ(res.keep_alive, c->keep_alive);
    PX_CHECK_EQ(res.num_headers, c->headers);
    PX_CHECK_EQ(px_http_response_body(&res, false), c->body);
    PX_CHECK_EQ(px_http_response_body(&res, true), PX_HTTP_BODY_NONE);
    /* Views lie inside the head. */
    PX_CHECK(res.reason.base >= buf && res.reason.base + res.reason.len <= buf + c->n);
    for (size_t i = 0; i < res.num_headers; i++) {
        PX_CHECK(hdrs[i].name.base >= buf && hdrs[i].name.base + hdrs[i].name.len <= buf + c->n);
        PX_CHECK(hdrs[i].value.base >= buf && hdrs[i].value.base + hdrs[i].value.len <= buf + c->n);
    }
}

static void test_valid(void)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(valid_cases); i++)
        check_valid(&valid_cases[i], valid_cases[i].in);
}

static void test_fields(void)
{
    const char in[] = "HTTP/1.1 503 Service Unavailable\r\nX-A:  spaced value \t\r\n"
                      "Retry-After:5\r\n\r\nBODY";
    px_http_header_t hdrs[4];
    px_http_response_t res = {.headers = hdrs, .num_headers = 4};
    int rc = px_http_parse_response(in, sizeof(in) - 1, &res, 16384);

    PX_CHECK_EQ(rc, (int)(sizeof(in) - 1 - 4));
    PX_CHECK_EQ(res.reason.len, 19);
    PX_CHECK_MEM(res.reason.base, "Service Unavailable", 19);
    PX_CHECK_EQ(res.num_headers, 2);
    PX_CHECK_EQ(hdrs[0].name.len, 3);
    PX_CHECK_MEM(hdrs[0].name.base, "X-A", 3);
    PX_CHECK_EQ(hdrs[0].value.len, 12);
    PX_CHECK_MEM(hdrs[0].value.base, "spaced value", 12);
    PX_CHECK_EQ(hdrs[1].value.len, 1);
    PX_CHECK_MEM(hdrs[1].value.base, "5", 1);

    /* Without a header array any number of headers is fine. */
    res.headers = NULL;
    res.num_headers = 0;
    PX_CHECK_EQ(px_http_parse_response(in, sizeof(in) - 1, &res, 16384), rc);
    PX_CHECK_EQ(res.num_headers, 2);
    /* With one slot, the second header is over capacity. */
    res.headers = hdrs;
    res.num_headers = 1;
    PX_CHECK_EQ(px_http_parse_response(in, sizeof(in) - 1, &res, 16384), PX_HTTP_ERROR);
}

static void test_bad(void)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_cases); i++) {
        px_http_response_t res = {0};
        int rc = px_http_parse_response(bad_cases[i].in, bad_cases[i].n, &res, 16384);
        if (rc != PX_HTTP_ERROR)
            PX_FAIL_("%s: accepted (%d)", bad_cases[i].why, rc);
    }
}

/* Every proper prefix of a valid head is incomplete; every prefix of a bad one
 * is incomplete or an error, never a result. */
static void test_incremental(void)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(valid_cases); i++) {
        for (size_t k = 0; k < valid_cases[i].n; k++) {
            px_http_response_t res = {0};
            int rc = px_http_parse_response(valid_cases[i].in, k, &res, 16384);
            if (rc != PX_HTTP_INCOMPLETE)
                PX_FAIL_("prefix %zu of valid case %zu: %d", k, i, rc);
        }
    }
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_cases); i++) {
        for (size_t k = 0; k < bad_cases[i].n; k++) {
            px_http_response_t res = {0};
            int rc = px_http_parse_response(bad_cases[i].in, k, &res, 16384);
            if (rc != PX_HTTP_INCOMPLETE && rc != PX_HTTP_ERROR)
                PX_FAIL_("prefix %zu of %s: %d", k, bad_cases[i].why, rc);
        }
    }
}

static void test_limit(void)
{
    const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n";
    size_t n = sizeof(in) - 1;
    px_http_response_t res = {0};

    PX_CHECK_EQ(px_http_parse_response(in, n, &res, n), (int)n);
    PX_CHECK_EQ(px_http_parse_response(in, n, &res, n - 1), PX_HTTP_ERROR);
    /* Below the limit an unfinished head waits; at the limit it is refused. */
    PX_CHECK_EQ(px_http_parse_response(in, n - 2, &res, n), PX_HTTP_INCOMPLETE);
    PX_CHECK_EQ(px_http_parse_response(in, n - 2, &res, n - 2), PX_HTTP_ERROR);
}

/* ---- guard pages ---- */

static char *guard_base;
static size_t guard_size; /* accessible bytes; the next page is PROT_NONE */

static void guard_setup(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m;

    guard_size = page;
    m = mmap(NULL, guard_size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        PX_SKIP("mmap: %s", strerror(errno));
    PX_CHECK_EQ(mprotect(m + guard_size, page, PROT_NONE), 0);
    guard_base = m;
}

/* Every prefix of in, placed so that its last byte is the last accessible one. */
static void guard_parse_all(const char *in, size_t n)
{
    for (size_t k = 0; k <= n; k++) {
        char *p = guard_base + guard_size - k;
        px_http_response_t res = {0};
        memcpy(p, in, k);
        (void)px_http_parse_response(p, k, &res, 16384);
    }
}

static void test_guard(void)
{
    guard_setup();
    for (size_t i = 0; i < PX_ARRAY_SIZE(valid_cases); i++) {
        guard_parse_all(valid_cases[i].in, valid_cases[i].n);
        check_valid(&valid_cases[i], guard_base + guard_size - valid_cases[i].n);
    }
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_cases); i++)
        guard_parse_all(bad_cases[i].in, bad_cases[i].n);
}

/* ---- the fields a server sends ---- */

static void test_field_checks(void)
{
    static const struct {
        const char *in;
        size_t n;
        size_t offset;
        int byte;
        const char *name;
    } bad_lines[] = {
        {S("Location: /a\x00\r\nSet-Cookie: x=1\r\n"), 3, 0x00, "Location"},
        {S("Location: /a\r\nSet-Cookie: x\n=1\r\n"), 2, '\n', "Set-Cookie"},
        {S("X-A: a\rb\r\n"), 2, '\r', "X-A"},
        {S("X-A: a\nb\r\n"), 2, '\n', "X-A"},
        {S("X-A: a\x01\r\n"), 2, 0x01, "X-A"},
        {S("X-A: a\x7f\r\n"), 2, 0x7f, "X-A"},
        {S("X-A: a\x1b[31m\r\n"), 2, 0x1b, "X-A"},
        {S("X-A: a"), 2, -1, "X-A"},
        {S("X-A: a\r"), 2, '\r', "X-A"},
        {S("X-A: a\r\nX-B: b"), 2, -1, "X-B"},
    };
    static const struct {
        const char *in;
        size_t n;
        const char *why;
    } bad_names[] = {
        {S(": empty\r\n"), "empty name"},
        {S("X A: sp\r\n"), "space in a name"},
        {S("X-A : sp\r\n"), "space before the colon"},
        {S("X\x00A: nul\r\n"), "NUL in a name"},
        {S("X\r\nY: z\r\n"), "CRLF in a name"},
        {S("X@: at\r\n"), "separator in a name"},
        {S("X-\xe9: x\r\n"), "non-ASCII name"},
        {S("No colon\r\n"), "no colon"},
        {S("\r\n"), "empty line (an early end of the head)"},
        {S("Content-Length: 5\r\n"), "a second length"},
        {S("X-A: 1\r\ntransfer-ENCODING: chunked\r\n"), "a coding"},
    };
    px_http_field_fault_t f;
    size_t bad = 99;

    PX_CHECK(px_http_token_ok("X-Frame-Options", 15));
    PX_CHECK(!px_http_token_ok("", 0));
    PX_CHECK(!px_http_token_ok("a b", 3));
    PX_CHECK(!px_http_token_ok("a\0b", 3));
    PX_CHECK(px_http_field_value_ok("text/html; charset=utf-8 \t\xe9\xff", 28, &bad));
    PX_CHECK_EQ(bad, 99);
    PX_CHECK(!px_http_field_value_ok("a\0b", 3, &bad));
    PX_CHECK_EQ(bad, 1);
    PX_CHECK(!px_http_field_value_ok("ab\x7f", 3, &bad));
    PX_CHECK_EQ(bad, 2);

    PX_CHECK_EQ(px_http_check_header_lines(NULL, 0, &f), 0);
    PX_CHECK_EQ(px_http_check_header_lines(S("A: b\r\nB-2:c\r\nC:  \t x y \xe9\r\nE:\r\n"), &f), 0);
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_lines); i++) {
        memset(&f, 0, sizeof(f));
        if (px_http_check_header_lines(bad_lines[i].in, bad_lines[i].n, &f) != -EINVAL)
            PX_FAIL_("bad line %zu accepted", i);
        PX_CHECK_EQ(f.offset, bad_lines[i].offset);
        PX_CHECK_EQ(f.byte, bad_lines[i].byte);
        PX_CHECK_EQ(f.name.len, strlen(bad_lines[i].name));
        PX_CHECK_MEM(f.name.base, bad_lines[i].name, f.name.len);
        PX_CHECK(f.why != NULL);
    }
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_names); i++)
        if (px_http_check_header_lines(bad_names[i].in, bad_names[i].n, &f) != -EINVAL)
            PX_FAIL_("%s: accepted", bad_names[i].why);

    /* Status, reason and content type. */
    PX_CHECK_EQ(px_http_check_response_fields(200, "OK", "text/plain", NULL, 0, &f), 0);
    PX_CHECK_EQ(px_http_check_response_fields(999, "", NULL, S("A: b\r\n"), &f), 0);
    PX_CHECK_EQ(px_http_check_response_fields(99, "OK", NULL, NULL, 0, &f), -EINVAL);
    PX_CHECK_EQ(px_http_check_response_fields(1000, "OK", NULL, NULL, 0, &f), -EINVAL);
    PX_CHECK_EQ(px_http_check_response_fields(200, "O\r\nK", NULL, NULL, 0, &f), -EINVAL);
    PX_CHECK_MEM(f.name.base, "reason", 6);
    PX_CHECK_EQ(
        px_http_check_response_fields(200, "OK", "text/html\r\nSet-Cookie: a=b", NULL, 0, &f),
        -EINVAL);
    PX_CHECK_EQ(f.name.len, 12);
    PX_CHECK_MEM(f.name.base, "Content-Type", 12);
    PX_CHECK_EQ(f.offset, 9);
    PX_CHECK_EQ(f.byte, '\r');
    PX_CHECK_EQ(px_http_check_response_fields(200, "OK", "a\x01", NULL, 0, &f), -EINVAL);
    PX_CHECK_EQ(px_http_check_response_fields(200, "OK", NULL, S("A: \x00\r\n"), &f), -EINVAL);
}

int main(void)
{
    test_valid();
    test_fields();
    test_bad();
    test_incremental();
    test_limit();
    test_guard();
    test_field_checks();
    printf("http_response: ok\n");
    return 0;
}
