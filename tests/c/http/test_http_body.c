/* Hostile request bodies through a real socket, on each backend: a chunked
 * body flooded with chunk extensions is held decoded only (the process grows by
 * far less than was sent) and refused 413 once what was sent passes the limit;
 * a chunk extension over its limit is a 400; bodies nothing takes (a 405 of the
 * route table, a static route) are answered before they are sent and dropped
 * without ending keep-alive; leading empty lines, OPTIONS * and CONNECT. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/http_server.h"
#include "px_test.h"
#include "px_test_engine.h"

#define SEND_STR(fd, lit) px_test_send_all(fd, lit, sizeof(lit) - 1)

static void app(px_http_exchange_t *x, void *udata)
{
    char extra[64];
    int n = snprintf(extra, sizeof(extra), "X-Body-Length: %zu\r\n", x->body_len);
    (void)udata;
    px_http_respond(x, 200, "text/plain", extra, (size_t)n, "app", 3);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One chunk of one data byte behind ~900 bytes of extensions. */
static size_t ext_chunk(char *out)
{
    size_t n = (size_t)sprintf(out, "1;e=");
    memset(out + n, 'v', 900);
    n += 900;
    return n + (size_t)sprintf(out + n, "\r\nx\r\n");
}

/* Send count extension-laden chunks; false once the server stopped reading. */
static bool flood(int fd, size_t count)
{
    static char block[64 * 1024];
    char one[1024];
    size_t k = ext_chunk(one), per = sizeof(block) / k, sent = 0;
    for (size_t i = 0; i < per; i++)
        memcpy(block + i * k, one, k);
    while (sent < count) {
        size_t n = PX_MIN(per, count - sent);
        for (size_t off = 0; off < n * k;) {
            ssize_t w = send(fd, block + off, n * k - off, MSG_NOSIGNAL);
            if (w <= 0)
                return false;
            off += (size_t)w;
        }
        sent += n;
    }
    return true;
}

static void run(px_backend_kind_t kind)
{
    static char buf[1 << 16];
    static const char *const get[] = {"GET"};
    px_engine_config_t cfg;
    px_http_config_t hcfg;
    px_http_server_t *srv, *big;
    px_engine_t *e;
    int port, bport, fd;
    size_t len;

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    px_http_config_default(&hcfg);
    hcfg.body_timeout_ms = 20000;
    PX_CHECK_EQ(px_http_server_new(&hcfg, app, NULL, &srv), 0);
    PX_CHECK_EQ(px_http_route_static(srv, "/static", "text/plain", "static", 6), 0);
    PX_CHECK_EQ(px_http_route(srv, "/get-only", 9, get, 1), 0);
    port = px_http_listen(e, srv, "127.0.0.1", 0, -1);
    PX_CHECK_GT(port, 0);
    hcfg.limits.max_body = 256u << 20; /* the raw bytes' release, not the limit */
    PX_CHECK_EQ(px_http_server_new(&hcfg, app, NULL, &big), 0);
    bport = px_http_listen(e, big, "127.0.0.1", 0, -1);
    PX_CHECK_GT(bport, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);

    /* 24 MiB of extensions for 27k body bytes: the server keeps the decoded
     * bytes only (a wide margin: under 8 MiB of growth), then answers; the
     * first round warms the engine's receive buffers up, the second counts */
    for (int round = 0; round < 2; round++) {
        fd = px_test_connect(bport);
        SEND_STR(fd, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        long before = rss_kib();
        PX_CHECK(flood(fd, 27000));
        long grown = rss_kib() - before;
        SEND_STR(fd, "0\r\n\r\n");
        len = px_test_read_until(fd, buf, sizeof(buf), "app", 1);
        PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
        PX_CHECK(strstr(buf, "X-Body-Length: 27000\r\n") != NULL);
        close(fd);
        if (round == 0)
            continue;
        printf("%s: rss grew %ld KiB for 24 MiB of chunk extensions\n", px_engine_backend_name(e),
               grown);
        PX_CHECK_LT(grown, 8 * 1024);
    }

    /* with the default 1 MiB limit the same flood is a 413 long before 8 MiB */
    fd = px_test_connect(port);
    SEND_STR(fd, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    (void)flood(fd, 9000);
    len = px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK(strstr(buf, "HTTP/1.1 413 Content Too Large\r\n") == buf);
    close(fd);

    /* one chunk extension over 1 KiB: 400 and close */
    fd = px_test_connect(port);
    SEND_STR(fd, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=");
    memset(buf, 'v', 1100);
    px_test_send_all(fd, buf, 1100);
    len = px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK(strstr(buf, "HTTP/1.1 400 Bad Request\r\n") == buf);
    close(fd);

    /* a body to a route that cannot take it: the 405 comes before the body is
     * sent; then the body is dropped and the connection goes on */
    fd = px_test_connect(port);
    SEND_STR(fd, "POST /get-only HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "Allowed\n", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 405 Method Not Allowed\r\n") == buf);
    PX_CHECK(strstr(buf, "Connection: close") == NULL);
    {
        static char body[1000000];
        memset(body, 'b', sizeof(body));
        px_test_send_all(fd, body, sizeof(body));
    }
    SEND_STR(fd, "GET /static HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe");
    len = px_test_read_until(fd, buf, sizeof(buf), "static", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    SEND_STR(fd, "llo\r\n5; e=\"x\"\r\nworld\r\n0\r\n\r\nGET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "app", 1);
    PX_CHECK(strstr(buf, "X-Body-Length: 0\r\n") != NULL);
    /* a malformed dropped body closes the connection */
    SEND_STR(fd, "GET /static HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /static HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK_EQ(len, 2 * (strstr(buf, "static") + 6 - buf));
    close(fd);

    /* RFC 9112 leniencies: empty lines first, OPTIONS *, CONNECT refused 501 */
    fd = px_test_connect(port);
    SEND_STR(fd, "\r\n\r\nGET /static HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "static", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    SEND_STR(fd, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), "\r\n\r\n", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    PX_CHECK(strstr(buf, "\r\nAllow: GET, HEAD, OPTIONS\r\n") != NULL);
    SEND_STR(fd, "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n");
    len = px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK(strstr(buf, "HTTP/1.1 501 Not Implemented\r\n") == buf);
    close(fd);
    (void)len;

    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    printf("%s: ok\n", px_engine_backend_name(e));
    px_engine_destroy(e);
    px_http_server_free(srv);
    px_http_server_free(big);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
