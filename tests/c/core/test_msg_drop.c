/*
 * Messages the engine will never run are released through their own drop
 * callback, on each backend: those accepted by a worker that never started,
 * those posted to a worker after its loop ended, and those left on the main
 * queue (px_engine_main_discard, or px_engine_destroy itself). A message
 * without a drop is left alone, and no fn runs for a dropped message. The
 * engine's own requests to connect drop themselves the same way (the
 * sanitizer builds see any leak).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "px/engine.h"
#include "px_test.h"
#include "px_test_engine.h"

static _Atomic int runs, drops;

static void counted_fn(px_worker_t *w, px_msg_t *m)
{
    (void)w;
    atomic_fetch_add(&runs, 1);
    free(m);
}

static void counted_drop(px_msg_t *m)
{
    atomic_fetch_add(&drops, 1);
    free(m);
}

static px_msg_t *new_msg(void)
{
    px_msg_t *m = malloc(sizeof(*m));

    PX_CHECK(m != NULL);
    px_msg_init(m, counted_fn, counted_drop);
    return m;
}

static const px_handler_t nothing = {0};

static px_engine_t *create(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_engine_t *e;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    return px_test_engine_create(&cfg, NULL, &e) ? e : NULL;
}

static void run(px_backend_kind_t kind)
{
    px_endpoint_config_t ep = {.handler = &nothing, .listen_fd = -1};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9)};
    px_msg_t embedded;
    px_engine_t *e;
    int i;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);

    /* Never started: everything queued is dropped by px_engine_destroy. */
    if ((e = create(kind)) == NULL)
        return;
    atomic_store(&runs, 0);
    atomic_store(&drops, 0);
    for (i = 0; i < 5; i++)
        PX_CHECK_EQ(px_worker_submit(px_engine_worker(e, i % 2), new_msg()), 0);
    for (i = 0; i < 3; i++)
        px_engine_post_main(e, new_msg());
    px_msg_init(&embedded, counted_fn, NULL); /* no drop: left alone */
    px_worker_post(px_engine_worker(e, 0), &embedded);
    PX_CHECK_EQ(px_engine_connect(e, "127.0.0.1", 9, &ep), 0);
    PX_CHECK_EQ(px_worker_connect(px_engine_worker(e, 1), (struct sockaddr *)&sa, sizeof(sa), &ep),
                0);
    px_engine_destroy(e);
    PX_CHECK_EQ(atomic_load(&drops), 8);
    PX_CHECK_EQ(atomic_load(&runs), 0);

    /* Started: the main queue is discarded on demand; what is posted to a
     * worker after its loop stays until the engine is destroyed. */
    if ((e = create(kind)) == NULL)
        return;
    atomic_store(&drops, 0);
    PX_CHECK_EQ(px_engine_start(e), 0);
    px_engine_post_main(e, new_msg());
    px_engine_post_main(e, new_msg());
    px_engine_main_discard(e);
    PX_CHECK_EQ(atomic_load(&drops), 2);
    PX_CHECK(px_engine_main_pop(e) == NULL);
    px_engine_shutdown(e, 0);
    PX_CHECK_EQ(px_engine_join(e), 0);
    PX_CHECK(px_engine_finished(e));
    px_worker_post(px_engine_worker(e, 0), new_msg());
    PX_CHECK_EQ(px_worker_submit(px_engine_worker(e, 1), &embedded), -ESHUTDOWN);
    PX_CHECK_EQ(px_worker_connect(px_engine_worker(e, 1), (struct sockaddr *)&sa, sizeof(sa), &ep),
                0);
    px_engine_post_main(e, new_msg());
    px_engine_destroy(e);
    PX_CHECK_EQ(atomic_load(&drops), 4);
    PX_CHECK_EQ(atomic_load(&runs), 0);
    printf("%s: ok\n", kind == PX_BACKEND_URING ? "io_uring" : "epoll");
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
