/*
 * The load generator against the engine's own HTTP server, on each backend:
 * every scheduled request of a short run is answered (static route, Content-
 * Length; an app route answering 404 counts as non-2xx), the latency histogram
 * holds one value per response, and the run takes the scheduled time. Against a
 * port where nothing listens every request fails as a connect error, one
 * attempt per request. A bad configuration is -EINVAL, an unknown host -ENOENT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/http_server.h"
#include "px/loadgen.h"
#include "px_test.h"
#include "px_test_engine.h"

static void not_found(px_http_exchange_t *x, void *udata)
{
    (void)udata;
    px_http_respond(x, 404, "text/plain", NULL, 0, "no", 2);
}

static void run_gen(px_lg_config_t *cfg, px_lg_result_t *res)
{
    px_lg_t *lg;
    int rc;

    PX_CHECK_EQ(px_lg_create(cfg, &lg), 0);
    PX_CHECK_EQ(px_lg_start(lg), 0);
    while ((rc = px_lg_wait(lg, 100)) == 0)
        ;
    PX_CHECK_EQ(rc, 1);
    PX_CHECK_EQ(px_lg_finish(lg, res), 0);
    printf("%s: %llu responses, p50 %llu us, max %llu us, %.3f s\n", res->backend,
           (unsigned long long)res->responses, (unsigned long long)px_lg_latency_at(lg, 50),
           (unsigned long long)res->latency.max, (double)res->elapsed_ns / 1e9);
    PX_CHECK_EQ(px_lg_latency_at(lg, 100), res->latency.max);
    px_lg_destroy(lg);
}

static void run(px_backend_kind_t kind)
{
    static px_lg_result_t res;
    static const char get[] = "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char missing[] = "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n";
    px_engine_config_t cfg;
    px_http_config_t hcfg;
    px_http_server_t *srv;
    px_lg_config_t lcfg;
    px_engine_t *e;
    int port;

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    px_http_config_default(&hcfg);
    PX_CHECK_EQ(px_http_server_new(&hcfg, not_found, NULL, &srv), 0);
    PX_CHECK_EQ(px_http_route_static(srv, "/plaintext", "text/plain", "Hello, World!", 13), 0);
    port = px_http_listen(e, srv, "127.0.0.1", 0, -1);
    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);

    /* 1,000 requests over 0.5 s on 8 connections and 2 workers. */
    px_lg_config_default(&lcfg);
    lcfg.host = "127.0.0.1";
    lcfg.port = port;
    lcfg.request = get;
    lcfg.request_len = sizeof(get) - 1;
    lcfg.rate = 2000;
    lcfg.duration = 0.5;
    lcfg.connections = 8;
    lcfg.workers = 2;
    lcfg.backend = kind;
    run_gen(&lcfg, &res);
    PX_CHECK_STR(res.backend, px_engine_backend_name(e));
    PX_CHECK_EQ(res.scheduled, 1000);
    PX_CHECK_EQ(res.sent, 1000);
    PX_CHECK_EQ(res.responses, 1000);
    PX_CHECK_EQ(res.latency.count, 1000);
    PX_CHECK_EQ(res.non_2xx_3xx, 0);
    PX_CHECK_EQ(res.err_connect + res.err_read + res.err_write + res.err_timeout + res.err_parse +
                    res.cancelled + res.protocol_errors,
                0);
    PX_CHECK_EQ(res.connects, 8);
    PX_CHECK_EQ(res.connections, 8);
    PX_CHECK_EQ(res.workers, 2);
    PX_CHECK(!res.interrupted);
    /* Request 999 is due at 0.4995 s: the run cannot end before it. */
    PX_CHECK_GE(res.elapsed_ns, 499500000u);
    PX_CHECK_LT(res.elapsed_ns, 2500000000u); /* the schedule plus the timeout */
    PX_CHECK_GT(res.bytes_read, 1000u * 13);

    /* 404s are answers, counted apart. */
    lcfg.request = missing;
    lcfg.request_len = sizeof(missing) - 1;
    lcfg.duration = 0.1;
    run_gen(&lcfg, &res);
    PX_CHECK_EQ(res.responses, 200);
    PX_CHECK_EQ(res.non_2xx_3xx, 200);

    /* Nothing listens: each request fails with its connection attempt. */
    lcfg.port = px_test_free_port();
    lcfg.rate = 500;
    lcfg.duration = 0.2;
    lcfg.connections = 4;
    run_gen(&lcfg, &res);
    PX_CHECK_EQ(res.scheduled, 100);
    PX_CHECK_EQ(res.responses, 0);
    PX_CHECK_EQ(res.sent, 0);
    PX_CHECK_EQ(res.err_connect, 100);
    PX_CHECK_EQ(res.latency.count, 0);
    /* The first attempts of the connect phase, then at most one per request
     * (fewer when a worker that did not get the CPU finds several due). */
    PX_CHECK_GE(res.connect_errors, 4);
    PX_CHECK_LE(res.connect_errors, 104);

    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    px_engine_destroy(e);
    px_http_server_free(srv);
}

static void test_config(void)
{
    px_lg_config_t cfg;
    px_lg_t *lg;

    px_lg_config_default(&cfg);
    PX_CHECK_EQ(px_lg_create(&cfg, &lg), -EINVAL); /* no host, no request */
    cfg.host = "127.0.0.1";
    cfg.request = "GET / HTTP/1.1\r\n\r\n";
    cfg.request_len = strlen(cfg.request);
    cfg.rate = 0;
    PX_CHECK_EQ(px_lg_create(&cfg, &lg), -EINVAL);
    cfg.rate = 100;
    cfg.duration = -1;
    PX_CHECK_EQ(px_lg_create(&cfg, &lg), -EINVAL);
    cfg.duration = 1;
    cfg.connections = 0;
    PX_CHECK_EQ(px_lg_create(&cfg, &lg), -EINVAL);
    cfg.connections = 1;
    cfg.port = 70000;
    PX_CHECK_EQ(px_lg_create(&cfg, &lg), -EINVAL);
    cfg.port = 80;
    cfg.host = "no-such-host.invalid";
    PX_CHECK_EQ(px_lg_create(&cfg, &lg), -ENOENT);
}

int main(void)
{
    test_config();
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
