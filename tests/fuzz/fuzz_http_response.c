/*
 * libFuzzer target for px_http_parse_response and px_http_response_body
 * (include/px/http_response.h).
 *
 * Each input is a response head (and anything after it). The parser must:
 * return a length within the input, INCOMPLETE or ERROR; give INCOMPLETE for
 * every proper prefix of a head it accepts, and INCOMPLETE or ERROR for every
 * prefix of one it refuses; give the same result with a header array as
 * without; put every view inside the head; and report fields that agree with
 * each other. The same bytes taken as header lines that the server's check
 * (px_http_check_header_lines) accepts must frame exactly as those lines.
 * Any violation calls __builtin_trap().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "px/http_response.h"

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

static void check_view(px_view_t v, const char *buf, size_t head)
{
    if (v.len == 0)
        return;
    CHECK(v.base >= buf && v.base + v.len <= buf + head);
}

/* CRLF-terminated lines in buf[0..n). */
static size_t lines(const char *buf, size_t n)
{
    size_t count = 0;

    for (size_t i = 0; i + 1 < n; i++)
        count += buf[i] == '\r' && buf[i + 1] == '\n';
    return count;
}

/* What the server's check lets through as header lines can end no head early
 * and hide no line: under a status line, the head is exactly those lines
 * (or refused for what they say, e.g. two Content-Lengths). */
static void check_writer(const char *lines_in, size_t size)
{
    static const char status[] = "HTTP/1.1 200 OK\r\n";
    size_t n = sizeof(status) - 1 + size + 2;
    px_http_response_t res = {.headers = NULL};
    char *head;
    int rc;

    if (px_http_check_header_lines(lines_in, size, NULL) < 0)
        return;
    head = malloc(n);
    if (head == NULL)
        return;
    memcpy(head, status, sizeof(status) - 1);
    memcpy(head + sizeof(status) - 1, lines_in, size);
    memcpy(head + n - 2, "\r\n", 2);
    rc = px_http_parse_response(head, n, &res, n + 1);
    CHECK(rc == PX_HTTP_ERROR || (size_t)rc == n);
    if (rc > 0)
        CHECK(res.num_headers == lines(lines_in, size));
    free(head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_http_header_t hdrs[16];
    px_http_response_t res = {.headers = NULL}, with = {.headers = hdrs, .num_headers = 16};
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    size_t max_head = 2048;
    int rc, rc2;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    rc = px_http_parse_response(buf, size, &res, max_head);
    CHECK(rc == PX_HTTP_ERROR || rc == PX_HTTP_INCOMPLETE || (rc > 0 && (size_t)rc <= size));
    CHECK(rc != PX_HTTP_INCOMPLETE || size < max_head);

    rc2 = px_http_parse_response(buf, size, &with, max_head);
    /* More than 16 complete header lines are over the array's capacity: an
     * error there only, even before the head is complete. */
    CHECK(rc2 == rc || (rc2 == PX_HTTP_ERROR && rc != PX_HTTP_ERROR && lines(buf, size) > 17));

    if (rc > 0) {
        size_t head = (size_t)rc;
        CHECK(res.status >= 100 && res.status <= 999);
        CHECK(res.minor_version == 0 || res.minor_version == 1);
        CHECK(res.content_length >= -1);
        CHECK(!res.chunked || res.transfer_encoding);
        CHECK(!(res.transfer_encoding && res.content_length >= 0));
        CHECK(head >= 4 && memcmp(buf + head - 4, "\r\n\r\n", 4) == 0);
        check_view(res.reason, buf, head);
        if (rc2 > 0) {
            CHECK(with.num_headers == res.num_headers);
            for (size_t i = 0; i < with.num_headers; i++) {
                check_view(hdrs[i].name, buf, head);
                check_view(hdrs[i].value, buf, head);
                CHECK(hdrs[i].name.len > 0);
            }
        }
        switch (px_http_response_body(&res, false)) {
        case PX_HTTP_BODY_NONE:
            CHECK(res.status < 200 || res.status == 204 || res.status == 304);
            break;
        case PX_HTTP_BODY_LENGTH: CHECK(res.content_length >= 0); break;
        case PX_HTTP_BODY_CHUNKED: CHECK(res.chunked); break;
        case PX_HTTP_BODY_UNTIL_CLOSE:
            CHECK(!res.chunked && (res.transfer_encoding || res.content_length < 0));
            break;
        }
        CHECK(px_http_response_body(&res, true) == PX_HTTP_BODY_NONE);
    }

    /* Prefixes: incomplete before the end of an accepted head; never a result
     * before the end of a refused one. */
    {
        size_t end = rc > 0 ? (size_t)rc : size;
        size_t step = end > 256 ? end / 64 : 1;
        for (size_t k = 0; k < end; k += step) {
            px_http_response_t p = {.headers = NULL};
            int r = px_http_parse_response(buf, k, &p, max_head);
            if (rc > 0)
                CHECK(r == PX_HTTP_INCOMPLETE);
            else
                CHECK(r == PX_HTTP_INCOMPLETE || r == PX_HTTP_ERROR);
        }
    }
    check_writer(buf, size);
    free(buf);
    return 0;
}
