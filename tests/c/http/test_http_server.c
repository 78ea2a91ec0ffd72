/* HTTP framing through a real socket, on each backend: a static route (also
 * kept alive for HTTP/1.0), routes matched before the app (405 with Allow), an
 * app that echoes bodies, 100 pipelined requests answered in order, chunked and
 * 100-continue bodies, a smuggling attempt answered 400 + close, and a head
 * that never completes cut off at its deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "px/http_server.h"
#include "px/timer.h"
#include "px_test.h"
#include "px_test_engine.h"

static void app(px_http_exchange_t *x, void *udata)
{
    char extra[128];
    int n = snprintf(extra, sizeof(extra), "X-Path: %.*s\r\nX-Route: %d %.*s\r\n",
                     (int)x->req->path.len, x->req->path.base, x->match.route,
                     x->match.nparams ? (int)x->match.params[0].len : 0,
                     x->match.nparams ? x->match.params[0].base : "");
    (void)udata;
    if (x->req->path.len == 7 && memcmp(x->req->path.base, "/inject", 7) == 0) {
        /* refused by the engine: nothing sent, so the client gets 500 */
        static const char bad[] = "X-A: a\0\r\nSet-Cookie: injected=1\r\n";
        PX_CHECK_EQ(px_http_respond(x, 200, "text/plain", bad, sizeof(bad) - 1, "x", 1), -EINVAL);
        PX_CHECK_EQ(
            px_http_respond(x, 200, "text/plain\r\nSet-Cookie: injected=1", NULL, 0, "x", 1),
            -EINVAL);
        return;
    }
    px_http_respond(x, 200, "application/octet-stream", extra, (size_t)n, x->body, x->body_len);
}

/* Read until the peer closes or `want` bytes containing `until` arrived. */
#define SEND_STR(fd, lit) px_test_send_all(fd, lit, sizeof(lit) - 1)

static void run(px_backend_kind_t kind)
{
    static char buf[1 << 20];
    px_engine_config_t cfg;
    px_http_config_t hcfg;
    px_http_server_t *srv;
    px_engine_t *e;
    int port, fd, i;
    char req[8192];
    size_t len;

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    px_http_config_default(&hcfg);
    hcfg.head_timeout_ms = 300;
    PX_CHECK_EQ(px_http_server_new(&hcfg, app, NULL, &srv), 0);
    PX_CHECK_EQ(px_http_route_static(srv, "/plaintext", "text/plain", "Hello, World!", 13), 0);
    {
        static const char *const get[] = {"GET"};
        PX_CHECK_EQ(px_http_route(srv, "/item/{id}", 10, get, 1), 0);
    }
    port = px_http_listen(e, srv, "127.0.0.1", 0, -1);
    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);

    /* static route, keep-alive, then HEAD */
    fd = px_test_connect(port);
    SEND_STR(fd, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "Hello, World!", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    PX_CHECK(strstr(buf, "Content-Length: 13\r\n") != NULL);
    PX_CHECK(strstr(buf, "Date: ") != NULL);
    SEND_STR(fd, "HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "\r\n\r\n", 1);
    PX_CHECK(strstr(buf, "Hello") == NULL);

    /* a static route matches its path whatever the query */
    SEND_STR(fd, "GET /plaintext?utm_source=x HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "Hello, World!", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);

    /* header fields that would break the framing are never sent: 500 */
    SEND_STR(fd, "GET /inject HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "Error\n", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 500 Internal Server Error\r\n") == buf);
    PX_CHECK(strstr(buf, "injected") == NULL);

    /* routes: a match reaches the app with its parameter; a wrong method is a
     * 405 with Allow; an unrouted path reaches the app as route -1 */
    SEND_STR(fd, "GET /item/42 HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "\r\n\r\n", 1);
    PX_CHECK(strstr(buf, "X-Route: 0 42\r\n") != NULL);
    SEND_STR(fd, "POST /item/42 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "Allowed\n", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n") == buf);
    PX_CHECK(strstr(buf, "\r\nAllow: GET\r\n") != NULL);
    SEND_STR(fd, "GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "\r\n\r\n", 1);
    PX_CHECK(strstr(buf, "X-Route: -1 \r\n") != NULL);

    /* 100 pipelined requests in one write, answered in order */
    len = 0;
    for (i = 0; i < 100; i++)
        len += (size_t)sprintf(
            req + len, "POST /r%d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n%03d", i, i);
    px_test_send_all(fd, req, len);
    len = px_test_read_until(fd, buf, sizeof(buf), "HTTP/1.1 200", 100);
    {
        char *p = buf;
        for (i = 0; i < 100; i++) {
            char want[32];
            sprintf(want, "X-Path: /r%d\r\n", i);
            p = strstr(p, want);
            PX_CHECK(p != NULL);
            sprintf(want, "\r\n\r\n%03d", i);
            p = strstr(p, want);
            PX_CHECK(p != NULL);
        }
    }

    /* chunked body in pieces, with 100-continue */
    SEND_STR(
        fd,
        "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "100 Continue", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 100 Continue\r\n\r\n") == buf);
    SEND_STR(fd, "5\r\nhello\r\n");
    usleep(20000);
    SEND_STR(fd, "6\r\n world\r\n0\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "hello world", 1);
    PX_CHECK(strstr(buf, "Content-Length: 11\r\n") != NULL);
    close(fd);

    /* HTTP/1.0 keep-alive to a static route: answered with keep-alive, twice */
    fd = px_test_connect(port);
    for (i = 0; i < 2; i++) {
        SEND_STR(fd, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        len = px_test_read_until(fd, buf, sizeof(buf), "Hello, World!", 1);
        PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
        PX_CHECK(strstr(buf, "\r\nConnection: keep-alive\r\n") != NULL);
        PX_CHECK(strstr(buf, "Hello, World!") != NULL);
    }
    /* and without keep-alive it is answered, then closed */
    SEND_STR(fd, "GET /plaintext HTTP/1.0\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK(strstr(buf, "\r\nConnection: close\r\n") != NULL);
    PX_CHECK(strstr(buf, "Hello, World!") != NULL);
    close(fd);

    /* smuggling: Content-Length with Transfer-Encoding -> 400 and close */
    fd = px_test_connect(port);
    SEND_STR(
        fd,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK(strstr(buf, "HTTP/1.1 400 Bad Request\r\n") == buf);
    PX_CHECK(strstr(buf, "Connection: close\r\n") != NULL);
    close(fd);

    /* a head that never completes is cut off at the deadline */
    fd = px_test_connect(port);
    SEND_STR(fd, "GET / HTTP/1.1\r\nHost");
    {
        uint64_t t0 = px_now_ms();
        for (i = 0; i < 5; i++) {
            ssize_t r = send(fd, "x", 1, MSG_NOSIGNAL);
            if (r <= 0)
                break;
            usleep(100000);
        }
        len = px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
        PX_CHECK_EQ(len, 0);
        PX_CHECK_LT(px_now_ms() - t0, 2000);
    }
    close(fd);

    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    printf("%s: ok\n", px_engine_backend_name(e));
    px_engine_destroy(e);
    px_http_server_free(srv);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
