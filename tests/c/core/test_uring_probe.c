/*
 * The io_uring probe: masking each feature the engine needs (as a kernel
 * without it would look) makes PX_BACKEND_AUTO serve with epoll and name the
 * feature, and PX_BACKEND_URING fail with -EOPNOTSUPP; without the optional
 * receive cap the engine stays on io_uring; the PX_URING_MASK environment
 * variable masks the same way; a ring the workers cannot get (too many
 * entries) falls back at worker set-up. Every engine echoes once to show it
 * serves. Skipped where this kernel refuses io_uring or lacks a feature.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/engine.h"
#include "px_test.h"
#include "px_test_engine.h"

/* More submission entries than any kernel gives a ring (IORING_MAX_ENTRIES). */
#define TOO_MANY_ENTRIES (1u << 16)

static int echo_data(px_conn_t *c, const char *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return px_conn_send(c, &iov, 1);
}

static const px_handler_t echo = {.on_data = echo_data};

/* One round trip through e, then e is shut down and destroyed. */
static void echo_once(px_engine_t *e)
{
    px_endpoint_config_t ep = {.handler = &echo, .listen_fd = -1};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char buf[8];
    int port = px_test_listen_start(e, &ep);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    size_t got = 0;

    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    PX_CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    PX_CHECK_EQ(send(fd, "probe", 5, 0), 5);
    while (got < 5) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
        PX_CHECK_GT(n, 0);
        got += (size_t)n;
    }
    PX_CHECK_MEM(buf, "probe", 5);
    close(fd);
    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    px_engine_destroy(e);
}

static px_engine_t *create(px_backend_kind_t kind, unsigned mask, unsigned entries, int *rc)
{
    px_engine_config_t cfg;
    px_engine_t *e = NULL;

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    cfg.uring_mask = mask;
    if (entries)
        cfg.ring_entries = entries;
    *rc = px_engine_create(&cfg, NULL, &e);
    return *rc == 0 ? e : NULL;
}

/* Masked, a required feature sends AUTO to epoll and fails URING. */
static void check_required(unsigned f)
{
    const char *name = px_uring_feature_name(f);
    px_engine_t *e;
    int rc;

    PX_CHECK(name != NULL);
    e = create(PX_BACKEND_AUTO, f, 0, &rc);
    PX_CHECK_EQ(rc, 0);
    PX_CHECK_STR(px_engine_backend_name(e), "epoll");
    PX_CHECK_EQ(px_engine_uring_error(e), -EOPNOTSUPP);
    PX_CHECK(px_engine_uring_missing(e) != NULL);
    PX_CHECK_STR(px_engine_uring_missing(e), name);
    PX_CHECK_EQ(px_engine_uring_features(e) & f, 0);
    echo_once(e);
    PX_CHECK(create(PX_BACKEND_URING, f, 0, &rc) == NULL);
    PX_CHECK_EQ(rc, -EOPNOTSUPP);
    printf("without %s: epoll\n", name);
}

int main(void)
{
    static const unsigned required[] = {
        PX_URING_SETUP,
        PX_URING_OPS,
        PX_URING_BUF_RING,
        PX_URING_RECV_MULTISHOT,
        PX_URING_ACCEPT_MULTISHOT,
        PX_URING_CANCEL_FD,
    };
    unsigned features, all = 0;
    px_engine_t *e;
    size_t i;
    int rc;

    setvbuf(stdout, NULL, _IONBF, 0);
    unsetenv("PX_URING_MASK");
    PX_CHECK_EQ(px_uring_mask_parse(NULL), 0);
    PX_CHECK_EQ(px_uring_mask_parse(""), 0);
    PX_CHECK_EQ(px_uring_mask_parse("nonsense,recv_cap"), PX_URING_RECV_CAP);
    PX_CHECK_EQ(px_uring_mask_parse("buf_ring,cancel_fd"), PX_URING_BUF_RING | PX_URING_CANCEL_FD);
    for (i = 0; i < PX_ARRAY_SIZE(required); i++)
        all |= required[i];
    PX_CHECK_EQ(all, PX_URING_REQUIRED);

    e = create(PX_BACKEND_AUTO, 0, 0, &rc);
    PX_CHECK_EQ(rc, 0);
    features = px_engine_uring_features(e);
    if (px_engine_uring_error(e) != 0) {
        const char *missing = px_engine_uring_missing(e);
        rc = px_engine_uring_error(e);
        px_engine_destroy(e);
        if (missing)
            PX_SKIP("this kernel's io_uring lacks %s", missing);
        PX_SKIP("io_uring refused here (%d)", rc);
    }
    PX_CHECK_STR(px_engine_backend_name(e), "io_uring");
    PX_CHECK_EQ(features & PX_URING_REQUIRED, PX_URING_REQUIRED);
    PX_CHECK(px_engine_uring_missing(e) == NULL);
    echo_once(e);
    printf("io_uring: features 0x%x\n", features);

    for (i = 0; i < PX_ARRAY_SIZE(required); i++)
        check_required(required[i]);

    /* The cap is optional: without it, still io_uring. */
    e = create(PX_BACKEND_URING, PX_URING_RECV_CAP, 0, &rc);
    PX_CHECK_EQ(rc, 0);
    PX_CHECK_STR(px_engine_backend_name(e), "io_uring");
    PX_CHECK_EQ(px_engine_uring_features(e) & PX_URING_RECV_CAP, 0);
    PX_CHECK_EQ(px_engine_uring_error(e), 0);
    echo_once(e);
    printf("without %s: io_uring (%s)\n", px_uring_feature_name(PX_URING_RECV_CAP),
           features & PX_URING_RECV_CAP ? "masked" : "this kernel lacks it too");

    /* The environment masks as the config does. */
    PX_CHECK_EQ(setenv("PX_URING_MASK", "accept_multishot", 1), 0);
    e = create(PX_BACKEND_AUTO, 0, 0, &rc);
    PX_CHECK_EQ(rc, 0);
    PX_CHECK_STR(px_engine_backend_name(e), "epoll");
    PX_CHECK_STR(px_engine_uring_missing(e), px_uring_feature_name(PX_URING_ACCEPT_MULTISHOT));
    echo_once(e);
    unsetenv("PX_URING_MASK");
    printf("PX_URING_MASK=accept_multishot: epoll\n");

    /* The probe's ring works, the workers' cannot be had: epoll, not a
     * failure, unless io_uring was asked for. */
    e = create(PX_BACKEND_AUTO, 0, TOO_MANY_ENTRIES, &rc);
    PX_CHECK_EQ(rc, 0);
    PX_CHECK_STR(px_engine_backend_name(e), "epoll");
    PX_CHECK_EQ(px_engine_uring_error(e), -EINVAL);
    PX_CHECK(px_engine_uring_missing(e) == NULL);
    echo_once(e);
    PX_CHECK(create(PX_BACKEND_URING, 0, TOO_MANY_ENTRIES, &rc) == NULL);
    PX_CHECK_EQ(rc, -EINVAL);
    printf("a ring of %u entries: epoll\n", TOO_MANY_ENTRIES);
    return 0;
}
