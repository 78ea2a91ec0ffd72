/* px_worker_release_again on each backend: an engine call made from released
 * code releases afterwards the way that code's own bracket did. While the
 * worker is eager (a callback was found blocked lately) and work waits
 * (output queued before the release), a plain release hands the worker to a
 * spare at once, and so does the release after an engine call made from it;
 * a brief release (an asyncio step) does not, and neither does the release
 * after an engine call made from it: on a GIL build that hand-off only passed
 * the worker between threads waiting for the interpreter. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "px/engine.h"
#include "px_test.h"
#include "px_test_engine.h"

#define ROUNDS 5

static _Atomic int brief_kept;   /* rounds where no brief release handed off */
static _Atomic int plain_handed; /* rounds where both plain releases handed off */

static uint64_t handoffs(px_worker_t *w)
{
    return PX_STAT_GET(px_worker_stats(w), handoffs);
}

static int send_str(px_conn_t *c, const char *s)
{
    struct iovec iov = {(void *)s, strlen(s)};

    return px_conn_send(c, &iov, 1);
}

/* Queue output (work waiting for the worker), release as told, then make an
 * engine call from the released code and release again; how many hand-offs
 * happened at the releases themselves. */
static uint64_t release_twice(px_conn_t *c, bool brief)
{
    px_worker_t *w = px_conn_worker(c);
    uint64_t before = handoffs(w), at_release, again;

    PX_CHECK_EQ(send_str(c, "."), 0);
    PX_CHECK(brief ? px_worker_release_brief(w) : px_worker_release(w));
    at_release = handoffs(w) - before;
    PX_CHECK(px_worker_reacquire(w)); /* an engine call: back in, out again */
    PX_CHECK_EQ(send_str(c, "."), 0);
    before = handoffs(w);
    PX_CHECK(px_worker_release_again(w));
    again = handoffs(w) - before;
    PX_CHECK(px_worker_reacquire(w));
    return at_release + again * 10;
}

static int on_data(px_conn_t *c, const char *data, size_t len)
{
    px_worker_t *w = px_conn_worker(c);

    if (len >= 5 && memcmp(data, "BLOCK", 5) == 0) {
        /* Output waits, the callback sleeps: the supervisor takes the worker
         * and makes it eager for a second. */
        PX_CHECK_EQ(send_str(c, "."), 0);
        PX_CHECK(px_worker_release(w));
        usleep(50 * 1000);
        PX_CHECK(px_worker_reacquire(w));
    } else if (len >= 5 && memcmp(data, "BRIEF", 5) == 0) {
        atomic_fetch_add(&brief_kept, release_twice(c, true) == 0);
    } else if (len >= 5 && memcmp(data, "PLAIN", 5) == 0) {
        atomic_fetch_add(&plain_handed, release_twice(c, false) == 11);
    } else {
        return 0;
    }
    return send_str(c, "!\n");
}

static const px_handler_t handler = {.on_data = on_data};

static void ask(int fd, const char *what)
{
    char buf[64];
    size_t got = 0;

    px_test_send_str(fd, what);
    while (got == 0 || buf[got - 1] != '\n') {
        ssize_t r = px_test_recv(fd, buf + got, sizeof(buf) - got);
        PX_CHECK_GT(r, 0);
        got += (size_t)r;
    }
}

static void run(px_backend_kind_t kind)
{
    px_engine_t *e;
    int port, fd;

    port = px_test_one_worker(kind, &handler, &e);
    if (port == 0)
        return;
    fd = px_test_connect(port);
    atomic_store(&brief_kept, 0);
    atomic_store(&plain_handed, 0);
    for (int i = 0; i < ROUNDS; i++) {
        ask(fd, "BLOCK\n");
        usleep(10 * 1000); /* the threads of the take park */
        ask(fd, "BRIEF\n");
        usleep(10 * 1000);
        ask(fd, "PLAIN\n");
    }
    /* A brief release never hands off at once: every round. */
    PX_CHECK_EQ(atomic_load(&brief_kept), ROUNDS);
    /* A spare parks as it hands the worker back: on a loaded machine one may
     * still be on its way, never in most rounds. */
    PX_CHECK_GE(atomic_load(&plain_handed), 3);
    close(fd);
    px_test_engine_end(e);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
