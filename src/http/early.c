/*
 * Requests answered before their body: see early.h.
 */
#include "early.h"

#include <stdlib.h>
#include <string.h>

bool px__http_methods_take_body(const char *const *methods, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(methods[i], "GET") != 0 && strcmp(methods[i], "HEAD") != 0)
            return true;
    return false;
}

void px__http_drop_init(px__http_drop_t *d, const px_http_request_t *req, uint64_t max_body)
{
    memset(d, 0, sizeof(*d));
    d->chunked = req->chunked;
    if (d->chunked)
        px_http_chunked_init(&d->dec, max_body);
    else
        d->left = req->content_length > 0 ? (uint64_t)req->content_length : 0;
}

ssize_t px__http_drop(px__http_drop_t *d, const char *data, size_t len, bool *done)
{
    char scratch[2048]; /* the decoder works in place; data is not ours */
    size_t pos = 0;

    if (!d->chunked) {
        size_t take = len < d->left ? len : (size_t)d->left;
        d->left -= take;
        *done = d->left == 0;
        return (ssize_t)take;
    }
    *done = false;
    while (pos < len) {
        size_t piece = PX_MIN(len - pos, sizeof(scratch)), out = piece;
        int r;

        memcpy(scratch, data + pos, piece);
        r = px_http_chunked_decode(&d->dec, scratch, &out);
        if (r == PX_HTTP_ERROR)
            return -1;
        pos += piece;
        if (r >= 0) {
            *done = true;
            return (ssize_t)(pos - (size_t)r);
        }
    }
    return (ssize_t)len;
}

/* The method m[0..mlen) is an element of the list "A, B" in list[0..n). */
static bool has_method(const char *list, size_t n, const char *m, size_t mlen)
{
    const char *p = list, *e = list + n;

    while (p < e) {
        const char *t = p;
        while (p < e && *p != ',')
            p++;
        if ((size_t)(p - t) == mlen && memcmp(t, m, mlen) == 0)
            return true;
        p += p < e ? 2 : 0; /* ", " */
    }
    return false;
}

/* Append each method of the list "A, B" in list[0..n) that the Allow line
 * out[0..len) lacks; returns the new length. */
static size_t add_methods(char *out, size_t len, const char *list, size_t n)
{
    const char *p = list, *e = list + n;

    while (p < e) {
        const char *m = p;
        size_t mlen;
        while (p < e && *p != ',')
            p++;
        mlen = (size_t)(p - m);
        p += p < e ? 2 : 0;
        if (mlen == 0 || has_method(out + 7, len - 7, m, mlen))
            continue;
        if (len > 7) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, m, mlen);
        len += mlen;
    }
    return len;
}

char *px__http_options_allow(const px_http_router_t *r, bool statics)
{
    size_t n = px_http_router_count(r), cap = 64, len;
    char *out;

    for (size_t i = 0; i < n; i++)
        cap += px_http_router_allow(r, (int)i).len + 2;
    out = malloc(cap);
    if (out == NULL)
        return NULL;
    memcpy(out, "Allow: ", 7);
    len = 7;
    if (statics)
        len = add_methods(out, len, "GET, HEAD", 9);
    for (size_t i = 0; i < n; i++) {
        px_view_t allow = px_http_router_allow(r, (int)i);
        len = add_methods(out, len, allow.base, allow.len);
    }
    len = add_methods(out, len, "OPTIONS", 7);
    memcpy(out + len, "\r\n", 3);
    return out;
}
