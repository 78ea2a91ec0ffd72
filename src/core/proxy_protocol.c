/*
 * The PROXY protocol parser (px/proxy_protocol.h). Strict: one space between
 * fields, addresses as inet_pton reads them (no leading zeros in IPv4),
 * decimal ports without leading zeros, CRLF at the end; version 2 by its
 * binary layout, with lengths checked before any read.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "px/proxy_protocol.h"

static const char V1_SIG[] = "PROXY ";
static const unsigned char V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* The next space-delimited field of line[*pos..end), its length in *n. */
static const char *field(const char *line, size_t *pos, size_t end, size_t *n)
{
    size_t start = *pos, i = start;

    while (i < end && line[i] != ' ')
        i++;
    *n = i - start;
    *pos = i < end ? i + 1 : i; /* past the space */
    return line + start;
}

static bool parse_port(const char *p, size_t n, uint16_t *out)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool parse_addr(int family, const char *p, size_t n, uint16_t port,
                       struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];

    if (n == 0 || n >= sizeof(text))
        return false;
    memcpy(text, p, n);
    text[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
}

static int parse_v1(const char *buf, size_t len, px_proxy_header_t *out)
{
    size_t limit = len < PX_PROXY_V1_MAX ? len : PX_PROXY_V1_MAX;
    size_t end = 0, pos = sizeof(V1_SIG) - 1, n[5];
    const char *f[5];
    uint16_t sport, dport;
    bool found = false;
    int family;

    /* The CRLF within the first PX_PROXY_V1_MAX bytes, CRLF included. */
    for (end = 0; end + 1 < limit && !found; end++)
        found = buf[end] == '\r' && buf[end + 1] == '\n';
    if (!found)
        return len >= PX_PROXY_V1_MAX ? PX_PROXY_ERROR : PX_PROXY_INCOMPLETE;
    end--; /* at the CR */
    for (size_t i = 0; i < end; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
            return PX_PROXY_ERROR;
    f[0] = field(buf, &pos, end, &n[0]);
    if (n[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
        /* Whatever follows is to be ignored (the balancer knows no more). */
        memset(out, 0, sizeof(*out));
        out->version = 1;
        out->local = true;
        return (int)end + 2;
    }
    if (n[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (n[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return PX_PROXY_ERROR;
    for (int i = 1; i < 5; i++) {
        if (pos >= end)
            return PX_PROXY_ERROR;
        f[i] = field(buf, &pos, end, &n[i]);
    }
    /* Exactly five fields, single spaces: nothing left, no empty field. */
    if (pos != end || buf[end - 1] == ' ' || !parse_port(f[3], n[3], &sport) ||
        !parse_port(f[4], n[4], &dport) || !parse_addr(family, f[1], n[1], sport, &out->src) ||
        !parse_addr(family, f[2], n[2], dport, &out->dst))
        return PX_PROXY_ERROR;
    out->version = 1;
    out->local = false;
    out->addr_len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    return (int)end + 2;
}

static int parse_v2(const unsigned char *b, size_t len, px_proxy_header_t *out)
{
    size_t total;
    unsigned cmd, fam;

    if (len < 16)
        return PX_PROXY_INCOMPLETE;
    if ((b[12] >> 4) != 2)
        return PX_PROXY_ERROR;
    cmd = b[12] & 0x0f;
    fam = b[13];
    total = 16 + ((size_t)b[14] << 8 | b[15]);
    if (cmd > 1 || total > PX_PROXY_V2_MAX)
        return PX_PROXY_ERROR;
    /* Datagrams are not what a stream listener was sent; LOCAL's family is
     * ignored (the spec), so only PROXY's is checked. */
    if (cmd == 1 && (fam & 0x0f) == 2)
        return PX_PROXY_ERROR;
    if (len < total)
        return PX_PROXY_INCOMPLETE;
    memset(out, 0, sizeof(*out));
    out->version = 2;
    out->local = true;
    if (cmd == 0 || fam == 0x00 || (fam >> 4) == 3)
        return (int)total; /* LOCAL, UNSPEC, or a Unix socket: nothing to take */
    if (fam == 0x11) {
        struct sockaddr_in *src = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *dst = (struct sockaddr_in *)&out->dst;
        if (total < 16 + 12)
            return PX_PROXY_ERROR;
        src->sin_family = dst->sin_family = AF_INET;
        memcpy(&src->sin_addr, b + 16, 4);
        memcpy(&dst->sin_addr, b + 20, 4);
        memcpy(&src->sin_port, b + 24, 2);
        memcpy(&dst->sin_port, b + 26, 2);
        out->addr_len = sizeof(struct sockaddr_in);
    } else if (fam == 0x21) {
        struct sockaddr_in6 *src = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&out->dst;
        if (total < 16 + 36)
            return PX_PROXY_ERROR;
        src->sin6_family = dst->sin6_family = AF_INET6;
        memcpy(&src->sin6_addr, b + 16, 16);
        memcpy(&dst->sin6_addr, b + 32, 16);
        memcpy(&src->sin6_port, b + 48, 2);
        memcpy(&dst->sin6_port, b + 50, 2);
        out->addr_len = sizeof(struct sockaddr_in6);
    } else {
        return PX_PROXY_ERROR;
    }
    out->local = false;
    return (int)total;
}

int px_proxy_parse(const char *buf, size_t len, px_proxy_header_t *out)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t v1n = sizeof(V1_SIG) - 1;
    px_proxy_header_t h; /* *out only for a whole header */
    int rc = PX_PROXY_ERROR;

    if (len == 0)
        return PX_PROXY_INCOMPLETE;
    if (memcmp(buf, V1_SIG, len < v1n ? len : v1n) == 0)
        rc = len < v1n ? PX_PROXY_INCOMPLETE : parse_v1(buf, len, &h);
    else if (memcmp(b, V2_SIG, len < sizeof(V2_SIG) ? len : sizeof(V2_SIG)) == 0)
        rc = len < sizeof(V2_SIG) ? PX_PROXY_INCOMPLETE : parse_v2(b, len, &h);
    if (rc > 0)
        *out = h;
    return rc;
}
