/*
 * px_engine_connect_on on each backend: a name looked up on the resolver
 * threads (slowed by the test hook) while the workers serve; the connection
 * on the worker asked for; every address tried in the RFC 8305 order
 * (families interleaved) with each attempt's error reported; a request whose
 * lookup is still running when the engine is destroyed is dropped, the
 * resolver thread finishing alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "px/engine.h"
#include "px_test.h"
#include "px_test_engine.h"

typedef struct client {
    px_worker_t *want;
    bool opened, echoed, wrong_worker;
    int err, gai_err;
    unsigned count;
    int families[4], errs[4];
    _Atomic bool done;
} client_t;

static int echo_data(px_conn_t *c, const char *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return px_conn_send(c, &iov, 1);
}

static const px_handler_t echo = {.on_data = echo_data};

static int client_open(px_conn_t *c)
{
    struct iovec iov = {"ping", 4};
    client_t *cl = px_conn_server_udata(c);

    cl->opened = true;
    cl->wrong_worker = cl->want && px_worker_current() != cl->want;
    return px_conn_send(c, &iov, 1);
}

static int client_data(px_conn_t *c, const char *data, size_t len)
{
    client_t *cl = px_conn_server_udata(c);

    cl->echoed = len == 4 && memcmp(data, "ping", 4) == 0;
    px_conn_close(c);
    return 0;
}

static void client_close(px_conn_t *c, int err)
{
    client_t *cl = px_conn_server_udata(c);

    cl->err = err;
    atomic_store(&cl->done, true);
}

static void client_error(void *udata, const px_connect_error_t *ce)
{
    client_t *cl = udata;

    cl->err = ce->err;
    cl->gai_err = ce->gai_err;
    cl->count = ce->count;
    for (unsigned i = 0; i < ce->count && i < 4; i++) {
        cl->families[i] = ce->addrs[i].ss_family;
        cl->errs[i] = ce->errs[i];
    }
    atomic_store(&cl->done, true);
}

static const px_handler_t client = {.on_open = client_open,
                                    .on_data = client_data,
                                    .on_close = client_close,
                                    .on_connect_error = client_error};

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = &echo, .listen_fd = -1};
    client_t slow = {0}, quick = {0}, order = {0}, none = {0}, late = {0};
    px_engine_t *e;
    uint64_t t0;
    int port;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    port = px_test_listen_start(e, &ep);

    /* A slow lookup: the request returns at once, the workers go on. */
    {
        px_endpoint_config_t cc = {.handler = &client, .udata = &slow, .listen_fd = -1};
        slow.want = px_engine_worker(e, 1);
        t0 = px_test_now_ms();
        PX_CHECK_EQ(px_engine_connect_on(e, slow.want, "slow.test", port, &cc), 0);
        PX_CHECK(px_test_now_ms() - t0 < 150);
    }
    /* A numeric address needs no lookup: connected, echoed and closed while
     * the lookup of slow.test still sleeps. */
    {
        px_endpoint_config_t cc = {.handler = &client, .udata = &quick, .listen_fd = -1};
        quick.want = px_engine_worker(e, 1);
        PX_CHECK_EQ(px_engine_connect_on(e, quick.want, "127.0.0.1", port, &cc), 0);
    }
    PX_WAIT_UNTIL(atomic_load(&quick.done), 10000);
    PX_CHECK(quick.echoed);
    PX_CHECK(!atomic_load(&slow.done));
    /* Refused everywhere: attempts in the interleaved order, each error kept. */
    {
        px_endpoint_config_t cc = {.handler = &client, .udata = &order, .listen_fd = -1};
        PX_CHECK_EQ(px_engine_connect(e, "order.test", px_test_free_port(), &cc), 0);
    }
    {
        px_endpoint_config_t cc = {.handler = &client, .udata = &none, .listen_fd = -1};
        PX_CHECK_EQ(px_engine_connect(e, "nowhere.test", port, &cc), 0);
    }
    PX_WAIT_UNTIL(atomic_load(&order.done) && atomic_load(&none.done), 10000);
    PX_CHECK_EQ(order.count, 3);
    PX_CHECK_EQ(order.families[0], AF_INET);
    PX_CHECK_EQ(order.families[1], AF_INET6);
    PX_CHECK_EQ(order.families[2], AF_INET);
    PX_CHECK_EQ(order.errs[0], -ECONNREFUSED);
    PX_CHECK_EQ(order.errs[1], -ECONNREFUSED);
    PX_CHECK_EQ(order.err, -ECONNREFUSED);
    PX_CHECK(!order.opened);
    PX_CHECK_EQ(none.gai_err, EAI_NONAME);
    PX_CHECK_EQ(none.err, -EADDRNOTAVAIL);
    PX_CHECK_EQ(none.count, 0);

    PX_WAIT_UNTIL(atomic_load(&slow.done), 10000);
    PX_CHECK(slow.opened);
    PX_CHECK(slow.echoed);
    PX_CHECK(!slow.wrong_worker);
    PX_CHECK_EQ(slow.err, 0);

    /* Destroyed while a lookup runs: dropped, never called. */
    {
        px_endpoint_config_t cc = {.handler = &client, .udata = &late, .listen_fd = -1};
        PX_CHECK_EQ(px_engine_connect(e, "slow.test", port, &cc), 0);
    }
    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    printf("%s: ok\n", px_engine_backend_name(e));
    px_engine_destroy(e);
    PX_CHECK(!atomic_load(&late.done));
}

int main(void)
{
    setenv("PX_TEST_RESOLVE",
           "slow.test=127.0.0.1;order.test=127.0.0.1,127.0.0.2,::1;nowhere.test=", 1);
    setenv("PX_TEST_RESOLVE_DELAY_MS", "1000", 1);
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    usleep(1200 * 1000); /* the last lookups end and their threads exit */
    return 0;
}
