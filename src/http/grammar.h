/*
 * The HTTP/1.1 grammar shared by the request parser, the response parser, the
 * path decoder and the router: character classes, case-insensitive comparison
 * and comma-separated token lists, each defined once (RFC 9110, RFC 9112,
 * RFC 3986).
 *
 * Private to src/http. Everything here is static so that each file compiles on
 * its own (the fuzz targets and a test build single files); the tables are
 * read-only and small.
 */
#ifndef PX_HTTP_GRAMMAR_H
#define PX_HTTP_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px/common.h"

enum {
    C_TOKEN = 1,  /* tchar (RFC 9110 section 5.6.2) */
    C_VALUE = 2,  /* field-value byte: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 4, /* request-target byte: VCHAR except '#' */
    C_HOST = 8,   /* Host byte: reg-name, IP-literal brackets, ':' port */
};

/* clang-format off */
static const uint8_t http_ctype[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0,  /* 0x00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
     2, 15,  6,  3, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15,  6,  /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14,  6, 14,  6,  6,  /* 0x30 */
     6, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  /* 0x40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14,  6, 14,  7, 15,  /* 0x50 */
     7, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  /* 0x60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  7,  6, 15,  0,  /* 0x70 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0x80 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0x90 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xA0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xB0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xC0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xD0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xE0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  /* 0xF0 */
};
static const uint8_t http_hexval[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x20 */
     1,  2,  3,  4,  5,  6,  7,  8,  9, 10,  0,  0,  0,  0,  0,  0,  /* 0x30 */
     0, 11, 12, 13, 14, 15, 16,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x40 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x50 */
     0, 11, 12, 13, 14, 15, 16,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x60 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x70 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x80 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x90 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0xA0 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0xB0 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0xC0 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0xD0 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0xE0 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0xF0 */
};
/* clang-format on */

/* 1 + the value of a hex digit, 0 for any other byte (so that 0 tests false). */
#define HTTP_HEX(c) (http_hexval[(unsigned char)(c)])

static inline bool is_tchar(unsigned char c)
{
    return http_ctype[c] & C_TOKEN;
}

/* field-value and reason-phrase bytes: HTAB, SP, VCHAR, obs-text */
static inline bool is_field_byte(unsigned char c)
{
    return http_ctype[c] & C_VALUE;
}

static inline bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* s[0..n) equals the lowercase literal lit[0..litlen), ignoring ASCII case in s. */
static inline bool eq_lower(const void *s_, size_t n, const char *lit, size_t litlen)
{
    const unsigned char *s = s_;

    if (n != litlen)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c - 'A' < 26u)
            c |= 0x20;
        if (c != (unsigned char)lit[i])
            return false;
    }
    return true;
}

#define EQ_LOWER(s, n, lit) eq_lower((s), (n), lit, sizeof(lit) - 1)

/* Next element of a comma list of tokens (RFC 9110 section 5.6.1) in [*pp, e):
 * 1 with the element in *tok, 0 at the end. Empty elements and anything but OWS
 * around the commas are errors (-1), to leave nothing that another
 * implementation could read differently. */
static inline int next_list_token(const char **pp, const char *e, px_view_t *tok)
{
    const char *p = *pp, *s = p;

    if (p == e)
        return 0;
    while (p < e && is_tchar((unsigned char)*p))
        p++;
    if (p == s)
        return -1;
    *tok = (px_view_t){s, (size_t)(p - s)};
    while (p < e && is_ows((unsigned char)*p))
        p++;
    if (p < e) {
        if (*p != ',')
            return -1;
        p++;
        while (p < e && is_ows((unsigned char)*p))
            p++;
        if (p == e)
            return -1; /* trailing comma */
    }
    *pp = p;
    return 1;
}

#endif
