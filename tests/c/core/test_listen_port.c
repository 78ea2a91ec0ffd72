/*
 * Checks that px_engine_listen owns its port: a port another socket holds
 * (with SO_REUSEPORT, as another server's would be) is -EADDRINUSE, while the
 * engine's own workers still share theirs; with reuse_port the port is shared
 * on purpose. Both backends (the engine is never started: listening alone is
 * what is checked).
 */
#include "px_test_engine.h"

static int on_data(px_conn_t *c, const char *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
    return 0;
}

static const px_handler_t handler = {.on_data = on_data};

/* A listening loopback socket with SO_REUSEPORT on a free port: its port. */
static int hold_port(int *fd)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int one = 1;

    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    PX_CHECK_GE(*fd, 0);
    PX_CHECK_EQ(setsockopt(*fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    PX_CHECK_EQ(bind(*fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    PX_CHECK_EQ(listen(*fd, 16), 0);
    PX_CHECK_EQ(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = &handler, .listen_fd = -1};
    px_engine_t *e;
    int held, fd, port, again;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    held = hold_port(&fd);
    PX_CHECK_EQ(px_engine_listen(e, "127.0.0.1", held, &ep, NULL), -EADDRINUSE);
    ep.reuse_port = true;
    PX_CHECK_EQ(px_engine_listen(e, "127.0.0.1", held, &ep, NULL), held);
    /* Our own port, with two workers' listeners on it, is ours alone... */
    ep.reuse_port = false;
    port = px_engine_listen(e, "127.0.0.1", 0, &ep, NULL);
    PX_CHECK_GT(port, 0);
    again = px_engine_listen(e, "127.0.0.1", port, &ep, NULL);
    PX_CHECK_EQ(again, -EADDRINUSE);
    /* ...unless sharing is asked for. */
    ep.reuse_port = true;
    PX_CHECK_EQ(px_engine_listen(e, "127.0.0.1", port, &ep, NULL), port);
    close(fd);
    printf("%s: ok\n", px_engine_backend_name(e));
    px_engine_destroy(e);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
