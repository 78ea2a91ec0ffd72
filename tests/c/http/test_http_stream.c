/* Streamed responses (px/http_stream.h), in C alone, on each backend: chunked
 * bodies written by the handler and by another thread after it returned, a
 * pipelined request waiting for the stream before it, HTTP/1.0 bodies ended
 * by the close, HEAD, a length not met either way (the connection closes),
 * backpressure from a client that does not read (bounded queue, -EAGAIN, a
 * blocking wait and the WRITABLE event), heartbeats, and a client going away
 * mid-stream (the owner is told, writes fail). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/http_stream.h"
#include "px_test.h"
#include "px_test_engine.h"

#define PIECE (64u << 10)
#define SLOW_TOTAL ((size_t)16 << 20)

/* What the app hands to the test thread. */
static px_http_stream_t *_Atomic handed;
static _Atomic int closed_err = 1; /* 1: not closed yet */
static _Atomic int writable_events;
static _Atomic int rc_long, rc_short;

static void on_event(px_http_stream_t *st, int event, int err, void *arg)
{
    (void)st;
    (void)arg;
    if (event == PX_HTTP_STREAM_CLOSED)
        atomic_store(&closed_err, err);
    else if (event == PX_HTTP_STREAM_WRITABLE)
        atomic_fetch_add(&writable_events, 1);
}

static bool path_is(const px_http_exchange_t *x, const char *p)
{
    return x->req->path.len == strlen(p) && memcmp(x->req->path.base, p, x->req->path.len) == 0;
}

static void write_str(px_http_stream_t *st, const char *s)
{
    struct iovec iov = {(void *)s, strlen(s)};
    PX_CHECK_EQ(px_http_stream_write(st, &iov, 1, 0), 0);
}

static void app(px_http_exchange_t *x, void *udata)
{
    px_http_stream_config_t sc = {.status = 200,
                                  .content_type = "text/plain",
                                  .length = PX_HTTP_LENGTH_UNKNOWN,
                                  .on_event = on_event};
    px_http_stream_t *st;

    (void)udata;
    if (path_is(x, "/plain")) {
        px_http_respond(x, 200, "text/plain", NULL, 0, "plain", 5);
        return;
    }
    if (path_is(x, "/len10") || path_is(x, "/len10long"))
        sc.length = 10;
    PX_CHECK_EQ(px_http_stream_start(x, &sc, &st), 0);
    PX_CHECK_EQ(px_http_stream_start(x, &sc, &st) == -EALREADY, 1);
    if (path_is(x, "/now")) { /* the whole body inside the handler */
        write_str(st, "hello");
        write_str(st, " world");
        PX_CHECK_EQ(px_http_stream_end(st), 0);
        PX_CHECK_EQ(px_http_stream_write(st, &(struct iovec){"x", 1}, 1, 0), -EPIPE);
        px_http_stream_release(st);
    } else if (path_is(x, "/fail")) { /* the producer failed: a cut body, then the close */
        write_str(st, "abc");
        px_http_stream_fail(st);
        PX_CHECK_EQ(px_http_stream_end(st), -EPIPE);
        px_http_stream_release(st);
    } else if (path_is(x, "/len10")) {
        write_str(st, "12345");
        atomic_store(&rc_short, px_http_stream_end(st));
        px_http_stream_release(st);
    } else if (path_is(x, "/len10long")) {
        write_str(st, "12345");
        atomic_store(&rc_long, px_http_stream_write(st, &(struct iovec){"1234567890", 10}, 1, 0));
        px_http_stream_release(st);
    } else {
        atomic_store(&handed, st); /* the test thread writes the rest */
    }
}

static px_http_stream_t *take_stream(void)
{
    px_http_stream_t *st;
    uint64_t t0 = px_test_now_ms();

    while ((st = atomic_exchange(&handed, NULL)) == NULL) {
        PX_CHECK_LT(px_test_now_ms() - t0, 10000);
        usleep(1000);
    }
    return st;
}

/* Read a whole response (head + body) that ends the connection or has `end`. */
static char buf[1 << 20];

static void chunked_from_another_thread(int port)
{
    int fd = px_test_connect(port);
    px_http_stream_t *st;
    char *body;

    /* a pipelined request behind the stream waits for its end */
    px_test_send_str(fd, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take_stream();
    usleep(100000);
    write_str(st, "abc");
    write_str(st, "defgh");
    PX_CHECK_EQ(px_http_stream_end(st), 0);
    px_http_stream_release(st);
    px_test_read_until(fd, buf, sizeof(buf), "plain", 2);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    PX_CHECK(strstr(buf, "Transfer-Encoding: chunked\r\n") != NULL);
    body = strstr(buf, "\r\n\r\n");
    PX_CHECK(body != NULL);
    PX_CHECK(strncmp(body + 4, "3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", 40) == 0);
    PX_CHECK(strstr(body, "\r\n\r\nplain") != NULL);
    close(fd);
    PX_CHECK_EQ(atomic_load(&closed_err), 0);
}

static void within_handler_and_head(int port)
{
    int fd = px_test_connect(port);
    char *body;

    px_test_send_str(fd, "GET /now HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), "0\r\n\r\n", 1);
    body = strstr(buf, "\r\n\r\n");
    PX_CHECK_STR(body + 4, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    /* HEAD: the head only, and the connection goes on */
    px_test_send_str(fd,
                     "HEAD /now HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), "plain", 2);
    body = strstr(buf, "\r\n\r\n");
    PX_CHECK(strstr(buf, "Transfer-Encoding: chunked\r\n") != NULL);
    PX_CHECK(strncmp(body + 4, "HTTP/1.1 200 OK\r\n", 17) == 0);
    close(fd);
}

static void http10_until_close(int port)
{
    int fd = px_test_connect(port);
    size_t n;
    char *body;

    px_test_send_str(fd, "GET /now HTTP/1.0\r\n\r\n");
    n = px_test_read_until(fd, buf, sizeof(buf), NULL, 0); /* until the close */
    PX_CHECK_GT(n, 0);
    PX_CHECK(strstr(buf, "Transfer-Encoding") == NULL);
    PX_CHECK(strstr(buf, "Content-Length") == NULL);
    PX_CHECK(strstr(buf, "Connection: close\r\n") != NULL);
    body = strstr(buf, "\r\n\r\n");
    PX_CHECK_STR(body + 4, "hello world");
    close(fd);
}

static void length_not_met(int port)
{
    int fd = px_test_connect(port);
    char *body;

    px_test_send_str(fd, "GET /len10 HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), NULL, 0); /* closed after 5 bytes */
    PX_CHECK(strstr(buf, "Content-Length: 10\r\n") != NULL);
    body = strstr(buf, "\r\n\r\n");
    PX_CHECK_STR(body + 4, "12345");
    PX_CHECK_EQ(atomic_load(&rc_short), -EBADMSG);
    close(fd);
    fd = px_test_connect(port);
    px_test_send_str(fd, "GET /len10long HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    body = strstr(buf, "\r\n\r\n");
    PX_CHECK_STR(body + 4, "12345");
    PX_CHECK_EQ(atomic_load(&rc_long), -EMSGSIZE);
    close(fd);
    fd = px_test_connect(port);
    px_test_send_str(fd, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    body = strstr(buf, "\r\n\r\n");
    PX_CHECK_STR(body + 4, "3\r\nabc\r\n");
    close(fd);
}

/* A client that does not read: the writer is refused, and what it got taken
 * stays bounded (the high-water mark, one piece over, the socket buffers);
 * then the client reads and every byte arrives. */
static void fill(char *p, size_t n, size_t at)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (at + i) % 26);
}

static void slow_reader(int port)
{
    static char piece[PIECE];
    int fd = px_test_connect(port), rcvbuf = 65536;
    px_http_stream_t *st;
    size_t sent = 0, got = 0;
    int rc;

    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    px_test_send_str(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take_stream();
    atomic_store(&writable_events, 0);
    for (;;) {
        fill(piece, PIECE, sent);
        rc = px_http_stream_write(st, &(struct iovec){piece, PIECE}, 1, 0);
        /* refused, and the level stays up: the socket buffers are full too */
        if (rc == -EAGAIN && px_http_stream_wait(st, 300) == -ETIMEDOUT)
            break;
        if (rc == -EAGAIN)
            continue;
        PX_CHECK_EQ(rc, 0);
        sent += PIECE;
        PX_CHECK_LT(sent, (size_t)12 << 20);
    }
    printf("slow reader: %zu KiB taken while the client read nothing\n", sent >> 10);
    while (sent < SLOW_TOTAL) {
        fill(piece, PIECE, sent);
        rc = px_http_stream_write(st, &(struct iovec){piece, PIECE}, 1, 0);
        if (rc == -EAGAIN) {
            ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0)
                got += (size_t)r;
            else
                usleep(1000);
            continue;
        }
        PX_CHECK_EQ(rc, 0);
        sent += PIECE;
    }
    PX_CHECK_EQ(px_http_stream_end(st), 0);
    px_http_stream_release(st);
    for (;;) { /* the rest, to the last chunk */
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        PX_CHECK_GT(r, 0);
        got += (size_t)r;
        if (r >= 5 && memcmp(buf + r - 5, "0\r\n\r\n", 5) == 0)
            break;
    }
    /* the body, each chunk's size line and CRLF, and the head */
    PX_CHECK_GT(got, SLOW_TOTAL + (SLOW_TOTAL / PIECE) * 9);
    PX_CHECK_LT(got, SLOW_TOTAL + (SLOW_TOTAL / PIECE) * 9 + 1024);
    PX_CHECK_GE(atomic_load(&writable_events), 1);
    close(fd);
}

/* A writer that blocks: another thread drains the client meanwhile. */
static void *drain(void *arg)
{
    int fd = *(int *)arg;
    static char sink[1 << 16];
    size_t got = 0;

    for (;;) {
        ssize_t r = recv(fd, sink, sizeof(sink), 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (r >= 5 && memcmp(sink + r - 5, "0\r\n\r\n", 5) == 0)
            break;
    }
    return (void *)got;
}

static void blocking_writer(int port)
{
    static char piece[PIECE];
    int fd = px_test_connect(port);
    px_http_stream_t *st;
    pthread_t tid;
    size_t sent = 0, waits = 0;
    void *got;

    px_test_send_str(fd, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take_stream();
    PX_CHECK_EQ(pthread_create(&tid, NULL, drain, &fd), 0);
    fill(piece, PIECE, 0);
    while (sent < SLOW_TOTAL) {
        int rc = px_http_stream_write(st, &(struct iovec){piece, PIECE}, 1, 0);
        if (rc == -EAGAIN) {
            PX_CHECK_EQ(px_http_stream_wait(st, 10000), 0);
            waits++;
            continue;
        }
        PX_CHECK_EQ(rc, 0);
        sent += PIECE;
    }
    PX_CHECK_EQ(px_http_stream_written(st), SLOW_TOTAL);
    PX_CHECK_EQ(px_http_stream_end(st), 0);
    px_http_stream_release(st);
    pthread_join(tid, &got);
    PX_CHECK_GT((size_t)got, SLOW_TOTAL);
    printf("blocking writer: %zu waits\n", waits);
    close(fd);
}

static void client_goes_away(int port)
{
    int fd = px_test_connect(port);
    px_http_stream_t *st;
    uint64_t t0;
    int rc = 0;

    atomic_store(&closed_err, 1);
    px_test_send_str(fd, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take_stream();
    PX_CHECK_EQ(px_http_stream_heartbeat(st, 20, ": \n\n", 3), 0);
    px_test_read_until(fd, buf, sizeof(buf), ": \n", 2); /* two heartbeats */
    write_str(st, "data: 1\n\n");
    close(fd);
    t0 = px_test_now_ms();
    while (atomic_load(&closed_err) == 1) {
        PX_CHECK_LT(px_test_now_ms() - t0, 10000);
        usleep(1000);
    }
    PX_CHECK_EQ(atomic_load(&closed_err), -EPIPE);
    PX_CHECK(px_http_stream_closed(st));
    rc = px_http_stream_write(st, &(struct iovec){"x", 1}, 1, 0);
    PX_CHECK_EQ(rc, -EPIPE);
    PX_CHECK_EQ(px_http_stream_wait(st, 100), -EPIPE);
    PX_CHECK_EQ(px_http_stream_end(st), -EPIPE);
    px_http_stream_release(st);
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
    PX_CHECK_EQ(px_http_server_new(&hcfg, app, NULL, &srv), 0);
    port = px_http_listen(e, srv, "127.0.0.1", 0, -1);
    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);

    within_handler_and_head(port);
    chunked_from_another_thread(port);
    http10_until_close(port);
    length_not_met(port);
    client_goes_away(port);
    slow_reader(port);
    blocking_writer(port);
    printf("%s: streamed responses ok\n", px_engine_backend_name(e));

    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    px_engine_destroy(e);
    px_http_server_free(srv);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
