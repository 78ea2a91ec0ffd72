/* The route table: exact, param and prefix patterns, precedence (exact, then
 * param in registration order, then the longest prefix), 405 against 404,
 * parameter views and names, refused patterns, the lenient parameter decoder,
 * and every path placed to end at an inaccessible page so that any read past
 * the path crashes. */
#include "px/http_path.h"
#include "px/http_router.h"
#include "px_test.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *const GET_HEAD[] = {"GET", "HEAD"};
static const char *const POST[] = {"POST"};

static px_view_t v(const char *s)
{
    return (px_view_t){s, strlen(s)};
}

static int add(px_http_router_t *r, const char *pattern, const char *const *m, size_t n)
{
    return px_http_router_add(r, pattern, strlen(pattern), m, n);
}

static int match(const px_http_router_t *r, const char *method, const char *path,
                 px_http_match_t *m)
{
    return px_http_router_match(r, v(method), v(path), m);
}

#define CHECK_VIEW(view, lit)                                                     \
    do {                                                                          \
        px_view_t v_ = (view);                                                    \
        if (v_.len != strlen(lit) || memcmp(v_.base, lit, v_.len) != 0)           \
            PX_FAIL_("%s: \"%.*s\" vs \"%s\"", #view, (int)v_.len, v_.base, lit); \
    } while (0)

/* The routes of most tests, with their ids. */
enum {
    R_JSON,
    R_USER,
    R_USER_ME,
    R_FILE,
    R_STATIC,
    R_STATIC_IMG,
    R_ROOT,
    R_POST,
    R_TWO,
    R_SLASH,
    R_ALL
};

static px_http_router_t *table(void)
{
    px_http_router_t *r;

    PX_CHECK_EQ(px_http_router_new(&r), 0);
    PX_CHECK_EQ(add(r, "/json", GET_HEAD, 2), R_JSON);
    PX_CHECK_EQ(add(r, "/users/{id}", GET_HEAD, 2), R_USER);
    PX_CHECK_EQ(add(r, "/users/me", GET_HEAD, 2), R_USER_ME);
    PX_CHECK_EQ(add(r, "/files/{name}.txt", GET_HEAD, 2), R_FILE);
    PX_CHECK_EQ(add(r, "/static/*", GET_HEAD, 2), R_STATIC);
    PX_CHECK_EQ(add(r, "/static/img/*", GET_HEAD, 2), R_STATIC_IMG);
    PX_CHECK_EQ(add(r, "/", GET_HEAD, 2), R_ROOT);
    PX_CHECK_EQ(add(r, "/submit", POST, 1), R_POST);
    PX_CHECK_EQ(add(r, "/a/{x}/b/{y}", GET_HEAD, 2), R_TWO);
    PX_CHECK_EQ(add(r, "/dir/{d}/", GET_HEAD, 2), R_SLASH);
    PX_CHECK_EQ(add(r, "/*", GET_HEAD, 2), R_ALL);
    PX_CHECK_EQ(px_http_router_count(r), R_ALL + 1);
    return r;
}

static void test_exact_and_methods(void)
{
    px_http_router_t *r = table();
    px_http_match_t m;

    PX_CHECK_EQ(match(r, "GET", "/json", &m), R_JSON);
    PX_CHECK_EQ(m.route, R_JSON);
    PX_CHECK_EQ(m.nparams, 0);
    PX_CHECK_EQ(match(r, "HEAD", "/json", &m), R_JSON);
    /* a known path, a method its route does not take: 405, not another route */
    PX_CHECK_EQ(match(r, "POST", "/json", &m), -EPERM);
    PX_CHECK_EQ(m.route, R_JSON);
    PX_CHECK_EQ(match(r, "get", "/json", &m), -EPERM); /* methods are case-sensitive */
    PX_CHECK_EQ(match(r, "POST", "/submit", &m), R_POST);
    PX_CHECK_EQ(match(r, "GET", "/submit", &m), -EPERM);
    CHECK_VIEW(px_http_router_allow(r, R_POST), "POST");
    CHECK_VIEW(px_http_router_allow(r, R_JSON), "GET, HEAD");
    CHECK_VIEW(px_http_router_allow(r, 99), "");
    PX_CHECK_EQ(match(r, "GET", "/", &m), R_ROOT);
    px_http_router_free(r);
}

/* Several parameters in one segment: each takes a byte or more, the earlier
 * ones as many as they can, as the regex "([^/]+)-([^/]+)" would. */
static void test_params_in_one_segment(void)
{
    static const struct {
        const char *pattern, *path;
        int ok;
        const char *params[3];
    } cases[] = {
        {"/{a}-{b}", "/x-y", 1, {"x", "y"}},
        {"/{a}-{b}", "/x-y-z", 1, {"x-y", "z"}},
        {"/{a}-{b}", "/-y", 0, {NULL}},
        {"/{a}-{b}", "/x-", 0, {NULL}},
        {"/{a}-{b}", "/xy", 0, {NULL}},
        {"/{a}-{b}", "/x--y", 1, {"x-", "y"}},
        {"/{a}{b}", "/xyz", 1, {"xy", "z"}},
        {"/{a}{b}", "/x", 0, {NULL}},
        {"/f/{name}.{ext}", "/f/a.tar.gz", 1, {"a.tar", "gz"}},
        {"/f/{name}.{ext}", "/f/.gz", 0, {NULL}},
        {"/p{a}q{b}r{c}s", "/p1q2r3s", 1, {"1", "2", "3"}},
        {"/p{a}q{b}r{c}s", "/pqqqrrrs", 1, {"qq", "r", "r"}},
        {"/p{a}q{b}r{c}s", "/p1q2r3", 0, {NULL}},
        {"/p{a}q{b}r{c}s", "/p1r2q3s", 0, {NULL}},
        {"/{a}ab{b}", "/aab", 0, {NULL}},
        {"/{a}ab{b}", "/xabab", 1, {"x", "ab"}},
        {"/{a}ab{b}", "/xaby", 1, {"x", "y"}},
    };
    px_http_router_t *r;
    px_http_match_t m;

    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        PX_CHECK_EQ(px_http_router_new(&r), 0);
        PX_CHECK_EQ(add(r, cases[i].pattern, GET_HEAD, 2), 0);
        if (!cases[i].ok) {
            PX_CHECK_EQ(match(r, "GET", cases[i].path, &m), -ENOENT);
        } else {
            unsigned want = 0;
            while (want < PX_ARRAY_SIZE(cases[i].params) && cases[i].params[want] != NULL)
                want++;
            PX_CHECK_EQ(match(r, "GET", cases[i].path, &m), 0);
            PX_CHECK_EQ(m.nparams, want);
            for (unsigned j = 0; j < want; j++)
                CHECK_VIEW(m.params[j], cases[i].params[j]);
        }
        px_http_router_free(r);
    }
}

static void test_params(void)
{
    px_http_router_t *r = table();
    px_http_match_t m;
    px_view_t names[PX_HTTP_ROUTE_MAX_PARAMS];

    PX_CHECK_EQ(match(r, "GET", "/users/42", &m), R_USER);
    PX_CHECK_EQ(m.nparams, 1);
    CHECK_VIEW(m.params[0], "42");
    PX_CHECK_EQ(px_http_router_param_names(r, R_USER, names, 8), 1);
    CHECK_VIEW(names[0], "id");
    /* exact beats param, whatever the order of registration */
    PX_CHECK_EQ(match(r, "GET", "/users/me", &m), R_USER_ME);
    PX_CHECK_EQ(m.nparams, 0);
    /* a parameter is never empty and never crosses a '/'; it stays encoded */
    PX_CHECK_EQ(match(r, "GET", "/users/a%2Fb", &m), R_USER);
    CHECK_VIEW(m.params[0], "a%2Fb");
    PX_CHECK_EQ(match(r, "GET", "/users/a/b", &m), R_ALL);
    PX_CHECK_EQ(match(r, "GET", "/users/", &m), R_ALL);
    /* a literal suffix in the segment */
    PX_CHECK_EQ(match(r, "GET", "/files/a.b.txt", &m), R_FILE);
    CHECK_VIEW(m.params[0], "a.b");
    PX_CHECK_EQ(match(r, "GET", "/files/.txt", &m), R_ALL);
    PX_CHECK_EQ(match(r, "GET", "/files/x.txt/", &m), R_ALL);
    /* two parameters */
    PX_CHECK_EQ(match(r, "GET", "/a/1/b/2", &m), R_TWO);
    PX_CHECK_EQ(m.nparams, 2);
    CHECK_VIEW(m.params[0], "1");
    CHECK_VIEW(m.params[1], "2");
    PX_CHECK_EQ(px_http_router_param_names(r, R_TWO, names, 1), 2);
    CHECK_VIEW(names[0], "x");
    PX_CHECK_EQ(match(r, "GET", "/a/1/c/2", &m), R_ALL);
    PX_CHECK_EQ(match(r, "GET", "/a/1/b/2/", &m), R_ALL);
    /* a trailing '/' in the pattern is a segment like any other */
    PX_CHECK_EQ(match(r, "GET", "/dir/x/", &m), R_SLASH);
    CHECK_VIEW(m.params[0], "x");
    PX_CHECK_EQ(match(r, "GET", "/dir/x", &m), R_ALL);
    PX_CHECK_EQ(match(r, "POST", "/users/7", &m), -EPERM);
    PX_CHECK_EQ(m.route, R_USER);
    px_http_router_free(r);
}

static void test_prefixes(void)
{
    px_http_router_t *r = table();
    px_http_match_t m;
    px_view_t names[1];

    /* the longest prefix wins, whatever the order of registration */
    PX_CHECK_EQ(match(r, "GET", "/static/img/a.png", &m), R_STATIC_IMG);
    CHECK_VIEW(m.params[0], "a.png");
    PX_CHECK_EQ(match(r, "GET", "/static/css/a.css", &m), R_STATIC);
    CHECK_VIEW(m.params[0], "css/a.css");
    PX_CHECK_EQ(match(r, "GET", "/static/", &m), R_STATIC);
    PX_CHECK_EQ(m.nparams, 1);
    CHECK_VIEW(m.params[0], "");
    PX_CHECK_EQ(match(r, "GET", "/static", &m), R_ALL); /* the prefix is "/static/" */
    CHECK_VIEW(m.params[0], "static");
    PX_CHECK_EQ(px_http_router_param_names(r, R_STATIC, names, 1), 1);
    CHECK_VIEW(names[0], "rest");
    PX_CHECK_EQ(match(r, "DELETE", "/anything", &m), -EPERM);
    PX_CHECK_EQ(m.route, R_ALL);
    px_http_router_free(r);

    /* without a catch-all: 404, and "*" (OPTIONS) only matches an exact route */
    PX_CHECK_EQ(px_http_router_new(&r), 0);
    PX_CHECK_EQ(add(r, "/x/*", GET_HEAD, 2), 0);
    PX_CHECK_EQ(add(r, "/{a}", GET_HEAD, 2), 1);
    PX_CHECK_EQ(match(r, "GET", "/y/z", &m), -ENOENT);
    PX_CHECK_EQ(m.route, -1);
    PX_CHECK_EQ(m.nparams, 0);
    PX_CHECK_EQ(match(r, "OPTIONS", "*", &m), -ENOENT);
    PX_CHECK_EQ(match(r, "GET", "", &m), -ENOENT);
    /* a literal prefix: braces included */
    PX_CHECK_EQ(add(r, "/{b}/*", GET_HEAD, 2), 2);
    PX_CHECK_EQ(match(r, "GET", "/{b}/c", &m), 2);
    PX_CHECK_EQ(match(r, "GET", "/q/c", &m), -ENOENT);
    px_http_router_free(r);
}

static void test_refused(void)
{
    static const char *const bad_method[] = {"GE T"};
    static const char *const empty_method[] = {""};
    px_http_router_t *r;
    px_http_match_t m;

    PX_CHECK_EQ(px_http_router_new(&r), 0);
    PX_CHECK_EQ(add(r, "json", GET_HEAD, 2), -EINVAL);
    PX_CHECK_EQ(add(r, "", GET_HEAD, 2), -EINVAL);
    PX_CHECK_EQ(add(r, "/{a}/{a}", GET_HEAD, 2), -EINVAL);
    PX_CHECK_EQ(add(r, "/{1}/{a}", GET_HEAD, 2), 0); /* "{1}" is literal */
    PX_CHECK_EQ(add(r, "/{1}/{b}", GET_HEAD, 2), 1);
    PX_CHECK_EQ(add(r, "/{1}/{a}", POST, 1), -EEXIST);
    PX_CHECK_EQ(add(r, "/x", bad_method, 1), -EINVAL);
    PX_CHECK_EQ(add(r, "/x", empty_method, 1), -EINVAL);
    PX_CHECK_EQ(add(r, "/a/{b", GET_HEAD, 2), 2); /* no closing brace: exact */
    PX_CHECK_EQ(match(r, "GET", "/a/{b", &m), 2);
    PX_CHECK_EQ(add(r, "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", GET_HEAD, 2), -E2BIG);
    PX_CHECK_EQ(add(r, "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", GET_HEAD, 2), 3);
    PX_CHECK_EQ(match(r, "GET", "/p/1/2/3/4/5/6/7/8", &m), 3);
    PX_CHECK_EQ(m.nparams, 8);
    CHECK_VIEW(m.params[7], "8");
    /* no methods: the path is known, every method refused */
    PX_CHECK_EQ(add(r, "/none", NULL, 0), 4);
    PX_CHECK_EQ(match(r, "GET", "/none", &m), -EPERM);
    CHECK_VIEW(px_http_router_allow(r, 4), "");
    /* the same text as exact and as prefix are different routes */
    PX_CHECK_EQ(add(r, "/d/", GET_HEAD, 2), 5);
    PX_CHECK_EQ(add(r, "/d/*", GET_HEAD, 2), 6);
    PX_CHECK_EQ(match(r, "GET", "/d/", &m), 5);
    PX_CHECK_EQ(match(r, "GET", "/d/e", &m), 6);
    px_http_router_free(r);
}

static void test_unquote(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},     {"abc", "abc"}, {"%41", "A"},   {"a%2Fb", "a/b"},       {"%", "%"},
        {"%4", "%4"}, {"%zz", "%zz"}, {"%%41", "%A"}, {"%c3%A9", "\xc3\xa9"}, {"a%", "a%"},
        {"%2", "%2"}, {"+", "+"},
    };
    char out[32];

    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        int n = px_http_unquote(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        PX_CHECK_EQ(n, strlen(cases[i].out));
        PX_CHECK_MEM(out, cases[i].out, (size_t)n);
    }
    PX_CHECK_EQ(px_http_unquote("%00", 3, out, sizeof(out)), 1);
    PX_CHECK_EQ(out[0], 0);
    PX_CHECK_EQ(px_http_unquote("abc", 3, out, 2), -ENAMETOOLONG);
    PX_CHECK_EQ(px_http_unquote("%41bc", 5, out, 3), 3);
}

/* Every prefix of every path, ending right before an inaccessible page. */
static void test_guard(void)
{
    static const char *const paths[] = {
        "/json",
        "/users/42",
        "/users/me",
        "/files/a.b.txt",
        "/static/img/x",
        "/static/",
        "/a/1/b/2",
        "/dir/x/",
        "/",
        "/users/",
        "/files/.txt",
        "/%41%4",
        "/x%",
        "/p/1/2/3/4/5/6/7/8",
    };
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    px_http_router_t *r = table();
    px_http_match_t m;
    char out[64];

    if (mem == MAP_FAILED)
        PX_SKIP("mmap: %s", strerror(errno));
    PX_CHECK_EQ(mprotect(mem + page, page, PROT_NONE), 0);
    PX_CHECK_EQ(add(r, "/p/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", GET_HEAD, 2), R_ALL + 1);
    for (size_t i = 0; i < PX_ARRAY_SIZE(paths); i++) {
        size_t n = strlen(paths[i]);
        for (size_t k = 0; k <= n; k++) {
            char *p = mem + page - k;
            memcpy(p, paths[i], k);
            int rc = px_http_router_match(r, (px_view_t){"GET", 3}, (px_view_t){p, k}, &m);
            PX_CHECK(rc >= 0 || rc == -ENOENT || rc == -EPERM);
            for (unsigned j = 0; j < m.nparams && rc >= 0; j++)
                PX_CHECK(m.params[j].base >= p && m.params[j].base + m.params[j].len <= p + k);
            PX_CHECK_GE(px_http_unquote(p, k, out, sizeof(out)), 0);
            px_http_path_decode(p, k, out, sizeof(out));
        }
    }
    px_http_router_free(r);
    munmap(mem, 2 * page);
}

int main(void)
{
    test_exact_and_methods();
    test_params();
    test_params_in_one_segment();
    test_prefixes();
    test_refused();
    test_unquote();
    test_guard();
    return 0;
}
