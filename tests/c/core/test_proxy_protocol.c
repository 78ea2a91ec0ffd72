/*
 * The PROXY protocol parser: versions 1 and 2 with their addresses, every
 * prefix of a valid header incomplete, malformed headers refused, and every
 * prefix placed against an inaccessible page (an over-read crashes).
 */
#include "px/proxy_protocol.h"
#include "px_test.h"

#include <sys/mman.h>

static const char V2_SIG[12] = "\r\n\r\n\0\r\nQUIT\n";

static int parse(const char *s, size_t n, px_proxy_header_t *h)
{
    return px_proxy_parse(s, n, h);
}

static void check_v4(const struct sockaddr_storage *ss, const char *addr, int port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char text[INET_ADDRSTRLEN];

    PX_CHECK_EQ(sin->sin_family, AF_INET);
    PX_CHECK(inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) != NULL);
    PX_CHECK_STR(text, addr);
    PX_CHECK_EQ(ntohs(sin->sin_port), port);
}

static void check_v6(const struct sockaddr_storage *ss, const char *addr, int port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char text[INET6_ADDRSTRLEN];

    PX_CHECK_EQ(sin6->sin6_family, AF_INET6);
    PX_CHECK(inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text)) != NULL);
    PX_CHECK_STR(text, addr);
    PX_CHECK_EQ(ntohs(sin6->sin6_port), port);
}

/* Every proper prefix of s[0..n) is incomplete; the whole is n bytes. */
static void check_prefixes(const char *s, size_t n)
{
    px_proxy_header_t h;

    for (size_t k = 0; k < n; k++)
        PX_CHECK_EQ(parse(s, k, &h), PX_PROXY_INCOMPLETE);
    PX_CHECK_EQ(parse(s, n, &h), (int)n);
}

static void test_v1(void)
{
    static const char tcp4[] = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nGET /";
    static const char tcp6[] = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    static const char unknown[] = "PROXY UNKNOWN ffff::1 ::2 1 2\r\n";
    size_t head4 = sizeof(tcp4) - 1 - 5;
    px_proxy_header_t h;

    PX_CHECK_EQ(parse(tcp4, sizeof(tcp4) - 1, &h), (int)head4);
    PX_CHECK_EQ(h.version, 1);
    PX_CHECK(!h.local);
    PX_CHECK_EQ(h.addr_len, sizeof(struct sockaddr_in));
    check_v4(&h.src, "192.0.2.1", 56324);
    check_v4(&h.dst, "198.51.100.7", 443);
    check_prefixes(tcp4, head4);
    PX_CHECK_EQ(parse(tcp6, sizeof(tcp6) - 1, &h), (int)sizeof(tcp6) - 1);
    check_v6(&h.src, "2001:db8::1", 65535);
    check_v6(&h.dst, "::1", 0);
    PX_CHECK_EQ(parse(unknown, sizeof(unknown) - 1, &h), (int)sizeof(unknown) - 1);
    PX_CHECK(h.local);
    PX_CHECK_EQ(parse("PROXY UNKNOWN\r\n", 15, &h), 15);
    PX_CHECK(h.local);
}

static void test_v1_refused(void)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       /* a field missing */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   /* one too many */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",    /* two spaces */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",    /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",   /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /* port out of range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", /* leading zero in IPv4 */
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",      /* family mismatch */
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",    /* bare LF: never a CRLF */
        "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", /* a control byte */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        "\r\n\r\n\0\r\nQUIX\n",
    };
    char longline[200];
    px_proxy_header_t h;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i]);
        if (i == sizeof(bad) / sizeof(bad[0]) - 1)
            n = 12;
        int rc = parse(bad[i], n, &h);
        if (rc != PX_PROXY_ERROR && !(i == 13 && rc == PX_PROXY_INCOMPLETE))
            PX_FAIL_("case %zu (%s): %d, not an error", i, bad[i], rc);
    }
    /* 108 bytes with no CRLF within 107: refused, not waited for. */
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "PROXY UNKNOWN ", 14);
    PX_CHECK_EQ(parse(longline, PX_PROXY_V1_MAX - 1, &h), PX_PROXY_INCOMPLETE);
    PX_CHECK_EQ(parse(longline, PX_PROXY_V1_MAX, &h), PX_PROXY_ERROR);
    memcpy(longline + PX_PROXY_V1_MAX - 2, "\r\n", 2);
    PX_CHECK_EQ(parse(longline, PX_PROXY_V1_MAX, &h), PX_PROXY_V1_MAX);
    memcpy(longline + PX_PROXY_V1_MAX - 2, "x\r\n", 3);
    PX_CHECK_EQ(parse(longline, PX_PROXY_V1_MAX + 1, &h), PX_PROXY_ERROR);
}

/* A version 2 header: signature, ver_cmd, family, length, then body. */
static size_t v2(char *out, unsigned char ver_cmd, unsigned char fam, const void *body, size_t len)
{
    memcpy(out, V2_SIG, 12);
    out[12] = (char)ver_cmd;
    out[13] = (char)fam;
    out[14] = (char)(len >> 8);
    out[15] = (char)(len & 0xff);
    memcpy(out + 16, body, len);
    return 16 + len;
}

static void test_v2(void)
{
    unsigned char a4[12 + 7] = {192,
                                0,
                                2,
                                1,
                                198,
                                51,
                                100,
                                7,
                                0xdc,
                                0x04,
                                0x01,
                                0xbb,
                                /* a TLV behind the addresses: skipped */ 0x04,
                                0,
                                4,
                                1,
                                2,
                                3,
                                4};
    unsigned char a6[36] = {0};
    char buf[8192];
    px_proxy_header_t h;
    size_t n;

    n = v2(buf, 0x21, 0x11, a4, sizeof(a4));
    PX_CHECK_EQ(parse(buf, n, &h), (int)n);
    PX_CHECK_EQ(h.version, 2);
    PX_CHECK(!h.local);
    check_v4(&h.src, "192.0.2.1", 56324);
    check_v4(&h.dst, "198.51.100.7", 443);
    check_prefixes(buf, n);
    a6[15] = 1;                /* ::1 */
    a6[16] = 0x20, a6[17] = 1; /* 2001:: */
    a6[32] = 0x12, a6[33] = 0x34;
    a6[34] = 0, a6[35] = 80;
    n = v2(buf, 0x21, 0x21, a6, sizeof(a6));
    PX_CHECK_EQ(parse(buf, n, &h), (int)n);
    check_v6(&h.src, "::1", 0x1234);
    check_v6(&h.dst, "2001::", 80);
    /* LOCAL (the balancer's own checks), UNSPEC, Unix: the connection's own addresses. */
    n = v2(buf, 0x20, 0x00, a4, 0);
    PX_CHECK_EQ(parse(buf, n, &h), 16);
    PX_CHECK(h.local);
    n = v2(buf, 0x20, 0x11, a4, 12);
    PX_CHECK_EQ(parse(buf, n, &h), 28);
    PX_CHECK(h.local);
    n = v2(buf, 0x20, 0x12, a4, 12); /* LOCAL: its family, a datagram one too, is ignored */
    PX_CHECK_EQ(parse(buf, n, &h), 28);
    PX_CHECK(h.local);
    n = v2(buf, 0x21, 0x00, a4, 0);
    PX_CHECK_EQ(parse(buf, n, &h), 16);
    PX_CHECK(h.local);
    n = v2(buf, 0x21, 0x31, a4, 12);
    PX_CHECK_EQ(parse(buf, n, &h), 28);
    PX_CHECK(h.local);
    /* Refused: another version, another command, datagrams, short addresses,
     * an unknown family, a header over the limit. */
    PX_CHECK_EQ(parse(buf, v2(buf, 0x11, 0x11, a4, 12), &h), PX_PROXY_ERROR);
    PX_CHECK_EQ(parse(buf, v2(buf, 0x22, 0x11, a4, 12), &h), PX_PROXY_ERROR);
    PX_CHECK_EQ(parse(buf, v2(buf, 0x21, 0x12, a4, 12), &h), PX_PROXY_ERROR);
    PX_CHECK_EQ(parse(buf, v2(buf, 0x21, 0x11, a4, 11), &h), PX_PROXY_ERROR);
    PX_CHECK_EQ(parse(buf, v2(buf, 0x21, 0x21, a6, 35), &h), PX_PROXY_ERROR);
    PX_CHECK_EQ(parse(buf, v2(buf, 0x21, 0x41, a4, 12), &h), PX_PROXY_ERROR);
    memset(buf, 0, sizeof(buf));
    n = v2(buf, 0x21, 0x11, a4, 12);
    buf[14] = (char)((PX_PROXY_V2_MAX - 15) >> 8);
    buf[15] = (char)((PX_PROXY_V2_MAX - 15) & 0xff);
    PX_CHECK_EQ(parse(buf, 16, &h), PX_PROXY_ERROR);
    buf[14] = (char)((PX_PROXY_V2_MAX - 16) >> 8);
    buf[15] = (char)((PX_PROXY_V2_MAX - 16) & 0xff);
    PX_CHECK_EQ(parse(buf, PX_PROXY_V2_MAX - 1, &h), PX_PROXY_INCOMPLETE);
    PX_CHECK_EQ(parse(buf, PX_PROXY_V2_MAX, &h), PX_PROXY_V2_MAX);
}

/* Every prefix of every input ends at an inaccessible page. */
static void test_guard_pages(void)
{
    static const char *const inputs[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
        "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    };
    unsigned char a4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char v2buf[64];
    px_proxy_header_t h;

    if (m == MAP_FAILED)
        PX_SKIP("mmap: %s", strerror(errno));
    PX_CHECK_EQ(mprotect(m + page, page, PROT_NONE), 0);
    for (size_t i = 0; i <= sizeof(inputs) / sizeof(inputs[0]); i++) {
        const char *s = i < 4 ? inputs[i] : v2buf;
        size_t n = i < 4 ? strlen(s) : v2(v2buf, 0x21, 0x11, a4, sizeof(a4));
        for (size_t k = 0; k <= n; k++) {
            char *p = m + page - k;
            memcpy(p, s, k);
            int rc = parse(p, k, &h);
            PX_CHECK(rc == PX_PROXY_INCOMPLETE || rc == PX_PROXY_ERROR ||
                     (rc > 0 && (size_t)rc <= k));
        }
    }
    munmap(m, 2 * page);
}

int main(void)
{
    test_v1();
    test_v1_refused();
    test_v2();
    test_guard_pages();
    printf("proxy_protocol: ok\n");
    return 0;
}
