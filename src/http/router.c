/*
 * The route table: patterns compiled into segments at registration, matched
 * with a few memcmp calls per route. See include/px/http_router.h.
 *
 * Tables are small (an application's handlers), so each kind of route is a
 * plain array scanned in its order of precedence; what matters is that a match
 * never allocates, never backtracks and reads only the request's own bytes.
 */
#include "px/http_router.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"

enum {
    ROUTE_EXACT,
    ROUTE_PARAM,
    ROUTE_PREFIX
};

/* A literal piece of a param pattern (offsets into the route's pattern). */
typedef struct piece {
    uint32_t off, len;
} piece_t;

/* One segment of a param pattern: nparams parameters between nparams + 1
 * literal pieces (lits[first ... first + nparams]; any of them may be empty). */
typedef struct segment {
    unsigned first, nparams;
} segment_t;

typedef struct route {
    char *pattern; /* NUL-terminated copy; for a prefix route without its '*' */
    size_t len;
    int kind;
    segment_t *segs;
    unsigned nsegs;
    piece_t *lits;
    unsigned nlits;
    unsigned nparams;
    px_view_t names[PX_HTTP_ROUTE_MAX_PARAMS];
    char *allow; /* "GET, HEAD" */
    size_t allow_len;
    unsigned nmethods;
    px_view_t methods[PX_HTTP_ROUTE_MAX_METHODS]; /* views into allow */
} route_t;

struct px_http_router {
    route_t *routes; /* by id */
    size_t nroutes, cap;
    int *order; /* ids: exact ones, param ones, prefixes longest first */
    size_t nexact, nparam, nprefix;
};

static const char rest_name[] = "rest";

int px_http_router_new(px_http_router_t **out)
{
    px_http_router_t *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return -ENOMEM;
    *out = r;
    return 0;
}

static void route_free(route_t *rt)
{
    free(rt->pattern);
    free(rt->segs);
    free(rt->lits);
    free(rt->allow);
}

void px_http_router_free(px_http_router_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nroutes; i++)
        route_free(&r->routes[i]);
    free(r->routes);
    free(r->order);
    free(r);
}

size_t px_http_router_count(const px_http_router_t *r)
{
    return r->nroutes;
}

/* Length of a "{name}" at p (up to e), 0 when p does not open one. */
static size_t param_at(const char *p, const char *e)
{
    const char *q = p + 1;

    if (*p != '{' || q == e || !((unsigned)((*q | 0x20) - 'a') < 26u || *q == '_'))
        return 0;
    while (q < e &&
           ((unsigned)((*q | 0x20) - 'a') < 26u || *q == '_' || (unsigned)(*q - '0') < 10u))
        q++;
    return q < e && *q == '}' ? (size_t)(q + 1 - p) : 0;
}

/* Split the pattern of rt (starting with '/') into segments; 0 or -errno. */
static int compile_segments(route_t *rt)
{
    const char *base = rt->pattern, *e = base + rt->len, *p = base + 1;
    size_t nsegs = 1;

    for (const char *q = p; q < e; q++)
        nsegs += *q == '/';
    rt->segs = calloc(nsegs, sizeof(*rt->segs));
    rt->lits = calloc(nsegs + PX_HTTP_ROUTE_MAX_PARAMS, sizeof(*rt->lits));
    if (rt->segs == NULL || rt->lits == NULL)
        return -ENOMEM;
    for (;;) {
        const char *q = memchr(p, '/', (size_t)(e - p)), *end = q ? q : e, *lit = p;
        segment_t *sg = &rt->segs[rt->nsegs++];

        sg->first = rt->nlits;
        for (const char *c = p; c < end; c++) {
            size_t n = param_at(c, end);
            if (n == 0)
                continue;
            if (rt->nparams == PX_HTTP_ROUTE_MAX_PARAMS)
                return -E2BIG;
            for (unsigned i = 0; i < rt->nparams; i++)
                if (rt->names[i].len == n - 2 && memcmp(rt->names[i].base, c + 1, n - 2) == 0)
                    return -EINVAL;
            rt->names[rt->nparams++] = (px_view_t){c + 1, n - 2};
            rt->lits[rt->nlits++] = (piece_t){(uint32_t)(lit - base), (uint32_t)(c - lit)};
            sg->nparams++;
            lit = c + n;
            c += n - 1;
        }
        rt->lits[rt->nlits++] = (piece_t){(uint32_t)(lit - base), (uint32_t)(end - lit)};
        if (q == NULL)
            break;
        p = q + 1;
    }
    return 0;
}

static int set_methods(route_t *rt, const char *const *methods, size_t n)
{
    size_t total = 0, off = 0;

    if (n > PX_HTTP_ROUTE_MAX_METHODS)
        return -E2BIG;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(methods[i]);
        if (len == 0)
            return -EINVAL;
        for (size_t j = 0; j < len; j++)
            if (!is_tchar((unsigned char)methods[i][j]))
                return -EINVAL;
        total += len + 2;
    }
    rt->allow = malloc(total + 1);
    if (rt->allow == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(methods[i]);
        if (i > 0) {
            memcpy(rt->allow + off, ", ", 2);
            off += 2;
        }
        memcpy(rt->allow + off, methods[i], len);
        rt->methods[rt->nmethods++] = (px_view_t){rt->allow + off, len};
        off += len;
    }
    rt->allow[off] = '\0';
    rt->allow_len = off;
    return 0;
}

static int kind_of(const char *pattern, size_t len)
{
    if (len >= 2 && pattern[len - 2] == '/' && pattern[len - 1] == '*')
        return ROUTE_PREFIX;
    for (size_t i = 0; i < len; i++)
        if (param_at(pattern + i, pattern + len))
            return ROUTE_PARAM;
    return ROUTE_EXACT;
}

/* Insert id into order where its kind's precedence puts it. */
static void place(px_http_router_t *r, int id)
{
    const route_t *rt = &r->routes[id];
    size_t at;

    if (rt->kind == ROUTE_EXACT) {
        at = r->nexact++;
    } else if (rt->kind == ROUTE_PARAM) {
        at = r->nexact + r->nparam++;
    } else {
        size_t first = r->nexact + r->nparam, end = first + r->nprefix++;
        /* longest first; among equal lengths the earlier route stays first */
        for (at = first; at < end && r->routes[r->order[at]].len >= rt->len; at++)
            ;
    }
    memmove(&r->order[at + 1], &r->order[at], (r->nroutes - 1 - at) * sizeof(int));
    r->order[at] = id;
}

int px_http_router_add(px_http_router_t *r, const char *pattern, size_t len,
                       const char *const *methods, size_t nmethods)
{
    route_t rt = {0};
    int rc, kind;

    if (len == 0 || pattern[0] != '/' || len > UINT32_MAX || memchr(pattern, 0, len))
        return -EINVAL;
    kind = kind_of(pattern, len);
    if (kind == ROUTE_PREFIX)
        len--; /* keep the '/' before the '*' */
    for (size_t i = 0; i < r->nroutes; i++)
        if (r->routes[i].kind == kind && r->routes[i].len == len &&
            memcmp(r->routes[i].pattern, pattern, len) == 0)
            return -EEXIST;
    if (r->nroutes == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        route_t *routes = realloc(r->routes, cap * sizeof(*routes));
        if (routes == NULL)
            return -ENOMEM;
        r->routes = routes;
        int *order = realloc(r->order, cap * sizeof(*order));
        if (order == NULL)
            return -ENOMEM;
        r->order = order;
        r->cap = cap;
    }
    rt.kind = kind;
    rt.len = len;
    rt.pattern = malloc(len + 1);
    if (rt.pattern == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    memcpy(rt.pattern, pattern, len);
    rt.pattern[len] = '\0';
    if (kind == ROUTE_PARAM && (rc = compile_segments(&rt)) < 0)
        goto fail;
    if (kind == ROUTE_PREFIX) {
        rt.names[0] = (px_view_t){rest_name, sizeof(rest_name) - 1};
        rt.nparams = 1;
    }
    if ((rc = set_methods(&rt, methods, nmethods)) < 0)
        goto fail;
    r->routes[r->nroutes++] = rt;
    place(r, (int)r->nroutes - 1);
    return (int)r->nroutes - 1;

fail:
    route_free(&rt);
    return rc;
}

/* Start of the rightmost occurrence of lit[0..len) in s[lo..hi) (offsets),
 * or -1. */
static long rightmost(const char *s, size_t lo, size_t hi, const char *lit, size_t len)
{
    if (hi < lo + len)
        return -1;
    for (size_t at = hi - len + 1; at-- > lo;)
        if (memcmp(s + at, lit, len) == 0)
            return (long)at;
    return -1;
}

/* One segment s[0..n) (no '/') against sg: every parameter takes one byte or
 * more, the earlier ones as many as they can (what the regex
 * "lit0([^/]+)lit1([^/]+)..." gives). Placing each literal as far right as the
 * ones after it allow, from the last to the first, finds that match without
 * backtracking. */
static bool match_segment(const route_t *rt, const segment_t *sg, const char *s, size_t n,
                          px_view_t *params)
{
    const char *base = rt->pattern;
    const piece_t *lit = &rt->lits[sg->first];
    unsigned k = sg->nparams;
    size_t start[PX_HTTP_ROUTE_MAX_PARAMS + 1], lo = lit[0].len;

    if (n < (size_t)lit[0].len + lit[k].len + k || memcmp(s, base + lit[0].off, lit[0].len) != 0 ||
        memcmp(s + n - lit[k].len, base + lit[k].off, lit[k].len) != 0)
        return false;
    start[k] = n - lit[k].len;
    for (unsigned i = k - 1; i >= 1; i--) {
        /* lit[i] ends a byte or more before lit[i + 1] starts and leaves a
         * byte for each of the i parameters before it. */
        long at = rightmost(s, lo + i, start[i + 1] - 1, base + lit[i].off, lit[i].len);
        if (at < 0)
            return false;
        start[i] = (size_t)at;
    }
    start[0] = 0;
    for (unsigned i = 0; i < k; i++) {
        size_t from = start[i] + lit[i].len;
        params[i] = (px_view_t){s + from, start[i + 1] - from};
    }
    return true;
}

/* The param route rt against path [p, e) (p[0] is '/'). */
static bool match_segments(const route_t *rt, const char *p, const char *e, px_http_match_t *m)
{
    const char *base = rt->pattern;
    unsigned np = 0;

    p++;
    for (unsigned i = 0; i < rt->nsegs; i++) {
        const segment_t *sg = &rt->segs[i];
        const char *q = memchr(p, '/', (size_t)(e - p));
        size_t n;

        if (q == NULL)
            q = e;
        if ((i + 1 < rt->nsegs) != (q != e))
            return false; /* the path has fewer or more segments */
        n = (size_t)(q - p);
        if (sg->nparams == 0) {
            const piece_t *lit = &rt->lits[sg->first];
            if (n != lit->len || memcmp(p, base + lit->off, n) != 0)
                return false;
        } else if (!match_segment(rt, sg, p, n, &m->params[np])) {
            return false;
        }
        np += sg->nparams;
        p = q + 1;
    }
    m->nparams = np;
    return true;
}

static bool takes(const route_t *rt, px_view_t method)
{
    for (unsigned i = 0; i < rt->nmethods; i++)
        if (rt->methods[i].len == method.len &&
            memcmp(rt->methods[i].base, method.base, method.len) == 0)
            return true;
    return false;
}

int px_http_router_match(const px_http_router_t *r, px_view_t method, px_view_t path,
                         px_http_match_t *m)
{
    const char *p = path.base, *e = p + path.len;
    size_t i = 0, end;
    int id = -1;

    m->route = -1;
    m->nparams = 0;
    for (end = r->nexact; i < end && id < 0; i++) {
        const route_t *rt = &r->routes[r->order[i]];
        if (rt->len == path.len && memcmp(rt->pattern, p, path.len) == 0)
            id = r->order[i];
    }
    if (path.len == 0 || *p != '/')
        goto done; /* "*" (OPTIONS) matches only an exact route */
    for (i = r->nexact, end = i + r->nparam; i < end && id < 0; i++)
        if (match_segments(&r->routes[r->order[i]], p, e, m))
            id = r->order[i];
    for (i = r->nexact + r->nparam, end = i + r->nprefix; i < end && id < 0; i++) {
        const route_t *rt = &r->routes[r->order[i]];
        if (rt->len <= path.len && memcmp(rt->pattern, p, rt->len) == 0) {
            m->params[0] = (px_view_t){p + rt->len, path.len - rt->len};
            m->nparams = 1;
            id = r->order[i];
        }
    }
done:
    if (id < 0)
        return -ENOENT;
    m->route = id;
    return takes(&r->routes[id], method) ? id : -EPERM;
}

px_view_t px_http_router_allow(const px_http_router_t *r, int id)
{
    if (id < 0 || (size_t)id >= r->nroutes)
        return (px_view_t){"", 0};
    return (px_view_t){r->routes[id].allow, r->routes[id].allow_len};
}

unsigned px_http_router_param_names(const px_http_router_t *r, int id, px_view_t *names,
                                    unsigned cap)
{
    const route_t *rt;

    if (id < 0 || (size_t)id >= r->nroutes)
        return 0;
    rt = &r->routes[id];
    for (unsigned i = 0; i < rt->nparams && i < cap; i++)
        names[i] = rt->names[i];
    return rt->nparams;
}
