/*
 * Tiny assertion macros for the C unit tests: each failure prints the file, the
 * line, the expression and both values, then exits 1. A test that cannot run
 * here calls PX_SKIP with a reason (exit 77, as meson and automake expect).
 */
#ifndef PX_TEST_H
#define PX_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PX_FAIL_(...)                                                        \
    do {                                                                     \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                      \
        fprintf(stderr, __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                 \
        exit(1);                                                             \
    } while (0)

#define PX_CHECK(cond)                                                       \
    do {                                                                     \
        if (!(cond)) PX_FAIL_("check failed: %s", #cond);                    \
    } while (0)

#define PX_CHECK_INT_OP_(a, op, b)                                           \
    do {                                                                     \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                     \
        if (!(a_ op b_))                                                     \
            PX_FAIL_("%s %s %s: %jd vs %jd", #a, #op, #b, a_, b_);           \
    } while (0)

#define PX_CHECK_EQ(a, b) PX_CHECK_INT_OP_(a, ==, b)
#define PX_CHECK_NE(a, b) PX_CHECK_INT_OP_(a, !=, b)
#define PX_CHECK_LT(a, b) PX_CHECK_INT_OP_(a, <, b)
#define PX_CHECK_LE(a, b) PX_CHECK_INT_OP_(a, <=, b)
#define PX_CHECK_GE(a, b) PX_CHECK_INT_OP_(a, >=, b)
#define PX_CHECK_GT(a, b) PX_CHECK_INT_OP_(a, >, b)

#define PX_CHECK_MEM(a, b, n)                                                \
    do {                                                                     \
        if (memcmp((a), (b), (n)) != 0)                                      \
            PX_FAIL_("%s and %s differ in their first %zu bytes", #a, #b,    \
                     (size_t)(n));                                           \
    } while (0)

#define PX_CHECK_STR(a, b)                                                   \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (strcmp(a_, b_) != 0)                                             \
            PX_FAIL_("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_, b_);          \
    } while (0)

#define PX_SKIP(...)                                                         \
    do {                                                                     \
        fprintf(stderr, "skipped: ");                                        \
        fprintf(stderr, __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                 \
        exit(77);                                                            \
    } while (0)

#endif
