/* Deferred responses (px_http_defer / px_http_answer), in C alone, on each
 * backend: an answer from another thread after the handler returned, with a
 * pipelined request held behind it and answered after it in order; an answer
 * that starts a streamed body; a deferral released unanswered (500); a
 * second answer refused; HTTP/1.0 (closed after the answer); and a client
 * gone before the answer (the answer is refused). Answers race
 * the worker from a thread of their own: the run for TSan. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/http_stream.h"
#include "px_test.h"
#include "px_test_engine.h"

static px_http_stream_t *_Atomic handed;

static bool path_is(const px_http_exchange_t *x, const char *p)
{
    return x->req->path.len == strlen(p) && memcmp(x->req->path.base, p, x->req->path.len) == 0;
}

static void app(px_http_exchange_t *x, void *udata)
{
    px_http_stream_t *st;

    (void)udata;
    if (path_is(x, "/plain")) {
        px_http_respond(x, 200, "text/plain", NULL, 0, "plain", 5);
        return;
    }
    PX_CHECK_EQ(px_http_defer(x, &st), 0);
    PX_CHECK_EQ(px_http_defer(x, &st) == -EALREADY, 1); /* x counts as answered */
    if (path_is(x, "/drop")) {
        px_http_stream_release(st); /* unanswered: 500 */
        return;
    }
    atomic_store(&handed, st); /* the test thread answers */
}

static px_http_stream_t *take(void)
{
    px_http_stream_t *st;
    uint64_t t0 = px_test_now_ms();

    while ((st = atomic_exchange(&handed, NULL)) == NULL) {
        PX_CHECK_LT(px_test_now_ms() - t0, 10000);
        usleep(1000);
    }
    return st;
}

static void answer_text(px_http_exchange_t *x, void *arg)
{
    if (x == NULL)
        return; /* the client went away meanwhile: nothing to free here */
    PX_CHECK_EQ(px_http_respond(x, 201, "text/plain", "X-Later: yes\r\n", 14, arg, strlen(arg)), 0);
}

static void answer_stream(px_http_exchange_t *x, void *arg)
{
    px_http_stream_config_t sc = {.status = 200, .length = PX_HTTP_LENGTH_UNKNOWN};
    struct iovec iov = {"streamed", 8};
    px_http_stream_t *st;

    (void)arg;
    if (x == NULL)
        return;
    PX_CHECK_EQ(px_http_stream_start(x, &sc, &st), 0);
    PX_CHECK_EQ(px_http_stream_write(st, &iov, 1, 0), 0);
    PX_CHECK_EQ(px_http_stream_end(st), 0);
    px_http_stream_release(st);
}

static char buf[1 << 16];

static void answered_later_then_pipelined(int port)
{
    int fd = px_test_connect(port);
    px_http_stream_t *st;
    char *second;

    px_test_send_str(fd, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take();
    usleep(50000); /* the pipelined request waits meanwhile */
    PX_CHECK(!px_http_stream_closed(st));
    PX_CHECK_EQ(px_http_answer(st, answer_text, "later"), 0);
    PX_CHECK_EQ(px_http_answer(st, answer_text, "twice"), -EPIPE);
    struct iovec iov = {"x", 1};
    PX_CHECK_EQ(px_http_stream_write(st, &iov, 1, 0), -EINVAL); /* not a body stream */
    px_http_stream_release(st);
    px_test_read_until(fd, buf, sizeof(buf), "plain", 2);
    PX_CHECK(strstr(buf, "HTTP/1.1 201 Created\r\n") == buf);
    PX_CHECK(strstr(buf, "X-Later: yes\r\n") != NULL);
    second = strstr(buf, "\r\n\r\nlater");
    PX_CHECK(second != NULL);
    PX_CHECK(strstr(second, "HTTP/1.1 200 OK\r\n") != NULL); /* after it, in order */
    /* HEAD: the head of the deferred answer, no body */
    px_test_send_str(fd, "HEAD /later HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take();
    PX_CHECK_EQ(px_http_answer(st, answer_text, "later"), 0);
    px_http_stream_release(st);
    px_test_read_until(fd, buf, sizeof(buf), "plain", 2);
    PX_CHECK(strstr(buf, "Content-Length: 5\r\n") != NULL);
    PX_CHECK(strstr(buf, "\r\n\r\nHTTP/1.1 200 OK\r\n") != NULL); /* no body in between */
    close(fd);
}

static void answer_streams(int port)
{
    int fd = px_test_connect(port);
    px_http_stream_t *st;

    px_test_send_str(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take();
    PX_CHECK_EQ(px_http_answer(st, answer_stream, NULL), 0);
    px_http_stream_release(st);
    px_test_read_until(fd, buf, sizeof(buf), "plain", 2);
    PX_CHECK(strstr(buf, "Transfer-Encoding: chunked\r\n") != NULL);
    PX_CHECK(strstr(buf, "8\r\nstreamed\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n") != NULL);
    close(fd);
}

static void dropped_is_500(int port)
{
    int fd = px_test_connect(port);

    px_test_send_str(fd, "GET /drop HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), "plain", 2);
    PX_CHECK(strstr(buf, "HTTP/1.1 500 Internal Server Error\r\n") == buf);
    close(fd);
}

static void http10_closes_after(int port)
{
    int fd = px_test_connect(port);
    px_http_stream_t *st;
    ssize_t n, got = 0;

    px_test_send_str(fd, "GET /old HTTP/1.0\r\n\r\n");
    st = take();
    PX_CHECK_EQ(px_http_answer(st, answer_text, "old"), 0);
    px_http_stream_release(st);
    while ((n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
        got += n; /* to the close */
    buf[got] = '\0';
    PX_CHECK(strstr(buf, "Connection: close\r\n") != NULL);
    PX_CHECK(strstr(buf, "\r\n\r\nold") != NULL);
    close(fd);
}

static void client_gone_first(int port)
{
    int fd = px_test_connect(port);
    px_http_stream_t *st;
    uint64_t t0;
    int rc;

    px_test_send_str(fd, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
    st = take();
    close(fd);
    t0 = px_test_now_ms();
    while (!px_http_stream_closed(st)) {
        PX_CHECK_LT(px_test_now_ms() - t0, 10000);
        usleep(1000);
    }
    rc = px_http_answer(st, answer_text, "late");
    PX_CHECK_EQ(rc, -EPIPE);
    px_http_stream_release(st);
}

/* Answers racing the worker: many deferred requests answered by this thread
 * while the worker serves the pipelined requests behind them. */
static void many(int port)
{
    int fd = px_test_connect(port);

    for (int i = 0; i < 200; i++) {
        px_http_stream_t *st;

        px_test_send_str(fd, "GET /many HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
        st = take();
        PX_CHECK_EQ(px_http_answer(st, answer_text, "n"), 0);
        px_http_stream_release(st);
        px_test_read_until(fd, buf, sizeof(buf), "plain", 2);
    }
    close(fd);
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

    answered_later_then_pipelined(port);
    answer_streams(port);
    dropped_is_500(port);
    http10_closes_after(port);
    client_gone_first(port);
    many(port);
    printf("%s: deferred responses ok\n", px_engine_backend_name(e));

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
