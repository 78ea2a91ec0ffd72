/*
 * epoll backend, for kernels and sandboxes that refuse io_uring. Readiness is
 * turned into the same completions the io_uring backend delivers: receives are
 * read into one scratch buffer per thread (idle connections hold none), sends
 * are tried at once and completed on the next wait, EPOLLOUT finishes the rest.
 *
 * Hand-off: the buffer is the thread's, not the worker's, because a handler
 * that blocks still reads its data while another thread receives into its
 * own. Events are level-triggered, so a batch whose thread was displaced drops
 * its rest (those connections may be gone by then) and the next wait reports
 * them again.
 */
#include <poll.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_EVENTS 256
#define ACCEPTS_PER_TURN 64

typedef struct epoll_state {
    int epfd;
    px_conn_t *ready; /* send results to deliver on the next wait */
} epoll_state_t;

static epoll_state_t *state_of(px_worker_t *w)
{
    return w->bs;
}

static int epoll_init(px_worker_t *w)
{
    epoll_state_t *s = calloc(1, sizeof(*s));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = PX_TAGGED(w, PX_TAG_WAKE)};
    int rc;

    if (s == NULL)
        return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        rc = -errno;
        goto fail;
    }
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0) {
        rc = -errno;
        goto fail;
    }
    w->bs = s;
    return 0;
fail:
    if (s->epfd >= 0)
        close(s->epfd);
    free(s);
    return rc;
}

static void epoll_destroy(px_worker_t *w)
{
    epoll_state_t *s = state_of(w);

    if (s == NULL)
        return;
    close(s->epfd);
    free(s);
    w->bs = NULL;
}

static int epoll_listen(px_worker_t *w, px_listener_t *l)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = PX_TAGGED(l, PX_TAG_ACCEPT)};

    if (epoll_ctl(state_of(w)->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0)
        return -errno;
    l->armed = true;
    return 0;
}

static void epoll_unlisten(px_worker_t *w, px_listener_t *l)
{
    if (l->fd < 0)
        return;
    if (l->armed)
        epoll_ctl(state_of(w)->epfd, EPOLL_CTL_DEL, l->fd, NULL);
    l->armed = false;
    close(l->fd);
    px__worker_listener_closed(w, l);
}

static int epoll_open(px_worker_t *w, px_conn_t *c)
{
    struct epoll_event ev = {.events = EPOLLET, .data.u64 = PX_TAGGED(c, PX_TAG_RECV)};

    if (epoll_ctl(state_of(w)->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return -errno;
    c->epoll_events = EPOLLET;
    return 0;
}

/* Interest follows the armed operations; a pending send waits for EPOLLOUT
 * only when it is not already waiting on the ready list. */
static void update_interest(px_worker_t *w, px_conn_t *c)
{
    uint32_t want = 0;
    struct epoll_event ev;

    if (c->ops & PX_OP_RECV)
        want |= EPOLLIN | EPOLLRDHUP;
    if ((c->ops & PX_OP_POLL) || ((c->ops & PX_OP_SEND) && !(c->ready_ops & PX_OP_SEND)))
        want |= EPOLLOUT;
    if (want == 0)
        want = EPOLLET; /* a hang-up while nothing is armed wakes once, not every turn */
    if (want == c->epoll_events)
        return;
    ev.events = want;
    ev.data.u64 = PX_TAGGED(c, PX_TAG_RECV);
    if (epoll_ctl(state_of(w)->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->epoll_events = want;
}

static int epoll_recv(px_worker_t *w, px_conn_t *c)
{
    c->ops |= PX_OP_RECV;
    update_interest(w, c);
    return 0;
}

static void epoll_recv_stop(px_worker_t *w, px_conn_t *c)
{
    c->ops &= ~PX_OP_RECV;
    update_interest(w, c);
}

static void push_ready(epoll_state_t *s, px_conn_t *c, int res)
{
    c->send_res = res;
    c->ready_ops |= PX_OP_SEND;
    c->ready_next = s->ready;
    s->ready = c;
}

/* Returns true when the send finished (done or failed), false on EAGAIN. */
static bool try_send(px_conn_t *c, int *res)
{
    ssize_t n = sendmsg(c->fd, &c->sendop->msg, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n >= 0) {
        *res = (int)n;
        return true;
    }
    if (errno == EAGAIN || errno == EINTR)
        return false;
    *res = -errno;
    return true;
}

static int epoll_send(px_worker_t *w, px_conn_t *c)
{
    int res;

    c->ops |= PX_OP_SEND;
    if (try_send(c, &res))
        push_ready(state_of(w), c, res);
    update_interest(w, c);
    return 0;
}

static int epoll_poll_out(px_worker_t *w, px_conn_t *c)
{
    c->ops |= PX_OP_POLL;
    update_interest(w, c);
    return 0;
}

static void epoll_cancel(px_worker_t *w, px_conn_t *c)
{
    epoll_ctl(state_of(w)->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->epoll_events = 0;
    /* A send result on the ready list still holds the struct until delivered. */
    c->ops &= (c->ready_ops & PX_OP_SEND) ? PX_OP_SEND : 0;
}

static void do_accepts(px_listener_t *l)
{
    int i;

    for (i = 0; i < ACCEPTS_PER_TURN && l->fd >= 0 && !l->closed; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;

            if (err == ECONNABORTED)
                continue;
            if (err == EAGAIN || err == EINTR)
                break;
            /* Level-triggered: the waiting connection would wake every turn
             * while the process is out of descriptors. Unwatched until the
             * pause ends. */
            if (px__listener_backoff(l, -err)) {
                epoll_ctl(state_of(l->w)->epfd, EPOLL_CTL_DEL, l->fd, NULL);
                l->armed = false;
            } else {
                PX_STAT_ADD(&l->w->stats, errors, 1);
            }
            break;
        }
        px__conn_accepted(l, fd);
    }
}

/* Read up to the turn budget; level-triggered epoll reports the rest later. */
static void do_reads(px_worker_t *w, px_conn_t *c)
{
    size_t budget = w->e->cfg.turn_budget, got = 0;
    char *buf = px__thread_scratch();

    if (buf == NULL) {
        PX_STAT_ADD(&w->stats, errors, 1);
        return; /* no memory now: level-triggered, so tried again */
    }
    while ((c->ops & PX_OP_RECV) && !(c->state & PX_CONN_DEAD)) {
        ssize_t n = recv(c->fd, buf, PX_SCRATCH_SIZE, 0);

        if (n > 0) {
            px__conn_received(c, buf, (int)n, true);
            got += (size_t)n;
            if ((size_t)n < PX_SCRATCH_SIZE || got >= budget)
                break;
        } else if (n == 0) {
            px__conn_received(c, NULL, 0, false);
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            break;
        } else {
            px__conn_received(c, NULL, -errno, false);
            break;
        }
    }
}

static int socket_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

/* Nothing armed, yet the socket hung up. A hang-up without an error is both
 * ends shut in order (our FIN, then the peer's while reading was paused): the
 * unread input and the end wait for the next armed read, and the descriptor
 * stays quiet meanwhile (edge-triggered while nothing is wanted). Only a
 * failure is reported, once. */
static void hangup_unarmed(px_conn_t *c, uint32_t events)
{
    int err = socket_error(c->fd);

    if (err == 0 && !(events & EPOLLERR))
        return;
    px__conn_received(c, NULL, err != 0 ? -err : -ECONNRESET, false);
}

static void on_conn_event(px_worker_t *w, px_conn_t *c, uint32_t events)
{
    c->busy++;
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        if ((c->ops & PX_OP_SEND) && !(c->ready_ops & PX_OP_SEND)) {
            int res;
            if (try_send(c, &res))
                px__conn_sent(c, res);
        }
        if (c->ops & PX_OP_POLL)
            px__conn_writable(c, 0);
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (c->ops & PX_OP_RECV)
            do_reads(w, c);
        else if ((events & (EPOLLHUP | EPOLLERR)) && !(c->state & PX_CONN_DEAD) &&
                 !(c->ops & (PX_OP_SEND | PX_OP_POLL)))
            hangup_unarmed(c, events);
    }
    if (!(c->state & PX_CONN_DEAD))
        update_interest(w, c);
    c->busy--;
    px__conn_maybe_free(c);
}

/* One at a time from the shared list, for the same reason as events. Nothing
 * delivered here starts a send, so the list does not grow meanwhile. */
static void deliver_ready(px_worker_t *w, epoll_state_t *s)
{
    px_conn_t *c;

    while ((c = s->ready) != NULL) {
        s->ready = c->ready_next;
        c->ready_next = NULL;
        c->ready_ops &= ~PX_OP_SEND;
        c->busy++;
        px__conn_sent(c, c->send_res);
        if (!(c->state & PX_CONN_DEAD))
            update_interest(w, c);
        c->busy--;
        px__conn_maybe_free(c);
    }
}

/* epoll_pwait2 (Linux 5.11) sleeps to the nanosecond; where a seccomp filter or
 * an old kernel refuses it, epoll_wait rounds up to whole milliseconds. */
static _Atomic bool pwait2_refused;

static int wait_events(int epfd, struct epoll_event *events, uint64_t timeout_ns)
{
    int n;

    if (timeout_ns > 0 && !atomic_load_explicit(&pwait2_refused, memory_order_relaxed)) {
        struct timespec ts = {
            .tv_sec = (time_t)(timeout_ns / PX_NS_PER_SEC),
            .tv_nsec = (long)(timeout_ns % PX_NS_PER_SEC),
        };
        n = epoll_pwait2(epfd, events, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || (errno != ENOSYS && errno != EPERM))
            return n;
        atomic_store_explicit(&pwait2_refused, true, memory_order_relaxed);
    }
    return epoll_wait(
        epfd, events, MAX_EVENTS,
        (int)PX_MIN((timeout_ns + PX_NS_PER_MS - 1) / PX_NS_PER_MS, (uint64_t)INT_MAX));
}

static int epoll_wait_turn(px_worker_t *w, uint64_t timeout_ns)
{
    epoll_state_t *s = state_of(w);
    struct epoll_event events[MAX_EVENTS];
    uint64_t takeovers;
    int n, i;

    /* Deliver before waiting: a connection freed now cannot be in this batch. */
    if (s->ready) {
        deliver_ready(w, s);
        timeout_ns = 0;
    }
    n = wait_events(s->epfd, events, timeout_ns);
    /* Counted before the tick: a timer's callback that blocks there may be
     * taken over, and the thread that ran w meanwhile may have freed
     * connections of this batch, which lives on this stack. */
    takeovers = w->takeovers;
    /* A handler, or a timer firing in the tick, may close another connection
     * of this batch: keep the structs until the batch is done. */
    w->defer_free = true;
    px__worker_tick(w);
    for (i = 0; i < n && w->takeovers == takeovers; i++) {
        uint64_t data = events[i].data.u64;
        void *p = PX_UNTAG(data);

        switch (PX_TAG_OF(data)) {
        case PX_TAG_ACCEPT: do_accepts(p); break;
        case PX_TAG_WAKE: px__wake_ack(w->wake_fd, &w->wake_pending); break;
        case PX_TAG_RECV:
            if (!(((px_conn_t *)p)->state & PX_CONN_FREED))
                on_conn_event(w, p, events[i].events);
            break;
        default: break;
        }
    }
    w->defer_free = false;
    px__worker_free_deferred(w);
    return n < 0 ? 0 : n;
}

static bool epoll_local_work(px_worker_t *w)
{
    return state_of(w)->ready != NULL;
}

/* From another thread: an epoll instance is readable while events wait. */
static bool epoll_kernel_work(px_worker_t *w)
{
    struct pollfd p = {.fd = state_of(w)->epfd, .events = POLLIN};

    return poll(&p, 1, 0) > 0;
}

const px_backend_t px__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .destroy = epoll_destroy,
    .listen = epoll_listen,
    .unlisten = epoll_unlisten,
    .open = epoll_open,
    .recv = epoll_recv,
    .recv_stop = epoll_recv_stop,
    .send = epoll_send,
    .poll_out = epoll_poll_out,
    .cancel = epoll_cancel,
    .wait = epoll_wait_turn,
    .local_work = epoll_local_work,
    .kernel_work = epoll_kernel_work,
};
