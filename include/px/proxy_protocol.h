/*
 * The PROXY protocol (versions 1 and 2, as HAProxy specifies them): the
 * header a load balancer sends first on each connection to say who the
 * client is, so that the server sees the client's address rather than the
 * balancer's.
 *
 * Parser contract (as picohttpparser's): no allocation, no copying, nothing
 * kept between calls; the caller passes everything received so far.
 */
#ifndef PX_PROXY_PROTOCOL_H
#define PX_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PX_PROXY_ERROR (-1)      /* not a valid PROXY header: close the connection */
#define PX_PROXY_INCOMPLETE (-2) /* valid so far: call again with more bytes */
#define PX_PROXY_V1_MAX 107      /* the longest version 1 line, CRLF included */
#define PX_PROXY_V2_MAX 4096     /* longer version 2 headers (TLVs) are refused */

typedef struct px_proxy_header {
    int version; /* 1 or 2 */
    /* No client address to take: version 1 UNKNOWN, version 2 LOCAL (the
     * balancer's own health checks) or an address family other than TCP over
     * IPv4 or IPv6. The connection's own addresses stand. */
    bool local;
    struct sockaddr_storage src, dst; /* the client's, and what it connected to */
    socklen_t addr_len;               /* of src and dst; 0 when local */
} px_proxy_header_t;

/* Parse the PROXY header at the start of buf[0..len). Returns the header's
 * length in bytes (> 0; what follows is the application's), PX_PROXY_INCOMPLETE
 * when every byte so far is a possible header's, or PX_PROXY_ERROR: bytes
 * that no header starts with, a malformed line or address, a version 1 line
 * longer than PX_PROXY_V1_MAX, a version 2 command other than LOCAL or PROXY,
 * a datagram family, addresses shorter than their family needs, or a header
 * over PX_PROXY_V2_MAX. *out is written only when a header is returned. */
int px_proxy_parse(const char *buf, size_t len, px_proxy_header_t *out);

#endif
