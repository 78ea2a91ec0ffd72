/* px_worker_waiting on each backend: released code that is about to wait for
 * work of its own worker (here a condition that another connection's handler
 * on the same worker signals) hands the worker to a parked spare at once, in
 * the call (the handoffs stat counts it before the wait), rather than after
 * the supervisor's delay for futex waits (or the release did, when the worker
 * was found blocking lately); the other connection is then served
 * and the wait ends. It does nothing for a worker the caller owns, and at most
 * once per release. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "px/engine.h"
#include "px_test.h"
#include "px_test_engine.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool go;
static _Atomic int waiting;       /* the WAIT handler is about to wait */
static _Atomic int taken_at_once; /* handoffs grew in the px_worker_waiting call */

static uint64_t handoffs(px_worker_t *w)
{
    return PX_STAT_GET(px_worker_stats(w), handoffs);
}

static int on_data(px_conn_t *c, const char *data, size_t len)
{
    px_worker_t *w = px_conn_worker(c);
    struct iovec iov;

    if (len >= 4 && memcmp(data, "WAIT", 4) == 0) {
        bool released;
        uint64_t before;

        PX_CHECK(!px_worker_waiting(w)); /* owned: nothing to hand off */
        before = handoffs(w);
        released = px_worker_release(w);
        PX_CHECK(released);
        /* After a blocked round the worker is eager: the release itself may
         * have handed it off, and then px_worker_waiting has nothing left to
         * do. Either way it is gone before the wait starts. */
        px_worker_waiting(w);
        atomic_store(&taken_at_once, handoffs(w) == before + 1);
        PX_CHECK(!px_worker_waiting(w)); /* gone already */
        atomic_store(&waiting, 1);
        pthread_mutex_lock(&lock);
        while (!go)
            pthread_cond_wait(&cond, &lock);
        go = false;
        pthread_mutex_unlock(&lock);
        px_worker_reacquire(w);
        iov = (struct iovec){(void *)"DONE\n", 5};
        return px_conn_send(c, &iov, 1);
    }
    if (len >= 2 && memcmp(data, "GO", 2) == 0) {
        pthread_mutex_lock(&lock);
        go = true;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&lock);
        iov = (struct iovec){(void *)"WENT\n", 5};
        return px_conn_send(c, &iov, 1);
    }
    return 0;
}

static const px_handler_t handler = {.on_data = on_data};

static void expect_line(int fd, const char *line)
{
    char buf[16];
    size_t n = strlen(line), got = 0;

    while (got < n) {
        ssize_t r = px_test_recv(fd, buf + got, n - got);
        PX_CHECK_GT(r, 0);
        got += (size_t)r;
    }
    PX_CHECK(memcmp(buf, line, n) == 0);
}

static void one_round(int port)
{
    int a = px_test_connect(port), b = px_test_connect(port);

    atomic_store(&waiting, 0);
    atomic_store(&taken_at_once, 0);
    px_test_send_str(a, "WAIT\n");
    while (!atomic_load(&waiting))
        usleep(1000);
    px_test_send_str(b, "GO\n"); /* served while the WAIT handler waits */
    expect_line(b, "WENT\n");
    expect_line(a, "DONE\n");
    close(a);
    close(b);
}

static void run(px_backend_kind_t kind)
{
    px_engine_t *e;
    int port, at_once = 0;

    port = px_test_one_worker(kind, &handler, &e);
    if (port == 0)
        return;
    one_round(port); /* the first may find no parked spare: the supervisor takes it */
    for (int i = 0; i < 5; i++) {
        usleep(10 * 1000); /* the threads of the last round park */
        one_round(port);
        at_once += atomic_load(&taken_at_once);
    }
    /* A spare parks as it hands the worker back: on a loaded machine one
     * may still be on its way, never in most rounds. */
    PX_CHECK_GE(at_once, 3);
    px_test_engine_end(e);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
