/*
 * px_conn_send_failed: a connection that dies because writing failed says so
 * (the binding's send_failed callback); one whose receive failed does not (its
 * recv_failed comes from on_eof). Both backends.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px_test_engine.h"

static char chunk[64 * 1024];
static _Atomic int closes, close_err, send_failed, eof_err;

/* The "stream" server does not read and writes for as long as it can. */
static int stream_open(px_conn_t *c)
{
    struct iovec iov = {chunk, sizeof(chunk)};

    px_conn_pause(c);
    return px_conn_send(c, &iov, 1) < 0 ? -1 : 0;
}

static void stream_drain(px_conn_t *c)
{
    struct iovec iov = {chunk, sizeof(chunk)};

    (void)px_conn_send(c, &iov, 1);
}

/* The "reader" server only reads. */
static int reader_open(px_conn_t *c)
{
    (void)c;
    return 0;
}

static int reader_data(px_conn_t *c, const char *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
    return 0;
}

static void on_eof(px_conn_t *c, int err)
{
    (void)c;
    atomic_store(&eof_err, err);
}

static void on_close(px_conn_t *c, int err)
{
    atomic_store(&close_err, err);
    atomic_store(&send_failed, px_conn_send_failed(c));
    atomic_fetch_add(&closes, 1);
}

static const px_handler_t stream_handler = {
    .on_open = stream_open, .on_drain = stream_drain, .on_eof = on_eof, .on_close = on_close};
static const px_handler_t reader_handler = {
    .on_open = reader_open, .on_data = reader_data, .on_eof = on_eof, .on_close = on_close};

/* Close fd with a reset rather than a FIN. */
static void reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    PX_CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

static void expect_close(int before, bool by_send)
{
    PX_WAIT_UNTIL(atomic_load(&closes) == before + 1, 10000);
    PX_CHECK_EQ(atomic_load(&closes), before + 1);
    PX_CHECK_LT(atomic_load(&close_err), 0);
    PX_CHECK_EQ(atomic_load(&send_failed), by_send);
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_endpoint_config_t stream = {.handler = &stream_handler, .listen_fd = -1};
    px_endpoint_config_t reader = {.handler = &reader_handler, .listen_fd = -1};
    px_engine_t *e;
    char buf[4096];
    int stream_port, reader_port, fd, before;
    ssize_t n;

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    stream_port = px_engine_listen(e, "127.0.0.1", 0, &stream, NULL);
    PX_CHECK_GT(stream_port, 0);
    reader_port = px_test_listen_start(e, &reader);

    /* A reader that vanishes while the server's sends wait for room. */
    before = atomic_load(&closes);
    atomic_store(&eof_err, 1);
    fd = px_test_connect(stream_port);
    while ((n = read(fd, buf, sizeof(buf))) < 0 && errno == EINTR)
        ; /* io_uring task work of this process can interrupt a timed read */
    PX_CHECK_GT(n, 0);
    usleep(200 * 1000); /* the socket buffers fill */
    reset(fd);
    expect_close(before, true);
    PX_CHECK_EQ(atomic_load(&eof_err), 1); /* reading was paused: no receive failed */
    PX_CHECK(atomic_load(&close_err) == -ECONNRESET || atomic_load(&close_err) == -EPIPE);

    /* A writer that resets while the server reads. */
    before = atomic_load(&closes);
    fd = px_test_connect(reader_port);
    px_test_send_str(fd, "hello");
    usleep(50 * 1000);
    reset(fd);
    expect_close(before, false);
    PX_CHECK_EQ(atomic_load(&eof_err), -ECONNRESET);
    PX_CHECK_EQ(atomic_load(&close_err), -ECONNRESET);

    printf("%s: ok\n", px_engine_backend_name(e));
    px_engine_shutdown(e, 1000);
    PX_CHECK_EQ(px_engine_join(e), 0);
    px_engine_destroy(e);
}

int main(void)
{
    memset(chunk, 'x', sizeof(chunk));
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
