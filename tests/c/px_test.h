/*
 * What the C unit tests share, so that no test carries its own copy:
 * assertion macros (each failure prints the file, the line, the expression and
 * both values, then exits 1), PX_SKIP (exit 77 with a reason, as meson and
 * automake expect), bounded waiting, a seeded random generator, and loopback
 * sockets for the tests that talk to a server. Engine set-up is in
 * px_test_engine.h.
 */
#ifndef PX_TEST_H
#define PX_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PX_FAIL_(...)                                   \
    do {                                                \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                   \
        fputc('\n', stderr);                            \
        exit(1);                                        \
    } while (0)

#define PX_CHECK(cond)                           \
    do {                                         \
        if (!(cond))                             \
            PX_FAIL_("check failed: %s", #cond); \
    } while (0)

#define PX_CHECK_INT_OP_(a, op, b)                                 \
    do {                                                           \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);           \
        if (!(a_ op b_))                                           \
            PX_FAIL_("%s %s %s: %jd vs %jd", #a, #op, #b, a_, b_); \
    } while (0)

#define PX_CHECK_EQ(a, b) PX_CHECK_INT_OP_(a, ==, b)
#define PX_CHECK_NE(a, b) PX_CHECK_INT_OP_(a, !=, b)
#define PX_CHECK_LT(a, b) PX_CHECK_INT_OP_(a, <, b)
#define PX_CHECK_LE(a, b) PX_CHECK_INT_OP_(a, <=, b)
#define PX_CHECK_GE(a, b) PX_CHECK_INT_OP_(a, >=, b)
#define PX_CHECK_GT(a, b) PX_CHECK_INT_OP_(a, >, b)

#define PX_CHECK_MEM(a, b, n)                                                           \
    do {                                                                                \
        if (memcmp((a), (b), (n)) != 0)                                                 \
            PX_FAIL_("%s and %s differ in their first %zu bytes", #a, #b, (size_t)(n)); \
    } while (0)

#define PX_CHECK_STR(a, b)                                          \
    do {                                                            \
        const char *a_ = (a), *b_ = (b);                            \
        if (strcmp(a_, b_) != 0)                                    \
            PX_FAIL_("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_, b_); \
    } while (0)

#define PX_SKIP(...)                  \
    do {                              \
        fprintf(stderr, "skipped: "); \
        fprintf(stderr, __VA_ARGS__); \
        fputc('\n', stderr);          \
        exit(77);                     \
    } while (0)

/* Monotonic milliseconds, for deadlines. */
static inline uint64_t px_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Poll cond every millisecond until it holds or timeout_ms passed; the caller
 * then checks what it waited for, so that a failure prints the values. */
#define PX_WAIT_UNTIL(cond, timeout_ms)                            \
    do {                                                           \
        uint64_t end_ = px_test_now_ms() + (uint64_t)(timeout_ms); \
        while (!(cond) && px_test_now_ms() < end_)                 \
            usleep(1000);                                          \
    } while (0)

/* xorshift32: a reproducible sequence from a fixed nonzero seed in *state. */
static inline uint32_t px_test_rand32(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

/* A loopback port nothing listens on (bound, read, released). */
static inline int px_test_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    PX_CHECK_GE(fd, 0);
    PX_CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    PX_CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* A blocking client connected to 127.0.0.1:port, with TCP_NODELAY (requests
 * go out at once) and a 10 s receive timeout, so that a server that never
 * answers fails the test instead of hanging it. */
static inline int px_test_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    PX_CHECK_GE(fd, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    PX_CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* recv, retried when interrupted: a socket with a receive timeout (as
 * px_test_connect makes) sees EINTR when io_uring task work of this process
 * lands on the calling thread. */
static inline ssize_t px_test_recv(int fd, void *buf, size_t n)
{
    ssize_t r;

    while ((r = recv(fd, buf, n, 0)) < 0 && errno == EINTR)
        ;
    return r;
}

/* Send all n bytes of p (the peer may have closed: no SIGPIPE, a failure). */
static inline void px_test_send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        PX_CHECK_GT(w, 0);
        p += w;
        n -= (size_t)w;
    }
}

static inline void px_test_send_str(int fd, const char *s)
{
    px_test_send_all(fd, s, strlen(s));
}

/* Read into buf (kept NUL-terminated) until end of file, an error or a
 * timeout, or until `until` (if not NULL) has been seen count times: the
 * length read. */
static inline size_t px_test_read_until(int fd, char *buf, size_t cap, const char *until, int count)
{
    size_t len = 0;

    for (;;) {
        ssize_t r = px_test_recv(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        if (until) {
            int seen = 0;
            for (char *p = buf; (p = strstr(p, until)) != NULL; p++)
                seen++;
            if (seen >= count)
                break;
        }
    }
    buf[len] = 0;
    return len;
}

#endif
