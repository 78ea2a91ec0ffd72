/* Request bodies read as they arrive (px_http_config_t.stream_bodies), in C
 * alone, on each backend: an app called at the head reads the body in pieces
 * of random sizes while the worker receives the rest (the reader owning its
 * worker, which it releases while it waits, and a reader that released it
 * first), with Content-Length and chunked bodies; a 1 GiB upload (64 MiB
 * under TSan) with flat RSS; 100 Continue sent only when the app reads; a
 * body left unread is dropped and the next pipelined request answered (or
 * the connection closed when the client waits for a 100 Continue, after all
 * of a streamed response written through the connection's handle, by the
 * released handler or by a thread after it returned); a client that goes
 * away and a malformed chunked body end the reader's wait. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/http_stream.h"
#include "px_test.h"
#include "px_test_engine.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define BIG_MB 64u
#else
#define BIG_MB 1024u
#endif
#define MB ((size_t)1 << 20)

static _Atomic long last_err;
static _Atomic size_t rss_max;

static size_t rss_bytes(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static bool path_is(const px_http_exchange_t *x, const char *p)
{
    return x->req->path.len == strlen(p) && memcmp(x->req->path.base, p, x->req->path.len) == 0;
}

#define PIECES 64
#define PIECE 4000

/* Write the streamed response's pieces ("piece NN" and filler), then end it. */
static void write_pieces(px_http_stream_t *st)
{
    char piece[PIECE];

    memset(piece, 'x', sizeof(piece));
    for (int i = 0; i < PIECES; i++) {
        struct iovec iov = {piece, sizeof(piece)};
        char label[16];
        int len = snprintf(label, sizeof(label), "piece %02d", i);
        memcpy(piece, label, (size_t)len); /* no NUL inside the body */
        PX_CHECK_EQ(px_http_stream_write(st, &iov, 1, PX_HTTP_STREAM_FORCE), 0);
    }
    PX_CHECK_EQ(px_http_stream_end(st), 0);
}

static void *write_later(void *arg)
{
    px_http_stream_t *st = arg;

    usleep(100000); /* the handler has returned */
    write_pieces(st);
    px_http_stream_release(st);
    return NULL;
}

/* A streamed response, its body unread: written by the handler after it
 * released its worker (every write posted), or by a thread after it returns. */
static void stream_unread(px_http_exchange_t *x)
{
    px_http_stream_config_t sc = {
        .status = 200, .content_type = "text/x", .length = PX_HTTP_LENGTH_UNKNOWN};
    px_worker_t *w = px_conn_worker(x->conn);
    px_http_stream_t *st;
    pthread_t tid;

    PX_CHECK_EQ(px_http_stream_start(x, &sc, &st), 0);
    if (path_is(x, "/stream-later")) {
        PX_CHECK_EQ(pthread_create(&tid, NULL, write_later, st), 0);
        pthread_detach(tid);
        return;
    }
    PX_CHECK(px_worker_release(w));
    write_pieces(st);
    px_http_stream_release(st);
    px_worker_reacquire(w);
}

/* Read the whole body in pieces of random sizes: its length and a sum that
 * depends on every byte and its place. */
static void app(px_http_exchange_t *x, void *udata)
{
    static _Thread_local char piece[70000];
    uint32_t seed = 12345;
    uint64_t total = 0, sum = 0, next_rss = 0;
    px_worker_t *w = px_conn_worker(x->conn);
    bool released = false;
    char out[64];
    ssize_t n;
    int len;

    (void)udata;
    if (path_is(x, "/plain") || path_is(x, "/ignore")) {
        px_http_respond(x, 200, "text/x", NULL, 0, "PLAIN-OK", 8);
        return;
    }
    PX_CHECK(x->body_stream != NULL);
    PX_CHECK(x->body == NULL);
    if (path_is(x, "/stream-released") || path_is(x, "/stream-later")) {
        stream_unread(x);
        return;
    }
    if (path_is(x, "/late")) /* the client must not get 100 Continue before the read */
        usleep(300000);
    if (path_is(x, "/released"))
        released = px_worker_release(w);
    for (;;) {
        size_t want = 1 + px_test_rand32(&seed) % sizeof(piece);
        n = px_http_body_read(x, piece, want, 20000);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31 + (unsigned char)piece[i];
        total += (uint64_t)n;
        if (total >= next_rss) {
            size_t r = rss_bytes(), m = atomic_load(&rss_max);
            if (r > m)
                atomic_store(&rss_max, r);
            next_rss += 16 * MB;
        }
    }
    if (released)
        px_worker_reacquire(w);
    atomic_store(&last_err, (long)n);
    if (n < 0) {
        px_http_respond(x, 400, "text/plain", NULL, 0, "bad", 3);
        return;
    }
    len = snprintf(out, sizeof(out), "%llu %llu", (unsigned long long)total,
                   (unsigned long long)sum);
    px_http_respond(x, 200, "text/plain", NULL, 0, out, (size_t)len);
}

static uint64_t sum_of(const char *p, size_t n, uint64_t sum)
{
    for (size_t i = 0; i < n; i++)
        sum = sum * 31 + (unsigned char)p[i];
    return sum;
}

static char pattern[2 * MB]; /* bodies are windows of it */

typedef struct upload {
    int fd;
    size_t total;
    bool chunked;
} upload_t;

static void *send_body(void *arg)
{
    upload_t *u = arg;
    uint32_t seed = 7;
    size_t sent = 0;

    while (sent < u->total) {
        size_t n = PX_MIN(u->total - sent, (size_t)(1 + px_test_rand32(&seed) % MB));
        if (u->chunked) {
            char line[32];
            snprintf(line, sizeof(line), "%zx\r\n", n);
            px_test_send_str(u->fd, line);
        }
        px_test_send_all(u->fd, pattern + sent % MB, n / 2);
        px_test_send_all(u->fd, pattern + sent % MB + n / 2, n - n / 2);
        if (u->chunked)
            px_test_send_str(u->fd, "\r\n");
        sent += n;
    }
    if (u->chunked)
        px_test_send_str(u->fd, "0\r\n\r\n");
    return NULL;
}

/* What the client sent: the same walk over the pattern as send_body. */
static uint64_t expected_sum(size_t total)
{
    uint32_t seed = 7;
    size_t sent = 0;
    uint64_t sum = 0;

    while (sent < total) {
        size_t n = PX_MIN(total - sent, (size_t)(1 + px_test_rand32(&seed) % MB));
        sum = sum_of(pattern + sent % MB, n, sum);
        sent += n;
    }
    return sum;
}

static char buf[1 << 16];

static void upload(int port, const char *path, size_t total, bool chunked)
{
    int fd = px_test_connect(port);
    upload_t u = {fd, total, chunked};
    pthread_t tid;
    char head[256], want[64];
    size_t rss0 = rss_bytes();

    atomic_store(&rss_max, rss0);
    if (chunked)
        snprintf(head, sizeof(head),
                 "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", path);
    else
        snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                 path, total);
    px_test_send_str(fd, head);
    PX_CHECK_EQ(pthread_create(&tid, NULL, send_body, &u), 0);
    /* a request behind the body, answered after it */
    pthread_join(tid, NULL);
    px_test_send_str(fd, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), "PLAIN-OK", 1);
    snprintf(want, sizeof(want), "\r\n\r\n%zu %llu", total,
             (unsigned long long)expected_sum(total));
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    PX_CHECK(strstr(buf, want) != NULL);
    printf("%s %zu MiB%s: RSS %zu MiB before, at most %zu MiB while reading\n", path, total >> 20,
           chunked ? " chunked" : "", rss0 >> 20, atomic_load(&rss_max) >> 20);
    PX_CHECK_LT(atomic_load(&rss_max), rss0 + 48 * MB);
    close(fd);
}

static void continue_on_read(int port)
{
    int fd = px_test_connect(port);
    struct timeval tv = {.tv_usec = 100000};
    ssize_t r;

    px_test_send_str(fd, "POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                         "Expect: 100-continue\r\n\r\n");
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    r = recv(fd, buf, sizeof(buf), 0); /* the app has not read yet */
    PX_CHECK_EQ(r, -1);
    tv.tv_sec = 10;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    px_test_read_until(fd, buf, sizeof(buf), "\r\n\r\n", 1);
    PX_CHECK_STR(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    px_test_send_str(fd, "hello");
    px_test_read_until(fd, buf, sizeof(buf), "\r\n\r\n5 ", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    close(fd);
}

static void unread_body(int port)
{
    int fd = px_test_connect(port);
    size_t n;

    /* dropped as it comes; the next request is answered */
    px_test_send_str(fd, "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    for (int i = 0; i < 100; i++)
        px_test_send_all(fd, pattern, 1000);
    px_test_send_str(fd, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), "PLAIN-OK", 2);
    PX_CHECK(strstr(strstr(buf, "PLAIN-OK"), "HTTP/1.1 200 OK\r\n") != NULL);
    close(fd);
    /* the client waits for 100 Continue, never sent: answered, then closed */
    fd = px_test_connect(port);
    px_test_send_str(fd, "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                         "Expect: 100-continue\r\n\r\n");
    n = px_test_read_until(fd, buf, sizeof(buf), NULL, 0); /* until the close */
    PX_CHECK_GT(n, 0);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    PX_CHECK(strstr(buf, "100 Continue") == NULL);
    close(fd);
}

/* The client waits for a 100 Continue the handler never asked for: the
 * connection closes, but only after the whole streamed response. */
static void unread_body_streamed(int port, const char *path)
{
    static char resp[PIECES * (PIECE + 16) + 4096];
    char head[256], want[16];
    int fd = px_test_connect(port);
    size_t n;

    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
             "Expect: 100-continue\r\n\r\n",
             path);
    px_test_send_str(fd, head);
    n = px_test_read_until(fd, resp, sizeof(resp), NULL, 0); /* until the close */
    PX_CHECK_GT(n, 0);
    PX_CHECK(strstr(resp, "HTTP/1.1 200 OK\r\n") == resp);
    PX_CHECK(strstr(resp, "Transfer-Encoding: chunked\r\n") != NULL);
    PX_CHECK(strstr(resp, "100 Continue") == NULL);
    snprintf(want, sizeof(want), "piece %02d", PIECES - 1);
    PX_CHECK(strstr(resp, want) != NULL);
    PX_CHECK(n > 5 && memcmp(resp + n - 5, "0\r\n\r\n", 5) == 0);
    close(fd);
}

static void broken_bodies(int port)
{
    int fd = px_test_connect(port);
    uint64_t t0;

    px_test_send_str(fd, "POST /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\nzz\r\n");
    px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK(strstr(buf, "HTTP/1.1 400 Bad Request\r\n") == buf);
    PX_CHECK_EQ(atomic_load(&last_err), -EBADMSG);
    close(fd);
    /* the client goes away half-way: the reader's wait ends */
    atomic_store(&last_err, 1);
    fd = px_test_connect(port);
    px_test_send_str(fd, "POST /released HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    px_test_send_all(fd, pattern, 5000);
    usleep(50000);
    close(fd);
    t0 = px_test_now_ms();
    while (atomic_load(&last_err) == 1) {
        PX_CHECK_LT(px_test_now_ms() - t0, 10000);
        usleep(1000);
    }
    PX_CHECK_EQ(atomic_load(&last_err), -ECONNRESET);
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_http_config_t hcfg;
    px_http_server_t *srv;
    px_engine_t *e;
    int port;

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    px_http_config_default(&hcfg);
    hcfg.stream_bodies = true;
    hcfg.body_buffer = 64u << 10;
    hcfg.limits.max_body = (uint64_t)4 << 30;
    PX_CHECK_EQ(px_http_server_new(&hcfg, app, NULL, &srv), 0);
    port = px_http_listen(e, srv, "127.0.0.1", 0, -1);
    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);

    upload(port, "/sum", 3 * MB + 17, false);
    upload(port, "/released", 3 * MB + 17, true);
    continue_on_read(port);
    unread_body(port);
    unread_body_streamed(port, "/stream-released");
    unread_body_streamed(port, "/stream-later");
    broken_bodies(port);
    /* big ones by a handler that released its worker first: one that owns it
     * hands it over at each wait (px_http_body_read) */
    upload(port, "/released", (kind == PX_BACKEND_URING ? BIG_MB : BIG_MB / 4) * MB, false);
    upload(port, "/released", 64 * MB, true);
    printf("%s: streamed request bodies ok\n", px_engine_backend_name(e));

    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    px_engine_destroy(e);
    px_http_server_free(srv);
}

int main(void)
{
    uint32_t seed = 99;

    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (char)px_test_rand32(&seed);
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
