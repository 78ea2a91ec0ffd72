/*
 * The upstream of the proxy benchmark: a small echo server on one epoll loop,
 * cheap enough that the proxy in front of it is what gets measured. Reads
 * into a per-connection buffer and writes it back; while a write is partial
 * it stops reading that connection (its own backpressure). Prints
 * "echo_upstream: listening on 127.0.0.1:PORT", serves until SIGTERM.
 *
 *   echo_upstream [PORT=0]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

struct conn {
    int fd;
    size_t len, off; /* bytes in buf, bytes of them written back */
    char buf[BUF];
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void watch(int ep, struct conn *c, int op)
{
    struct epoll_event ev = {.events = c->off < c->len ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, op, c->fd, &ev);
}

static void drop(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Write what is pending; then read and write back until the socket is dry. */
static void serve(int ep, struct conn *c)
{
    for (;;) {
        while (c->off < c->len) {
            ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN) {
                watch(ep, c, EPOLL_CTL_MOD);
                return;
            }
            if (n <= 0) {
                drop(ep, c);
                return;
            }
            c->off += (size_t)n;
        }
        ssize_t n = recv(c->fd, c->buf, BUF, 0);
        if (n < 0 && errno == EAGAIN) {
            watch(ep, c, EPOLL_CTL_MOD);
            return;
        }
        if (n <= 0) {
            drop(ep, c);
            return;
        }
        c->len = (size_t)n;
        c->off = 0;
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(argc > 1 ? atoi(argv[1]) : 0)};
    socklen_t salen = sizeof(sa);
    int one = 1, lfd, ep;
    struct epoll_event ev, events[256];

    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
        perror("echo_upstream");
        return 1;
    }
    ep = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("echo_upstream: listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    while (!stop) {
        int n = epoll_wait(ep, events, 256, 200);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c != NULL) {
                serve(ep, c);
                continue;
            }
            int fd;
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                c = malloc(sizeof(*c));
                if (c == NULL) {
                    close(fd);
                    continue;
                }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c->fd = fd;
                c->len = c->off = 0;
                watch(ep, c, EPOLL_CTL_ADD);
            }
        }
    }
    return 0;
}
