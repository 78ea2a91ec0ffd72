/*
 * The engine's stats read from another thread while workers serve HTTP, on
 * each backend: a reader merges the latency histograms and reads CPU times and
 * running callbacks the whole time (TSan watches it); afterwards N requests
 * read as N in the requests counter and the request histogram, requests that
 * took 2 ms in the handler read as at least that, every callback is timed
 * exactly once, no callback is reported running, and worker CPU time is
 * positive and never goes back.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "px/http_server.h"
#include "px_test.h"
#include "px_test_engine.h"

#define CLIENTS 4
#define REQUESTS 150 /* per client; every 10th is slow */
#define SLOW_NS 2000000u

static void app(px_http_exchange_t *x, void *udata)
{
    (void)udata;
    if (x->req->path.len == 5 && memcmp(x->req->path.base, "/slow", 5) == 0) {
        struct timespec pause = {0, SLOW_NS};
        nanosleep(&pause, NULL);
    }
    px_http_respond(x, 200, "text/plain", NULL, 0, "ok", 2);
}

static void *client(void *arg)
{
    int port = *(int *)arg, fd = px_test_connect(port), i;
    char buf[4096];

    for (i = 0; i < REQUESTS; i++) {
        const char *req = i % 10 == 0 ? "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                                      : "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n";
        size_t len = 0;
        PX_CHECK_EQ(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        while (len < 4 || memcmp(buf + len - 2, "ok", 2) != 0) { /* the body ends it */
            ssize_t r = px_test_recv(fd, buf + len, sizeof(buf) - len);
            PX_CHECK_GT(r, 0);
            len += (size_t)r;
        }
    }
    close(fd);
    return NULL;
}

static px_engine_t *engine;
static _Atomic bool serving;
static _Atomic long reads;

static void *reader(void *arg)
{
    static px_hist_snapshot_t s;
    uint64_t last_cpu[8] = {0};
    (void)arg;

    while (atomic_load(&serving)) {
        for (int i = 0; i < px_engine_worker_count(engine); i++) {
            px_worker_t *w = px_engine_worker(engine, i);
            uint64_t cpu = px_worker_cpu_ns(w);

            px_hist_snapshot_init(&s);
            px_hist_merge(&s, px_worker_latency(w, PX_LATENCY_REQUEST));
            px_hist_merge(&s, px_worker_latency(w, PX_LATENCY_CALLBACK));
            PX_CHECK(s.count <= 10 * CLIENTS * REQUESTS);
            (void)px_hist_quantile(&s, 0.99);
            (void)px_worker_callback_since(w);
            (void)PX_STAT_GET(px_worker_stats(w), requests);
            PX_CHECK(cpu >= last_cpu[i]);
            last_cpu[i] = cpu;
        }
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

static uint64_t slow_values(const px_hist_snapshot_t *s)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < PX_HIST_BUCKETS; b++)
        if (px_hist_upper(b) >= SLOW_NS)
            n += s->buckets[b];
    return n;
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_http_config_t hcfg;
    px_http_server_t *srv;
    px_hist_snapshot_t req, cb;
    pthread_t clients[CLIENTS], rd;
    uint64_t requests = 0, callbacks = 0, closes = 0, cpu_before[2];
    int port, i;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &engine))
        return;
    px_http_config_default(&hcfg);
    PX_CHECK_EQ(px_http_server_new(&hcfg, app, NULL, &srv), 0);
    port = px_http_listen(engine, srv, "127.0.0.1", 0, -1);
    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(engine), 0);
    atomic_store(&serving, true);
    atomic_store(&reads, 0);
    PX_CHECK_EQ(pthread_create(&rd, NULL, reader, NULL), 0);
    for (i = 0; i < CLIENTS; i++)
        PX_CHECK_EQ(pthread_create(&clients[i], NULL, client, &port), 0);
    for (i = 0; i < CLIENTS; i++)
        pthread_join(clients[i], NULL);
    /* Wait for every connection's close callback: then nothing runs. */
    for (i = 0; i < 500 && closes < CLIENTS; i++) {
        closes = 0;
        for (int w = 0; w < 2; w++)
            closes += PX_STAT_GET(px_worker_stats(px_engine_worker(engine, w)), closes);
        usleep(10000);
    }
    PX_CHECK_EQ(closes, CLIENTS);
    atomic_store(&serving, false);
    pthread_join(rd, NULL);
    PX_CHECK_GT(atomic_load(&reads), 0);

    px_hist_snapshot_init(&req);
    px_hist_snapshot_init(&cb);
    for (i = 0; i < 2; i++) {
        px_worker_t *w = px_engine_worker(engine, i);
        px_hist_snapshot_t one;

        px_hist_snapshot_init(&one);
        px_hist_merge(&one, px_worker_latency(w, PX_LATENCY_CALLBACK));
        PX_CHECK_EQ(one.count, PX_STAT_GET(px_worker_stats(w), callbacks));
        px_hist_merge(&req, px_worker_latency(w, PX_LATENCY_REQUEST));
        px_hist_merge(&cb, px_worker_latency(w, PX_LATENCY_CALLBACK));
        requests += PX_STAT_GET(px_worker_stats(w), requests);
        callbacks += PX_STAT_GET(px_worker_stats(w), callbacks);
        PX_CHECK_EQ(px_worker_callback_since(w), 0);
        PX_CHECK_EQ(PX_STAT_GET(px_worker_stats(w), handoffs), 0);
        cpu_before[i] = px_worker_cpu_ns(w);
        PX_CHECK_GT(cpu_before[i], 0);
    }
    PX_CHECK_EQ(requests, CLIENTS * REQUESTS);
    PX_CHECK_EQ(req.count, CLIENTS * REQUESTS);
    PX_CHECK_EQ(cb.count, callbacks);
    /* The slow requests, and the callbacks that ran them, took >= 2 ms. */
    PX_CHECK_GE(slow_values(&req), CLIENTS * REQUESTS / 10);
    PX_CHECK_GE(slow_values(&cb), CLIENTS * REQUESTS / 10);
    PX_CHECK_GE(px_hist_quantile(&req, 1.0), SLOW_NS);
    PX_CHECK_LT(px_hist_quantile(&req, 0.5), SLOW_NS); /* 9 in 10 are fast */

    px_engine_shutdown(engine, 1000);
    px_engine_join(engine);
    for (i = 0; i < 2; i++) /* the final figure, kept once the thread has ended */
        PX_CHECK_GE(px_worker_cpu_ns(px_engine_worker(engine, i)), cpu_before[i]);
    printf("%s: ok (%ld snapshots taken while serving)\n", px_engine_backend_name(engine),
           atomic_load(&reads));
    px_engine_destroy(engine);
    px_http_server_free(srv);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
