/*
 * WebSocket echo load: CONNS connections to ws://127.0.0.1:PORT/PATH, each
 * with one masked text message of SIZE bytes (SIZE < 126) in flight; every
 * echo received sends the next. Counts echoes for SECONDS after a warm-up
 * of one second and prints "MESSAGES n SECONDS t TOTAL m" (m: warm-up
 * included).
 *
 *     ws_load PORT PATH CONNS SECONDS SIZE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>

typedef struct {
    int fd;
    size_t have; /* bytes of the echo read */
} conn_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: ws_load PORT PATH CONNS SECONDS SIZE\n");
        return 2;
    }
    int port = atoi(argv[1]), nconns = atoi(argv[3]);
    double seconds = atof(argv[4]);
    size_t size = (size_t)atoi(argv[5]);
    char req[512], frame[140], resp[4096];
    conn_t *conns = calloc((size_t)nconns, sizeof(*conns));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int ep = epoll_create1(0), one = 1;
    long long count = 0, total = 0;
    double t0, start, end;
    bool counting = false;

    if (size >= 126)
        size = 125;
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             argv[2]);
    frame[0] = (char)0x81;
    frame[1] = (char)(0x80 | size);
    memset(frame + 2, 0, 4); /* a zero mask: the payload goes as is */
    memset(frame + 6, 'm', size);
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        size_t got = 0;

        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (write(fd, req, strlen(req)) < 0)
            die("write");
        while (got < 4 || memmem(resp, got, "\r\n\r\n", 4) == NULL) {
            ssize_t n = read(fd, resp + got, sizeof(resp) - got);
            if (n <= 0)
                die("handshake");
            got += (size_t)n;
        }
        if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "refused: %.40s\n", resp);
            return 1;
        }
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        if (write(fd, frame, 6 + size) < 0)
            die("write");
    }
    t0 = now();
    start = t0 + 1.0;
    end = start + seconds;
    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100);
        double t = now();

        if (!counting && t >= start) {
            counting = true;
            count = 0;
            start = t;
        }
        if (t >= end)
            break;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, resp, sizeof(resp));

            if (r <= 0)
                die("read");
            c->have += (size_t)r;
            while (c->have >= 2 + size) {
                c->have -= 2 + size;
                count++;
                total++;
                if (write(c->fd, frame, 6 + size) < 0)
                    die("write");
            }
        }
    }
    printf("MESSAGES %lld SECONDS %.3f TOTAL %lld\n", count, now() - start, total);
    return 0;
}
