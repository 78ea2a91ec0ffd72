/*
 * Inherited listening sockets (px/listen_fds.h): a listen given one of an
 * adopted group serves every socket of it and binds nothing (fewer sockets
 * than workers: shared; more: every one still served), and neither a stop nor
 * a hand-over (px_engine_drain) shuts the sockets down: whoever else holds
 * them accepts on. Both backends.
 */
#include <sys/stat.h>

#include "px/listen_fds.h"
#include "px_test_engine.h"

static int on_data(px_conn_t *c, const char *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};

    return px_conn_send(c, &iov, 1) < 0 ? -EIO : 0;
}

static const px_handler_t handler = {.on_data = on_data};

static ino_t inode(int fd)
{
    struct stat st;

    PX_CHECK_EQ(fstat(fd, &st), 0);
    return st.st_ino;
}

/* A listening loopback socket on port (0: a free one), SO_REUSEPORT if asked. */
static int listener(int port, bool reuse)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    PX_CHECK_GE(fd, 0);
    if (reuse)
        PX_CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    PX_CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    PX_CHECK_EQ(listen(fd, 64), 0);
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    PX_CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

static void echo(int port)
{
    char buf[8];
    int fd = px_test_connect(port);

    px_test_send_str(fd, "ping\n");
    PX_CHECK_EQ(px_test_read_until(fd, buf, sizeof(buf), "\n", 1), 5);
    close(fd);
}

/* n sockets handed to an engine of workers workers. */
static void run(px_backend_kind_t kind, int n, int workers, bool drain)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = &handler, .listen_fd = -1};
    px_engine_t *e;
    int socks[4], fds[8], port, i, j, got, c;

    px_engine_config_default(&cfg);
    cfg.workers = workers;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    socks[0] = listener(0, n > 1);
    port = port_of(socks[0]);
    for (i = 1; i < n; i++)
        socks[i] = listener(port, true);
    PX_CHECK_EQ(px_listen_fds_adopt(socks, n), 0);
    ep.listen_fd = dup(socks[n - 1]); /* any of the group stands for it */
    PX_CHECK_EQ(px_engine_listen(e, "127.0.0.1", port, &ep, NULL), port);
    got = px_engine_listen_fds(e, fds, 8);
    PX_CHECK_EQ(got, n > workers ? n : workers);
    /* Nothing bound: every listener is one of the handed sockets, and each of
     * those is served. */
    for (i = 0; i < got; i++) {
        bool known = false;
        for (j = 0; j < n; j++)
            known = known || inode(fds[i]) == inode(socks[j]);
        PX_CHECK(known);
    }
    for (j = 0; j < n; j++) {
        bool served = false;
        for (i = 0; i < got; i++)
            served = served || inode(fds[i]) == inode(socks[j]);
        PX_CHECK(served);
    }
    PX_CHECK_EQ(px_engine_start(e), 0);
    for (i = 0; i < 8; i++)
        echo(port);
    if (drain)
        px_engine_drain(e, 100, 1000);
    else
        px_engine_shutdown(e, 1000);
    px_engine_join(e);
    /* The sockets still listen: a client connects and the holder accepts. */
    c = px_test_connect(port);
    for (i = 0, got = -1; got < 0 && i < 200; i++) {
        for (j = 0; j < n && got < 0; j++)
            got = accept4(socks[j], NULL, NULL, SOCK_NONBLOCK);
        if (got < 0)
            usleep(5000);
    }
    PX_CHECK_GE(got, 0);
    close(got);
    close(c);
    printf("%s: %d socket(s), %d workers, %s: ok\n", px_engine_backend_name(e), n, workers,
           drain ? "drain" : "shutdown");
    px_engine_destroy(e);
    for (i = 0; i < n; i++)
        close(socks[i]);
}

int main(void)
{
    for (int k = 0; k < 2; k++) {
        px_backend_kind_t kind = k == 0 ? PX_BACKEND_URING : PX_BACKEND_EPOLL;
        run(kind, 1, 3, false); /* a service manager's one socket, shared */
        run(kind, 4, 2, true);  /* an old process's four, two workers */
        run(kind, 2, 2, true);
    }
    return 0;
}
