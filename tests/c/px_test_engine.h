/*
 * Engine set-up shared by the C tests that run on both backends.
 */
#ifndef PX_TEST_ENGINE_H
#define PX_TEST_ENGINE_H

#include <stdbool.h>

#include "px/engine.h"
#include "px_test.h"

/* px_engine_create for a test: false (with a note) when cfg asks for io_uring
 * and this system refuses it, so the test goes on with epoll alone; any other
 * failure fails the test. */
static inline bool px_test_engine_create(const px_engine_config_t *cfg,
                                         const px_thread_hooks_t *hooks, px_engine_t **e)
{
    int rc = px_engine_create(cfg, hooks, e);

    if (rc < 0 && cfg->backend == PX_BACKEND_URING) {
        fprintf(stderr, "io_uring unavailable (%d): only epoll tested\n", rc);
        return false;
    }
    PX_CHECK_EQ(rc, 0);
    return true;
}

/* Listen with ep on a free loopback port and start e: the port. */
static inline int px_test_listen_start(px_engine_t *e, const px_endpoint_config_t *ep)
{
    int port = px_engine_listen(e, "127.0.0.1", 0, ep, NULL);

    PX_CHECK_GT(port, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);
    return port;
}

/* One worker on backend kind serving handler on a free loopback port,
 * started: the port, or 0 (with a note) when kind is io_uring and this
 * system refuses it. */
static inline int px_test_one_worker(px_backend_kind_t kind, const px_handler_t *handler,
                                     px_engine_t **e)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = handler, .sock_flags = PX_SOCK_NODELAY, .listen_fd = -1};

    px_engine_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = kind;
    if (!px_test_engine_create(&cfg, NULL, e))
        return 0;
    return px_test_listen_start(*e, &ep);
}

/* Shut e down, join its threads, check that it finished, free it. */
static inline void px_test_engine_end(px_engine_t *e)
{
    px_engine_shutdown(e, 1000);
    px_engine_join(e);
    PX_CHECK(px_engine_finished(e));
    px_engine_destroy(e);
}

#endif
