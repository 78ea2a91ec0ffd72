/*
 * libFuzzer target for the route table (include/px/http_router.h).
 *
 * Each input is lines: every line but the last is a route pattern, the last is
 * the path to route. The table must refuse or take each pattern without
 * crashing, and a match must be explainable: putting the parameters it returns
 * back into the matched route's pattern gives the path byte for byte (an exact
 * route is the path itself, a prefix route its prefix plus "rest"), the
 * parameters of a param route are non-empty and hold no '/', and the names
 * agree with the pattern. Any violation calls __builtin_trap().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "px/http_router.h"

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

#define MAX_PATTERNS 16

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_byte(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Length of a "{name}" at p[0..n), 0 when there is none: the header's grammar,
 * written again here so that the check does not trust the code it checks. */
static size_t param_len(const char *p, size_t n)
{
    size_t i = 1;

    if (n < 3 || p[0] != '{' || !name_start(p[1]))
        return 0;
    while (i < n && name_byte(p[i]))
        i++;
    return i < n && p[i] == '}' ? i + 1 : 0;
}

/* The pattern with the match's parameters put in; false when it does not equal
 * the path (or names disagree). */
static bool rebuild_equals(const char *pat, size_t plen, const px_http_match_t *m,
                           const px_view_t *names, const char *path, size_t len)
{
    size_t at = 0, np = 0;

    if (plen >= 2 && pat[plen - 2] == '/' && pat[plen - 1] == '*') {
        plen--;
        return m->nparams == 1 && len == plen + m->params[0].len && memcmp(path, pat, plen) == 0 &&
               m->params[0].base == path + plen;
    }
    for (size_t i = 0; i < plen;) {
        size_t n = param_len(pat + i, plen - i);
        if (n == 0) {
            if (at >= len || path[at] != pat[i])
                return false;
            at++, i++;
            continue;
        }
        if (np >= m->nparams || names[np].len != n - 2 ||
            memcmp(names[np].base, pat + i + 1, n - 2) != 0)
            return false;
        if (m->params[np].base != path + at || m->params[np].len == 0 ||
            memchr(m->params[np].base, '/', m->params[np].len) != NULL)
            return false;
        at += m->params[np++].len;
        i += n;
    }
    return np == m->nparams && at == len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD"};
    const char *patterns[MAX_PATTERNS], *p = (const char *)data, *e = p + size, *path;
    size_t lens[MAX_PATTERNS], npat = 0, len;
    int ids[MAX_PATTERNS];
    px_view_t names[PX_HTTP_ROUTE_MAX_PARAMS];
    px_http_router_t *r;
    px_http_match_t m;
    int rc;

    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        if (nl == NULL || npat == MAX_PATTERNS)
            break;
        patterns[npat] = p;
        lens[npat++] = (size_t)(nl - p);
        p = nl + 1;
    }
    path = p;
    len = (size_t)(e - p);
    if (px_http_router_new(&r) < 0)
        return 0;
    for (size_t i = 0; i < npat; i++) {
        ids[i] = px_http_router_add(r, patterns[i], lens[i], methods, 2);
        CHECK(ids[i] >= 0 || ids[i] == -EINVAL || ids[i] == -E2BIG || ids[i] == -EEXIST ||
              ids[i] == -ENOMEM);
    }
    rc = px_http_router_match(r, (px_view_t){"GET", 3}, (px_view_t){path, len}, &m);
    CHECK(rc == -ENOENT || (rc >= 0 && (size_t)rc < px_http_router_count(r)));
    if (rc >= 0) {
        size_t i = 0;
        while (i < npat && ids[i] != rc)
            i++;
        CHECK(i < npat);
        CHECK(px_http_router_param_names(r, rc, names, PX_HTTP_ROUTE_MAX_PARAMS) == m.nparams);
        CHECK(rebuild_equals(patterns[i], lens[i], &m, names, path, len));
        CHECK(px_http_router_match(r, (px_view_t){"POST", 4}, (px_view_t){path, len}, &m) ==
              -EPERM);
    } else {
        CHECK(m.route == -1 && m.nparams == 0);
    }
    px_http_router_free(r);
    return 0;
}
