/*
 * WebSocket echo load: CONNS connections to ws://127.0.0.1:PORT/PATH, each
 * with one masked text message of SIZE bytes in flight; every echo received
 * sends the next. Counts echoes for SECONDS after a warm-up of one second
 * and prints "MESSAGES n SECONDS t TOTAL m" (m: warm-up included).
 *
 *     ws_load PORT PATH CONNS SECONDS SIZE [deflate]
 *
 * deflate: offer permessage-deflate (the run fails when the server does not
 * agree) and send a JSON-like message of SIZE bytes compressed once up
 * front (RSV1); echoes are counted frame by frame whatever their size, so
 * a server may answer compressed or not.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
    int fd;
    uint8_t hdr[4];   /* the echo's header so far */
    size_t hdr_have;  /* its bytes read */
    size_t hdr_need;  /* 2, or 4 with a 16-bit length */
    size_t left;      /* payload bytes of the echo still to come */
    bool in_payload;
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

/* The message: 'm' * size, or JSON-like text for compression. */
static void message(uint8_t *out, size_t size, bool json)
{
    static const char words[] = "{\"user\": \"alice\", \"room\": \"general\", \"text\": \"hello "
                                "world, the quick brown fox jumps over the lazy dog\"}, ";
    for (size_t i = 0; i < size; i++)
        out[i] = json ? (uint8_t)words[i % (sizeof(words) - 1)] : 'm';
}

/* A masked (zero key) text frame of the payload; its length. */
static size_t build_frame(uint8_t *out, const uint8_t *payload, size_t n, bool rsv1)
{
    size_t h = 2;

    out[0] = (uint8_t)(0x81 | (rsv1 ? 0x40 : 0));
    if (n < 126) {
        out[1] = (uint8_t)(0x80 | n);
    } else {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(n >> 8);
        out[3] = (uint8_t)n;
        h = 4;
    }
    memset(out + h, 0, 4);
    memcpy(out + h + 4, payload, n);
    return h + 4 + n;
}

/* Raw deflate with a sync flush, its 00 00 ff ff removed (RFC 7692 7.2.1). */
static size_t compress_message(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream z = {0};

    if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_in != 0)
        die("deflate");
    n = cap - z.avail_out;
    deflateEnd(&z);
    return n - 4;
}

/* Consume r bytes of c's input; the echoes completed in them. */
static int echoes_in(conn_t *c, const uint8_t *p, size_t r)
{
    int done = 0;

    while (r > 0) {
        if (!c->in_payload) {
            c->hdr[c->hdr_have++] = *p++;
            r--;
            if (c->hdr_have == 2)
                c->hdr_need = (c->hdr[1] & 0x7f) == 126 ? 4 : 2;
            if (c->hdr_have < c->hdr_need)
                continue;
            c->left = c->hdr_need == 4 ? (size_t)c->hdr[2] << 8 | c->hdr[3] : c->hdr[1] & 0x7f;
            c->in_payload = true;
        }
        size_t k = c->left < r ? c->left : r;
        p += k;
        r -= k;
        c->left -= k;
        if (c->left == 0) {
            c->in_payload = false;
            c->hdr_have = 0;
            c->hdr_need = 2;
            done++;
        }
    }
    return done;
}

int main(int argc, char **argv)
{
    if (argc != 6 && !(argc == 7 && strcmp(argv[6], "deflate") == 0)) {
        fprintf(stderr, "usage: ws_load PORT PATH CONNS SECONDS SIZE [deflate]\n");
        return 2;
    }
    int port = atoi(argv[1]), nconns = atoi(argv[3]);
    double seconds = atof(argv[4]);
    size_t size = (size_t)atoi(argv[5]), flen;
    bool deflate_on = argc == 7;
    char req[640], resp[65536];
    uint8_t msg[60000], packed[60100], frame[60200];
    conn_t *conns = calloc((size_t)nconns, sizeof(*conns));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int ep = epoll_create1(0), one = 1;
    long long count = 0, total = 0;
    double t0, start, end;
    bool counting = false;

    if (size > sizeof(msg))
        size = sizeof(msg);
    message(msg, size, deflate_on);
    if (deflate_on)
        flen = build_frame(frame, packed, compress_message(msg, size, packed, sizeof(packed)), true);
    else
        flen = build_frame(frame, msg, size, false);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             argv[2],
             deflate_on ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                        : "");
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        size_t got = 0;

        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (write(fd, req, strlen(req)) < 0)
            die("write");
        while (got < 4 || memmem(resp, got, "\r\n\r\n", 4) == NULL) {
            ssize_t n = read(fd, resp + got, sizeof(resp) - 1 - got);
            if (n <= 0)
                die("handshake");
            got += (size_t)n;
        }
        resp[got] = '\0';
        if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "refused: %.40s\n", resp);
            return 1;
        }
        if (deflate_on && strcasestr(resp, "permessage-deflate") == NULL) {
            fprintf(stderr, "permessage-deflate not agreed\n");
            return 1;
        }
        conns[i].fd = fd;
        conns[i].hdr_need = 2;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        if (write(fd, frame, flen) < 0)
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
            int done;

            if (r <= 0)
                die("read");
            done = echoes_in(c, (const uint8_t *)resp, (size_t)r);
            count += done;
            total += done;
            while (done-- > 0)
                if (write(c->fd, frame, flen) < 0)
                    die("write");
        }
    }
    printf("MESSAGES %lld SECONDS %.3f TOTAL %lld\n", count, now() - start, total);
    return 0;
}
