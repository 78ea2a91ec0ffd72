/*
 * px_engine_announce_stop (a stop's drain grace): every connection, open or
 * accepted after it, reports px_conn_draining, and the listener accepts on
 * until px_engine_shutdown. Both backends.
 */
#include "px_test_engine.h"

/* Answers each line with 1 when the connection is draining, else 0. */
static int on_data(px_conn_t *c, const char *data, size_t len)
{
    struct iovec iov = {.iov_base = px_conn_draining(c) ? "1\n" : "0\n", .iov_len = 2};

    (void)data;
    (void)len;
    return px_conn_send(c, &iov, 1) < 0 ? -EIO : 0;
}

static const px_handler_t handler = {.on_data = on_data};

static char ask(int fd)
{
    char buf[4];

    px_test_send_str(fd, "?\n");
    PX_CHECK_EQ(px_test_read_until(fd, buf, sizeof(buf), "\n", 1), 2);
    return buf[0];
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = &handler, .listen_fd = -1};
    px_engine_t *e;
    int port, before, after;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    port = px_engine_listen(e, "127.0.0.1", 0, &ep, NULL);
    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);
    before = px_test_connect(port);
    PX_CHECK_EQ(ask(before), '0');
    px_engine_announce_stop(e);
    PX_CHECK_EQ(ask(before), '1');
    for (int i = 0; i < 4; i++) { /* still accepting, on every worker */
        after = px_test_connect(port);
        PX_CHECK_EQ(ask(after), '1');
        close(after);
    }
    PX_CHECK(!px_engine_finished(e));
    close(before);
    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    printf("%s: announce_stop: ok\n", px_engine_backend_name(e));
    px_engine_destroy(e);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
