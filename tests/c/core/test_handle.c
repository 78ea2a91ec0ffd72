/*
 * Connection handles (px/handle.h) on each backend, with two workers: sends
 * from threads that do not own the connection arrive complete and, per
 * thread, in order; a close from another thread comes after what was posted
 * before it; after the close sends fail and close is a no-op; a connection
 * freed (reset by its peer, aborted by another thread, or at shutdown) while
 * other threads keep posting costs neither a crash nor a leak; a peer that
 * does not read makes sends fail with -EAGAIN until it reads again; a second
 * low-water watch fires the one it replaces (whose owner holds a reference
 * for it), and both fire once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "px/engine.h"
#include "px/handle.h"
#include "px_test.h"
#include "px_test_engine.h"

#define SENDERS 3
#define LINES 2000 /* per sender */
#define HIGH_WATER (64 * 1024)

static _Atomic(px_handle_t *) opened;
static _Atomic int closes;

static int on_open(px_conn_t *c)
{
    px_handle_t *h = px_conn_handle(c);

    PX_CHECK(h != NULL);
    PX_CHECK(px_handle_worker(h) == px_conn_worker(c));
    PX_CHECK_EQ(px_handle_id(h), px_conn_id(c));
    atomic_store(&opened, h);
    return 0;
}

static void on_close(px_conn_t *c, int err)
{
    (void)c;
    (void)err;
    atomic_fetch_add(&closes, 1);
}

static const px_handler_t handler = {.on_open = on_open, .on_close = on_close};

/* Connect and wait for the server's handle of the new connection. */
static px_handle_t *open_conn(int port, int *fd)
{
    px_handle_t *h;

    atomic_store(&opened, NULL);
    *fd = px_test_connect(port);
    PX_WAIT_UNTIL(atomic_load(&opened) != NULL, 10000);
    h = atomic_load(&opened);
    PX_CHECK(h != NULL);
    return h;
}

static int send_str(px_handle_t *h, const char *s, bool force)
{
    struct iovec iov[2] = {{(void *)s, 3}, {(void *)(s + 3), strlen(s) - 3}};
    return px_handle_send(h, iov, 2, force);
}

typedef struct sender {
    pthread_t thread;
    px_handle_t *h;
    int index;
    int refused; /* -EAGAIN answers */
    int last_rc; /* what ended a sender that runs until refused */
} sender_t;

/* LINES numbered lines, retried while the high-water mark refuses them. */
static void *send_lines(void *arg)
{
    sender_t *s = arg;
    char line[32];
    int i, rc;

    for (i = 0; i < LINES; i++) {
        snprintf(line, sizeof(line), "%d %06d\n", s->index, i);
        while ((rc = send_str(s->h, line, false)) == -EAGAIN) {
            s->refused++;
            usleep(200);
        }
        PX_CHECK_EQ(rc, 0);
    }
    return NULL;
}

/* Until the connection is gone: the answer that ended it in last_rc. */
static void *send_until_refused(void *arg)
{
    sender_t *s = arg;
    char chunk[1024];
    int rc;

    memset(chunk, 'x', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = 0;
    while ((rc = send_str(s->h, chunk, false)) == 0 || rc == -EAGAIN)
        if (rc == -EAGAIN)
            usleep(100);
    s->last_rc = rc;
    return NULL;
}

/* A px_handle_run call: where it ran and what it found. */
typedef struct probe {
    px_handle_t *h;
    _Atomic int ran;
    bool on_owner, found;
    size_t unsent;
} probe_t;

static void probe_fn(px_conn_t *c, void *arg)
{
    probe_t *p = arg;

    p->on_owner = px_worker_current() == px_handle_worker(p->h);
    p->found = c != NULL && px_conn_id(c) == px_handle_id(p->h);
    p->unsent = c ? px_conn_unsent(c) : 0;
    atomic_store(&p->ran, 1);
}

static void noop_fn(px_conn_t *c, void *arg)
{
    (void)c;
    (void)arg;
}

/* Every line of every sender, each sender's in order, then the end. */
static void check_ordered_lines(int fd)
{
    int next[SENDERS] = {0}, total = 0;
    char buf[4096], pending[64];
    size_t plen = 0;
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            int who, seq;
            PX_CHECK_LT(plen, sizeof(pending) - 1);
            pending[plen++] = buf[i];
            if (buf[i] != '\n')
                continue;
            pending[plen] = 0;
            PX_CHECK_EQ(sscanf(pending, "%d %d", &who, &seq), 2);
            PX_CHECK(who >= 0 && who < SENDERS);
            PX_CHECK_EQ(seq, next[who]);
            next[who]++;
            total++;
            plen = 0;
        }
    }
    PX_CHECK_EQ(n, 0); /* the close came after every line */
    PX_CHECK_EQ(total, SENDERS * LINES);
}

static void ordered_sends_then_close(int port)
{
    sender_t s[SENDERS];
    px_handle_t *h;
    int fd, i;

    h = open_conn(port, &fd);
    for (i = 0; i < SENDERS; i++) {
        s[i] = (sender_t){.h = h, .index = i};
        PX_CHECK_EQ(pthread_create(&s[i].thread, NULL, send_lines, &s[i]), 0);
    }
    for (i = 0; i < SENDERS; i++)
        PX_CHECK_EQ(pthread_join(s[i].thread, NULL), 0);
    {
        probe_t p = {.h = h};
        PX_CHECK_EQ(px_handle_run(h, probe_fn, &p), 0);
        PX_WAIT_UNTIL(atomic_load(&p.ran), 10000);
        PX_CHECK(atomic_load(&p.ran) && p.on_owner && p.found);
    }
    PX_CHECK_EQ(px_handle_close(h), 0);
    /* Closed from here on, before the worker even ran the close. */
    PX_CHECK(px_handle_closed(h));
    PX_CHECK_EQ(send_str(h, "late\n", false), -ENOTCONN);
    PX_CHECK_EQ(send_str(h, "late\n", true), -ENOTCONN);
    PX_CHECK_EQ(px_handle_close(h), 0);
    check_ordered_lines(fd);
    close(fd);
    PX_WAIT_UNTIL(atomic_load(&closes) == 1, 10000);
    PX_CHECK_EQ(atomic_load(&closes), 1);
    /* on_close runs just before the connection is freed, which is when the
     * handle learns it is gone: wait for that (a call run meanwhile finds no
     * connection, hence the no-op). */
    PX_WAIT_UNTIL(px_handle_run(h, noop_fn, NULL) == -ENOTCONN, 10000);
    /* Gone: still answered, from the handle alone. */
    PX_CHECK_EQ(px_handle_queued(h), 0);
    PX_CHECK(!px_handle_pending(h));
    PX_CHECK_EQ(px_handle_close(h), 0);
    PX_CHECK_EQ(px_handle_abort(h), 0);
    PX_CHECK_EQ(px_handle_pause(h), -ENOTCONN);
    PX_CHECK_EQ(px_handle_resume(h), -ENOTCONN);
    PX_CHECK_EQ(send_str(h, "late\n", true), -ENOTCONN);
    PX_CHECK_EQ(px_handle_run(h, probe_fn, NULL), -ENOTCONN);
    px_handle_release(h);
}

/* Two threads post while the connection goes away under them: reset by the
 * peer, or aborted by a third thread. */
static void freed_while_posting(int port, bool by_peer)
{
    sender_t s[2];
    px_handle_t *h;
    int fd, i, before = atomic_load(&closes);

    h = open_conn(port, &fd);
    for (i = 0; i < 2; i++) {
        s[i] = (sender_t){.h = h, .index = i};
        PX_CHECK_EQ(pthread_create(&s[i].thread, NULL, send_until_refused, &s[i]), 0);
    }
    usleep(20 * 1000);
    if (by_peer) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        PX_CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        close(fd); /* a reset: the server's receive fails */
    } else {
        PX_CHECK_EQ(px_handle_abort(h), 0);
    }
    for (i = 0; i < 2; i++) {
        PX_CHECK_EQ(pthread_join(s[i].thread, NULL), 0);
        PX_CHECK_EQ(s[i].last_rc, -ENOTCONN);
    }
    if (!by_peer)
        close(fd);
    PX_WAIT_UNTIL(atomic_load(&closes) == before + 1, 10000);
    PX_CHECK_EQ(atomic_load(&closes), before + 1);
    px_handle_release(h);
}

/* A peer that does not read: sends are refused once the level passes the
 * mark, and taken again once the peer has read. */
static void backpressure(int port)
{
    char chunk[16 * 1024];
    struct iovec iov = {chunk, sizeof(chunk)};
    px_handle_t *h;
    size_t taken = 0, got = 0;
    int fd, rc, small = 4096;
    uint64_t end = px_test_now_ms() + 20000;

    memset(chunk, 'b', sizeof(chunk));
    h = open_conn(port, &fd);
    PX_CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    while ((rc = px_handle_send(h, &iov, 1, false)) == 0 && px_test_now_ms() < end)
        taken += sizeof(chunk);
    /* Refused over the mark (the level may fall again at once: the worker
     * keeps writing while the kernel takes bytes). */
    PX_CHECK_EQ(rc, -EAGAIN);
    PX_CHECK_LT(taken, 64u << 20);
    /* A forced send is taken all the same. */
    PX_CHECK_EQ(px_handle_send(h, &iov, 1, true), 0);
    taken += sizeof(chunk);
    while (got < taken) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR)
            continue; /* the engine's threads signal each other */
        if (n <= 0)
            PX_FAIL_("recv: %zd (%s) after %zu of %zu bytes", n, strerror(errno), got, taken);
        got += (size_t)n;
    }
    PX_WAIT_UNTIL(px_handle_queued(h) <= HIGH_WATER, 10000);
    PX_CHECK_EQ(px_handle_send(h, &iov, 1, false), 0);
    PX_CHECK_EQ(px_handle_close(h), 0);
    close(fd);
    px_handle_release(h);
}

static void count_watch(px_handle_t *h, void *arg)
{
    (void)h;
    atomic_fetch_add((_Atomic int *)arg, 1);
}

/* Two watches armed over the mark, one after the other (two streamed
 * responses on one kept-alive connection): the first is not lost (its owner
 * took a reference for it); each fires once. */
static void second_watch(int port)
{
    char chunk[16 * 1024];
    struct iovec iov = {chunk, sizeof(chunk)};
    _Atomic int first = 0, second = 0;
    px_handle_t *h;
    int fd, rc, small = 4096;
    uint64_t end = px_test_now_ms() + 20000;

    memset(chunk, 'w', sizeof(chunk));
    h = open_conn(port, &fd);
    PX_CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    while ((rc = px_handle_send(h, &iov, 1, false)) == 0 && px_test_now_ms() < end)
        ;
    PX_CHECK_EQ(rc, -EAGAIN);
    /* force the level well over low water so that neither fires at once */
    for (int i = 0; i < 8; i++)
        PX_CHECK_EQ(px_handle_send(h, &iov, 1, true), 0);
    PX_CHECK_EQ(px_handle_watch_low(h, count_watch, &first), 0);
    PX_CHECK_EQ(px_handle_watch_low(h, count_watch, &second), 0);
    PX_CHECK_EQ(atomic_load(&first), 1); /* replaced: fired (early) then */
    PX_CHECK_EQ(atomic_load(&second), 0);
    for (;;) { /* read until the level falls: the second fires */
        ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (atomic_load(&second) != 0)
            break;
        if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN)))
            PX_FAIL_("recv: %zd (%s)", n, strerror(errno));
        if (n < 0)
            usleep(1000);
        if (px_test_now_ms() > end + 20000)
            PX_FAIL_("the second watch never fired");
    }
    usleep(10 * 1000);
    PX_CHECK_EQ(atomic_load(&first), 1);
    PX_CHECK_EQ(atomic_load(&second), 1);
    PX_CHECK_EQ(px_handle_close(h), 0);
    close(fd);
    px_handle_release(h);
}

/* The engine shuts down while a thread posts: what never runs is dropped. */
static void shutdown_while_posting(px_engine_t *e, int port)
{
    sender_t s = {.index = 0};
    int fd;

    s.h = open_conn(port, &fd);
    PX_CHECK_EQ(pthread_create(&s.thread, NULL, send_until_refused, &s), 0);
    usleep(10 * 1000);
    px_engine_shutdown(e, 200);
    PX_CHECK_EQ(pthread_join(s.thread, NULL), 0);
    PX_CHECK(s.last_rc == -ENOTCONN || s.last_rc == -ESHUTDOWN);
    px_engine_join(e);
    close(fd);
    px_engine_destroy(e);
    /* The handle outlives the engine: it answers without touching it. */
    PX_CHECK(px_handle_closed(s.h));
    PX_CHECK_EQ(send_str(s.h, "late\n", true), -ENOTCONN);
    px_handle_release(s.h);
}

static void run(px_backend_kind_t kind)
{
    px_engine_config_t cfg;
    px_endpoint_config_t ep = {.handler = &handler, .listen_fd = -1};
    px_engine_t *e;
    int port;

    px_engine_config_default(&cfg);
    cfg.workers = 2;
    cfg.backend = kind;
    cfg.send_high_water = HIGH_WATER;
    cfg.send_low_water = HIGH_WATER / 4;
    if (!px_test_engine_create(&cfg, NULL, &e))
        return;
    port = px_test_listen_start(e, &ep);
    atomic_store(&closes, 0);
    ordered_sends_then_close(port);
    freed_while_posting(port, true);
    freed_while_posting(port, false);
    backpressure(port);
    second_watch(port);
    printf("%s: ok\n", px_engine_backend_name(e));
    shutdown_while_posting(e, port);
}

int main(void)
{
    run(PX_BACKEND_URING);
    run(PX_BACKEND_EPOLL);
    return 0;
}
