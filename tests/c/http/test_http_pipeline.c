/* Hostile pipelining and the memory budget, in C alone, on each backend: 200
 * pipelined requests for a 1 MiB static route from a client that does not read
 * are taken a few at a time (the rest waits for the answers to drain), then
 * all arrive in order; with a 4 MiB budget a body that announces more gets 503
 * and Connection: close while a request without a body is served. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/http_server.h"
#include "px_test.h"
#include "px_test_engine.h"

#define BIG (1u << 20)
#define FLOOD 200
#define BUDGET ((size_t)4 << 20)

static char big[BIG];

static void app(px_http_exchange_t *x, void *udata)
{
    (void)udata;
    px_http_respond(x, 200, "text/plain", NULL, 0, "ok", 2);
}

static uint64_t stat_requests(px_engine_t *e)
{
    return PX_STAT_GET(px_worker_stats(px_engine_worker(e, 0)), requests);
}

static void recv_exact(int fd, char *p, size_t n)
{
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        PX_CHECK_GT(r, 0);
        p += r;
        n -= (size_t)r;
    }
}

/* One response: its head checked (200, Content-Length), its body compared. */
static void read_answer(int fd, const char *body, size_t len)
{
    static char got[BIG];
    char head[1024];
    size_t n = 0;

    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        PX_CHECK_LT(n, sizeof(head) - 1);
        recv_exact(fd, head + n, 1);
        n++;
    }
    head[n] = 0;
    PX_CHECK(strstr(head, "HTTP/1.1 200 OK\r\n") == head);
    PX_CHECK(strstr(head, "Content-Length: 1048576\r\n") != NULL);
    recv_exact(fd, got, len);
    PX_CHECK_MEM(got, body, len);
}

static void run(px_backend_kind_t kind)
{
    static char buf[4096];
    px_engine_config_t cfg;
    px_http_config_t hcfg;
    px_http_server_t *srv;
    px_engine_t *e;
    int port, fd, rcvbuf = 65536, i;
    uint64_t before, taken, last;
    char req[64];

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    cfg.memory_budget = BUDGET;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    PX_CHECK_EQ(px_engine_memory_budget(e), BUDGET);
    px_http_config_default(&hcfg);
    hcfg.limits.max_body = 64u << 20;
    PX_CHECK_EQ(px_http_server_new(&hcfg, app, NULL, &srv), 0);
    PX_CHECK_EQ(px_http_route_static(srv, "/big", "text/plain", big, BIG), 0);
    port = px_http_listen(e, srv, "127.0.0.1", 0, -1);
    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);

    /* the flood: a small receive window, nothing read */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    PX_CHECK_GE(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        struct timeval tv = {.tv_sec = 10};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        PX_CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    before = stat_requests(e);
    for (i = 0; i < FLOOD; i++)
        px_test_send_str(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    /* settled: no request taken for half a second */
    last = stat_requests(e);
    for (i = 0; i < 100; i++) {
        usleep(500000);
        if (stat_requests(e) == last)
            break;
        last = stat_requests(e);
    }
    taken = last - before;
    printf("%s: %llu of %d pipelined requests taken while the client did not read\n",
           px_engine_backend_name(e), (unsigned long long)taken, FLOOD);
    PX_CHECK_LT(taken, FLOOD / 2);
    PX_CHECK_GE(PX_STAT_GET(px_worker_stats(px_engine_worker(e, 0)), pipeline_waits), 1);
    for (i = 0; i < FLOOD; i++)
        read_answer(fd, big, BIG);
    close(fd);

    /* over the budget by its announced length: 503 and close */
    fd = px_test_connect(port);
    snprintf(req, sizeof(req), "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             2 * BUDGET);
    px_test_send_str(fd, req);
    px_test_read_until(fd, buf, sizeof(buf), NULL, 0);
    PX_CHECK(strstr(buf, "HTTP/1.1 503 Service Unavailable\r\n") == buf);
    PX_CHECK(strstr(buf, "\r\nConnection: close\r\n") != NULL);
    close(fd);
    PX_CHECK_EQ(PX_STAT_GET(px_worker_stats(px_engine_worker(e, 0)), budget_refused), 1);
    /* a request with a body within it, and one without, are served */
    fd = px_test_connect(port);
    px_test_send_str(fd, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    px_test_read_until(fd, buf, sizeof(buf), "ok", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    px_test_send_str(fd, "GET /y HTTP/1.1\r\nHost: x\r\n\r\n");
    px_test_read_until(fd, buf, sizeof(buf), "ok", 1);
    PX_CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    close(fd);

    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    px_engine_destroy(e);
    px_http_server_free(srv);
}

int main(void)
{
    size_t dflt = px_memory_budget_default();

    PX_CHECK_GE(dflt, PX_MIN_MEMORY_BUDGET);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
