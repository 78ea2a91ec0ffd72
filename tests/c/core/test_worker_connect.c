/*
 * px_worker_connect on each backend: clients connected from a chosen worker
 * open, exchange bytes and close on that worker; a refused address reaches
 * on_close with -ECONNREFUSED on that worker; a bad address length is -EINVAL.
 * px_engine_adopt_on: sockets the caller connected open on the chosen worker
 * (or one chosen round-robin) as well; what is not a connected stream socket
 * is refused and its descriptor closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/engine.h"
#include "px_test.h"
#include "px_test_engine.h"

#define PER_WORKER 8

typedef struct client {
    px_worker_t *want; /* the worker it must live on */
    int err;           /* on_close's */
    bool opened, echoed, wrong_worker;
    _Atomic bool closed;
} client_t;

static int echo_data(px_conn_t *c, const char *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return px_conn_send(c, &iov, 1);
}

static const px_handler_t echo = {.on_data = echo_data};

static client_t *client_of(px_conn_t *c)
{
    return px_conn_server_udata(c);
}

static void check_worker(client_t *cl)
{
    if (cl->want != NULL && px_worker_current() != cl->want)
        cl->wrong_worker = true;
}

static int client_open(px_conn_t *c)
{
    struct iovec iov = {"ping", 4};
    client_t *cl = client_of(c);

    check_worker(cl);
    cl->opened = true;
    return px_conn_send(c, &iov, 1);
}

static int client_data(px_conn_t *c, const char *data, size_t len)
{
    client_t *cl = client_of(c);

    check_worker(cl);
    if (len == 4 && memcmp(data, "ping", 4) == 0)
        cl->echoed = true;
    px_conn_close(c);
    return 0;
}

static void client_close(px_conn_t *c, int err)
{
    client_t *cl = client_of(c);

    check_worker(cl);
    cl->err = err;
    atomic_store(&cl->closed, true);
}

static const px_handler_t client = {
    .on_open = client_open, .on_data = client_data, .on_close = client_close};

static bool all_closed(client_t *cl, int n)
{
    for (int i = 0; i < n; i++)
        if (!atomic_load(&cl[i].closed))
            return false;
    return true;
}

static void wait_closed(client_t *cl, int n)
{
    PX_WAIT_UNTIL(all_closed(cl, n), 10000);
    PX_CHECK(all_closed(cl, n));
}

/* A blocking connect to 127.0.0.1:port, done before the engine sees it. */
static int connected_socket(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    PX_CHECK(fd >= 0);
    PX_CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void adopt(px_engine_t *e, int port)
{
    px_endpoint_config_t cc = {.handler = &client, .listen_fd = -1};
    client_t clients[3 * PER_WORKER];
    int i, fd, pipefd[2];

    memset(clients, 0, sizeof(clients));
    /* On worker 1, on worker 0, then wherever the engine puts them. */
    for (i = 0; i < 3 * PER_WORKER; i++) {
        clients[i].want = i < 2 * PER_WORKER ? px_engine_worker(e, i < PER_WORKER ? 1 : 0) : NULL;
        cc.udata = &clients[i];
        PX_CHECK_EQ(px_engine_adopt_on(e, clients[i].want, connected_socket(port), &cc), 0);
    }
    wait_closed(clients, 3 * PER_WORKER);
    for (i = 0; i < 3 * PER_WORKER; i++) {
        PX_CHECK(clients[i].opened);
        PX_CHECK(clients[i].echoed);
        PX_CHECK(!clients[i].wrong_worker);
        PX_CHECK_EQ(clients[i].err, 0);
    }
    /* Refused, and the descriptor is closed all the same. */
    cc.udata = NULL;
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    PX_CHECK_EQ(px_engine_adopt_on(e, NULL, fd, &cc), -EINVAL);
    PX_CHECK_EQ(fcntl(fd, F_GETFD), -1);
    PX_CHECK_EQ(pipe(pipefd), 0);
    PX_CHECK_EQ(px_engine_adopt_on(e, NULL, pipefd[0], &cc), -ENOTSOCK);
    PX_CHECK_EQ(fcntl(pipefd[0], F_GETFD), -1);
    close(pipefd[1]);
    PX_CHECK_EQ(px_engine_adopt_on(e, NULL, -1, &cc), -EBADF);
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = &echo, .listen_fd = -1};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    client_t clients[2 * PER_WORKER], refused[2];
    px_engine_t *e;
    int port, i;

    memset(clients, 0, sizeof(clients));
    memset(refused, 0, sizeof(refused));
    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    port = px_test_listen_start(e, &ep);
    adopt(e, port);
    sa.sin_port = htons((uint16_t)port);
    /* All on worker 1 first, then all on worker 0: not round-robin. */
    for (i = 0; i < 2 * PER_WORKER; i++) {
        px_endpoint_config_t cc = {.handler = &client, .udata = &clients[i], .listen_fd = -1};
        clients[i].want = px_engine_worker(e, i < PER_WORKER ? 1 : 0);
        PX_CHECK_EQ(px_worker_connect(clients[i].want, (struct sockaddr *)&sa, sizeof(sa), &cc), 0);
    }
    wait_closed(clients, 2 * PER_WORKER);
    for (i = 0; i < 2 * PER_WORKER; i++) {
        PX_CHECK(clients[i].opened);
        PX_CHECK(clients[i].echoed);
        PX_CHECK(!clients[i].wrong_worker);
        PX_CHECK_EQ(clients[i].err, 0);
    }

    sa.sin_port = htons((uint16_t)px_test_free_port());
    for (i = 0; i < 2; i++) {
        px_endpoint_config_t cc = {.handler = &client, .udata = &refused[i], .listen_fd = -1};
        refused[i].want = px_engine_worker(e, i);
        PX_CHECK_EQ(px_worker_connect(refused[i].want, (struct sockaddr *)&sa, sizeof(sa), &cc), 0);
    }
    wait_closed(refused, 2);
    for (i = 0; i < 2; i++) {
        PX_CHECK(!refused[i].opened);
        PX_CHECK(!refused[i].wrong_worker);
        PX_CHECK_EQ(refused[i].err, -ECONNREFUSED);
    }

    {
        px_endpoint_config_t cc = {.handler = &client, .listen_fd = -1};
        PX_CHECK_EQ(px_worker_connect(px_engine_worker(e, 0), (struct sockaddr *)&sa, 1, &cc),
                    -EINVAL);
    }
    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    printf("%s: ok\n", px_engine_backend_name(e));
    px_engine_destroy(e);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
