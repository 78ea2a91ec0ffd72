/*
 * Echo load generator: CONNS connections, each with exactly one message in
 * flight — send SIZE bytes, wait until all SIZE come back, send again — driven
 * by one epoll loop. Counts round trips completed between the end of WARMUP and
 * the end of SECONDS, then prints one line:
 *
 *   roundtrips_per_sec=N roundtrips=N seconds=S conns=C size=B cpu=U
 *
 * cpu is this process's user+system time over the measured interval (1.0 = one
 * CPU fully busy): well below 1 means the generator was waiting on the server,
 * not the other way round. Stops by itself; exits 1 on any error (refused
 * connection, a peer that closes, a mismatching echo).
 *
 *   echo_load HOST PORT [CONNS=64] [SECONDS=5] [SIZE=64] [WARMUP=0.5]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536

struct conn {
    int fd;
    size_t sent; /* bytes of the current message written */
    size_t got;  /* bytes of its echo read back */
    int out_armed; /* EPOLLOUT is in its epoll interest set */
};

static size_t msg_size;
static unsigned char msg[MAX_SIZE];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "echo_load: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_to(const struct addrinfo *ai)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);

    if (fd < 0)
        die("socket");
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Write what is left of the current message; 0 when all of it is out. */
static int pump_out(struct conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, msg + c->sent, msg_size - c->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            if (errno == EINTR)
                continue;
            die("send");
        }
        c->sent += (size_t)n;
    }
    return 0;
}

/* Read the echo; returns 1 when a whole round trip completed. */
static int pump_in(struct conn *c)
{
    unsigned char buf[MAX_SIZE];

    for (;;) {
        ssize_t n = recv(c->fd, buf, msg_size - c->got, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            die("recv");
        }
        if (n == 0) {
            fprintf(stderr, "echo_load: server closed a connection\n");
            exit(1);
        }
        if (memcmp(buf, msg + c->got, (size_t)n) != 0) {
            fprintf(stderr, "echo_load: echo does not match what was sent\n");
            exit(1);
        }
        c->got += (size_t)n;
        if (c->got == msg_size)
            return 1;
    }
}

int main(int argc, char **argv)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    struct epoll_event evs[256];
    struct conn *conns;
    int nconns, ep, i, rc;
    double secs, warmup, t0, t_start = 0, t_end, cpu_start = 0;
    uint64_t trips = 0;
    int measuring = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: echo_load HOST PORT [CONNS] [SECONDS] [SIZE] [WARMUP]\n");
        return 2;
    }
    nconns = argc > 3 ? atoi(argv[3]) : 64;
    secs = argc > 4 ? atof(argv[4]) : 5.0;
    msg_size = argc > 5 ? (size_t)atol(argv[5]) : 64;
    warmup = argc > 6 ? atof(argv[6]) : 0.5;
    if (nconns < 1 || secs <= 0 || msg_size < 1 || msg_size > MAX_SIZE || warmup < 0) {
        fprintf(stderr, "echo_load: bad arguments\n");
        return 2;
    }
    for (size_t k = 0; k < msg_size; k++)
        msg[k] = (unsigned char)('a' + k % 26);
    rc = getaddrinfo(argv[1], argv[2], &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "echo_load: %s: %s\n", argv[1], gai_strerror(rc));
        return 1;
    }
    ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    conns = calloc((size_t)nconns, sizeof(*conns));
    if (!conns)
        die("calloc");
    for (i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        conns[i].fd = connect_to(ai);
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
            die("epoll_ctl");
    }
    freeaddrinfo(ai);

    t0 = now();
    t_end = t0 + warmup + secs;
    for (i = 0; i < nconns; i++) {
        if (pump_out(&conns[i])) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &conns[i]};
            if (epoll_ctl(ep, EPOLL_CTL_MOD, conns[i].fd, &ev) < 0)
                die("epoll_ctl");
            conns[i].out_armed = 1;
        }
    }

    for (;;) {
        double t = now();
        int n;

        if (!measuring && t >= t0 + warmup) {
            measuring = 1;
            trips = 0;
            t_start = t;
            cpu_start = cpu_seconds();
        }
        if (t >= t_end)
            break;
        n = epoll_wait(ep, evs, 256, 50);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            struct epoll_event ev = {.data.ptr = c};

            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                fprintf(stderr, "echo_load: connection error\n");
                return 1;
            }
            if ((evs[i].events & EPOLLIN) && pump_in(c)) {
                trips++;
                c->sent = c->got = 0;
            }
            /* A message too big for the socket buffer finishes on EPOLLOUT,
             * armed only while a send is blocked. */
            if (c->sent < msg_size) {
                int blocked = pump_out(c);
                if (blocked != c->out_armed) {
                    ev.events = EPOLLIN | (blocked ? EPOLLOUT : 0);
                    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
                        die("epoll_ctl");
                    c->out_armed = blocked;
                }
            }
        }
    }
    {
        double elapsed = now() - t_start;
        double cpu = (cpu_seconds() - cpu_start) / elapsed;

        printf("roundtrips_per_sec=%.0f roundtrips=%llu seconds=%.3f conns=%d size=%zu cpu=%.2f\n",
               (double)trips / elapsed, (unsigned long long)trips, elapsed, nconns, msg_size, cpu);
    }
    for (i = 0; i < nconns; i++)
        close(conns[i].fd);
    free(conns);
    close(ep);
    return 0;
}
