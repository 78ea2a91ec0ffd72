/* Socket set-up: address resolution, listeners, per-connection options, and the
 * eventfd wake-up protocol. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#define THROUGHPUT_SOCKBUF (1 << 20) /* PX_SOCK_THROUGHPUT: send and receive buffers */
#define SMALL_RCVBUF 4096            /* PX_SOCK_SMALL: receive buffer */

int px__resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                bool passive)
{
    struct addrinfo hints, *res = NULL;
    char service[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(service, sizeof(service), "%d", port);
    if (host != NULL && host[0] == '\0')
        host = NULL;
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* join: SO_REUSEPORT before bind, so the socket joins (or starts) the port's
 * group, another process's too. Otherwise the bind fails with -EADDRINUSE
 * while any other socket holds the port, and SO_REUSEPORT is set only once
 * it listens: the engine's own workers may then join it (Linux checks the
 * flag of the sockets already bound when a new one binds). */
int px__listen_socket(const struct sockaddr *sa, socklen_t len, int backlog, bool join)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;

    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (join && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, sa, len) < 0 || listen(fd, backlog) < 0 ||
        (!join && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0))
        goto fail;
    return fd;
fail:
    err = -errno;
    close(fd);
    return err;
}

int px__socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void px__socket_tune(int fd, unsigned flags)
{
    int one = 1, big = THROUGHPUT_SOCKBUF, small = SMALL_RCVBUF;

    /* Failures here only cost performance, never correctness. */
    if (flags & (PX_SOCK_NODELAY | PX_SOCK_SMALL))
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (flags & PX_SOCK_THROUGHPUT) {
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    }
    if (flags & PX_SOCK_SMALL)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
}

/*
 * A sleeper is woken by one eventfd write per batch of messages: producers
 * write only when they flip `pending` from 0 to 1; the consumer clears it
 * before draining, so a message pushed after the drain starts writes again.
 */
void px__wake(int fd, _Atomic int *pending)
{
    uint64_t one = 1;

    if (atomic_exchange(pending, 1) == 0) {
        while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
}

void px__wake_ack(int fd, _Atomic int *pending)
{
    uint64_t v;

    while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
    atomic_store(pending, 0);
}
