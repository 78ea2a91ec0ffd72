/*
 * Half-close on each backend: with half-close on, the peer's end of stream
 * leaves the connection open for sending (on_eof, then the server answers and
 * shuts its side: the client reads it all, then EOF); a server that shuts its
 * sending side first keeps receiving (on_send_shut, then the client's data
 * arrives) and closes once the client ends too; sends after the shutdown fail
 * with -EPIPE; without half-close the end of stream closes; a shutdown asked
 * from another thread through the handle comes after what was posted before
 * it and refuses what comes after.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/engine.h"
#include "px/handle.h"
#include "px_test.h"
#include "px_test_engine.h"

enum mode {
    ANSWER_AFTER_EOF, /* half-close on: on EOF send "bye", shut */
    SHUT_FIRST,       /* on open send "data", shut; keep receiving */
    PLAIN,            /* half-close off: EOF closes */
    BY_HANDLE,        /* another thread sends and shuts through the handle */
};

static _Atomic int eofs, send_shuts, closes, close_errs, send_after_shut;
static _Atomic size_t received;
static _Atomic(px_handle_t *) opened;

static int on_open(px_conn_t *c)
{
    enum mode m = (enum mode)(intptr_t)px_conn_server_udata(c);
    struct iovec iov = {"data", 4};

    if (m == ANSWER_AFTER_EOF)
        px_conn_set_half_close(c, true);
    if (m == SHUT_FIRST) {
        PX_CHECK_EQ(px_conn_send(c, &iov, 1), 0);
        PX_CHECK_EQ(px_conn_shutdown_send(c), 0);
        PX_CHECK_EQ(px_conn_shutdown_send(c), 0); /* asking twice is no error */
        atomic_store(&send_after_shut, px_conn_send(c, &iov, 1));
    }
    if (m == BY_HANDLE)
        atomic_store(&opened, px_conn_handle(c));
    return 0;
}

static int on_data(px_conn_t *c, const char *data, size_t len)
{
    enum mode m = (enum mode)(intptr_t)px_conn_server_udata(c);
    struct iovec iov = {(void *)data, len};

    atomic_fetch_add(&received, len);
    if (m == ANSWER_AFTER_EOF || m == PLAIN)
        return px_conn_send(c, &iov, 1); /* echo */
    return 0;
}

static void on_eof(px_conn_t *c, int err)
{
    enum mode m = (enum mode)(intptr_t)px_conn_server_udata(c);
    struct iovec iov = {"bye", 3};

    if (err != 0)
        return;
    atomic_fetch_add(&eofs, 1);
    if (m == ANSWER_AFTER_EOF) {
        PX_CHECK(!px_conn_closing(c)); /* still open for sending */
        PX_CHECK_EQ(px_conn_send(c, &iov, 1), 0);
        PX_CHECK_EQ(px_conn_shutdown_send(c), 0);
    }
}

static void on_send_shut(px_conn_t *c)
{
    (void)c;
    atomic_fetch_add(&send_shuts, 1);
}

static void on_close(px_conn_t *c, int err)
{
    (void)c;
    if (err != 0)
        atomic_fetch_add(&close_errs, 1);
    atomic_fetch_add(&closes, 1);
}

static const px_handler_t handler = {.on_open = on_open,
                                     .on_data = on_data,
                                     .on_eof = on_eof,
                                     .on_close = on_close,
                                     .on_send_shut = on_send_shut};

static void reset(void)
{
    atomic_store(&eofs, 0);
    atomic_store(&send_shuts, 0);
    atomic_store(&closes, 0);
    atomic_store(&close_errs, 0);
    atomic_store(&received, 0);
    atomic_store(&send_after_shut, 1);
    atomic_store(&opened, NULL);
}

/* The client ends first; the server answers after the end, then shuts. */
static void answer_after_eof(int port)
{
    char buf[64];
    int fd;

    reset();
    fd = px_test_connect(port);
    px_test_send_str(fd, "hello");
    PX_CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    PX_CHECK_EQ(px_test_read_until(fd, buf, sizeof(buf), NULL, 0), 8);
    PX_CHECK_STR(buf, "hellobye");
    PX_WAIT_UNTIL(atomic_load(&closes) == 1, 5000);
    PX_CHECK_EQ(atomic_load(&closes), 1);
    PX_CHECK_EQ(atomic_load(&eofs), 1);
    PX_CHECK_EQ(atomic_load(&send_shuts), 1);
    PX_CHECK_EQ(atomic_load(&close_errs), 0);
    close(fd);
}

/* The server ends first; the client still sends, then ends. */
static void shut_first(int port)
{
    char buf[64];
    int fd;

    reset();
    fd = px_test_connect(port);
    PX_CHECK_EQ(px_test_read_until(fd, buf, sizeof(buf), NULL, 0), 4); /* data, then EOF */
    PX_CHECK_STR(buf, "data");
    PX_WAIT_UNTIL(atomic_load(&send_shuts) == 1, 5000);
    PX_CHECK_EQ(atomic_load(&send_shuts), 1);
    PX_CHECK_EQ(atomic_load(&send_after_shut), -EPIPE);
    px_test_send_str(fd, "more data");
    PX_WAIT_UNTIL(atomic_load(&received) == 9, 5000);
    PX_CHECK_EQ(atomic_load(&received), 9);
    PX_CHECK_EQ(atomic_load(&closes), 0); /* the client's side is still open */
    PX_CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    PX_WAIT_UNTIL(atomic_load(&closes) == 1, 5000);
    PX_CHECK_EQ(atomic_load(&closes), 1);
    PX_CHECK_EQ(atomic_load(&eofs), 1);
    PX_CHECK_EQ(atomic_load(&close_errs), 0);
    close(fd);
}

/* Without half-close, the client's end closes the connection after the echo. */
static void plain(int port)
{
    char buf[64];
    int fd;

    reset();
    fd = px_test_connect(port);
    px_test_send_str(fd, "hi");
    PX_CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    PX_CHECK_EQ(px_test_read_until(fd, buf, sizeof(buf), NULL, 0), 2);
    PX_CHECK_STR(buf, "hi");
    PX_WAIT_UNTIL(atomic_load(&closes) == 1, 5000);
    PX_CHECK_EQ(atomic_load(&closes), 1);
    PX_CHECK_EQ(atomic_load(&send_shuts), 0);
    close(fd);
}

/* From this (non-worker) thread: sends, the shutdown, a refused send. */
static void by_handle(int port)
{
    struct iovec iov = {"posted", 6};
    char buf[64];
    px_handle_t *h;
    int fd;

    reset();
    fd = px_test_connect(port);
    PX_WAIT_UNTIL(atomic_load(&opened) != NULL, 5000);
    h = atomic_load(&opened);
    PX_CHECK(h != NULL);
    PX_CHECK_EQ(px_handle_send(h, &iov, 1, false), 0);
    PX_CHECK(!px_handle_send_shut(h));
    PX_CHECK_EQ(px_handle_shutdown_send(h), 0);
    PX_CHECK(px_handle_send_shut(h));
    PX_CHECK_EQ(px_handle_send(h, &iov, 1, false), -EPIPE);
    PX_CHECK_EQ(px_handle_shutdown_send(h), 0);
    PX_CHECK_EQ(px_test_read_until(fd, buf, sizeof(buf), NULL, 0), 6);
    PX_CHECK_STR(buf, "posted");
    PX_WAIT_UNTIL(atomic_load(&send_shuts) == 1, 5000);
    PX_CHECK_EQ(atomic_load(&send_shuts), 1);
    PX_CHECK(!px_handle_closed(h));
    close(fd);
    PX_WAIT_UNTIL(atomic_load(&closes) == 1, 5000);
    PX_CHECK_EQ(atomic_load(&closes), 1);
    PX_CHECK(px_handle_closed(h));
    PX_CHECK_EQ(px_handle_shutdown_send(h), 0); /* gone: nothing left to shut */
    px_handle_release(h);
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = &handler, .sock_flags = PX_SOCK_NODELAY, .listen_fd = -1};
    int ports[4];
    px_engine_t *e;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    for (int m = 0; m < 4; m++) {
        ep.udata = (void *)(intptr_t)m;
        ports[m] = px_engine_listen(e, "127.0.0.1", 0, &ep, NULL);
        PX_CHECK_GT(ports[m], 0);
    }
    PX_CHECK_EQ(px_engine_start(e), 0);
    for (int i = 0; i < 3; i++) { /* a few times: the kernel spreads them over both workers */
        answer_after_eof(ports[ANSWER_AFTER_EOF]);
        shut_first(ports[SHUT_FIRST]);
        plain(ports[PLAIN]);
        by_handle(ports[BY_HANDLE]);
    }
    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    for (int i = 0; i < px_engine_worker_count(e); i++)
        PX_CHECK_EQ(PX_STAT_GET(px_worker_stats(px_engine_worker(e, i)), connections), 0);
    printf("%s: ok\n", px_engine_backend_name(e));
    px_engine_destroy(e);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
