/*
 * io_uring backend: multishot accept per listener, multishot receive into a
 * provided-buffer ring (an idle connection holds no buffer), gathered sendmsg,
 * poll for sendfile and connect, one submit per loop turn.
 *
 * Receive buffers and resident memory: the kernel takes buffers from the ring
 * in order and each one returned goes to the back, so every buffer in the ring
 * is written (its first page made resident) in turn, however few receives run
 * at once. The ring therefore lends only a few buffers at first (RING_START)
 * and doubles what it lends when it runs dry; and after a quiet interval the
 * pages of all of them go back to the system (release_idle).
 *
 * Several threads may run a worker's ring, one at a time (hand-off): no
 * SINGLE_ISSUER, completions are consumed one at a time (so a thread that
 * blocks inside a dispatch leaves the rest to the next owner), and nothing of
 * a turn lives on the stack.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "uring.h"

#define CQ_PER_SQ 4 /* completion entries per submission entry */

typedef struct uring_state {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *bufs;
    unsigned nbufs, bufsize, mask;
    unsigned recv_cap; /* bytes a multishot receive may take before it ends; 0: no cap */
    bool wake_armed;
    unsigned char *lent; /* per buffer: in the ring, or its completion not yet seen */
    unsigned nlent;
    bool received;       /* a buffer was filled since the last release_idle call */
    bool resident;       /* ... since the last release: pages to give back */
    bool registered;     /* the ring is registered (it is, but for a failed release) */
    unsigned reading;    /* buffers being delivered (a handler may block on one, handed off) */
    uint64_t grown_turn; /* the loop turn of the last growth */
} uring_state_t;

/* Buffers lent to the ring at start and after a release: enough for this many
 * receives between two loop turns before the ring runs dry (and grows). */
#define RING_START 32u

/* A multishot receive ends after this many buffers and is re-armed: a paused
 * connection then has at most this much read past the pause, whatever the
 * kernel posted before the cancellation took effect. */
#define RECV_BURST_BUFFERS 4

static uring_state_t *state_of(px_worker_t *w)
{
    return w->bs;
}

static struct io_uring_sqe *get_sqe(uring_state_t *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

    if (PX_UNLIKELY(sqe == NULL)) {
        /* The submission queue is full: push it to the kernel and go on. */
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

int px__uring_ring_init(struct io_uring *ring, unsigned entries)
{
    struct io_uring_params p;

    memset(&p, 0, sizeof(p));
    /* CQ larger than SQ: multishot requests post many completions each. No
     * SINGLE_ISSUER (so no DEFER_TASKRUN): another thread may take this ring
     * over while the worker is stuck in a callback.
     *
     * The completions of a request are posted by task work of the thread that
     * submitted it. COOP taskrun spares that thread an interrupt when it is
     * running; when it sleeps (a callback in time.sleep or a blocking read, a
     * parked spare, a thread waiting for its worker back) it is woken for the
     * task work either way, so a hand-off sees those completions at once. Only
     * a thread that spins in user space without a system call posts them late,
     * at its next timer tick. Asking for the interrupt instead cost the
     * one-worker echo benchmark a third of its round trips (median of six
     * paired runs). */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = entries * CQ_PER_SQ;
    return io_uring_queue_init_params(entries, ring, &p);
}

static void arm_wake(px_worker_t *w, uring_state_t *u)
{
    struct io_uring_sqe *sqe = get_sqe(u);

    io_uring_prep_poll_multishot(sqe, w->wake_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, PX_TAGGED(w, PX_TAG_WAKE));
    u->wake_armed = true;
}

static void return_buffer(uring_state_t *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->bufsize, u->bufsize,
                          (unsigned short)bid, u->mask, 0);
    io_uring_buf_ring_advance(u->br, 1);
}

/* Lend up to n more buffers, the lowest-numbered first (the pages already
 * resident, if any). */
static void lend(uring_state_t *u, unsigned n)
{
    unsigned bid, added = 0;

    for (bid = 0; bid < u->nbufs && added < n; bid++) {
        if (u->lent[bid])
            continue;
        u->lent[bid] = 1;
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->bufsize, u->bufsize,
                              (unsigned short)bid, u->mask, (int)added);
        added++;
    }
    io_uring_buf_ring_advance(u->br, (int)added);
    u->nlent += added;
}

static int register_ring(uring_state_t *u)
{
    struct io_uring_buf_reg reg;

    io_uring_buf_ring_init(u->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)u->br;
    reg.ring_entries = u->nbufs;
    reg.bgid = PX_URING_BUF_GROUP;
    return io_uring_register_buf_ring(&u->ring, &reg, 0);
}

static int uring_init(px_worker_t *w)
{
    const px_engine_config_t *cfg = &w->e->cfg;
    uring_state_t *u = calloc(1, sizeof(*u));
    int rc;

    if (u == NULL)
        return -ENOMEM;
    u->lent = calloc(cfg->recv_buffers, 1);
    if (u->lent == NULL) {
        free(u);
        return -ENOMEM;
    }
    rc = px__uring_ring_init(&u->ring, cfg->ring_entries);
    if (rc < 0)
        goto fail;
    u->nbufs = cfg->recv_buffers;
    u->bufsize = cfg->recv_buffer_size;
    u->mask = io_uring_buf_ring_mask(u->nbufs);
    u->br_bytes = u->nbufs * sizeof(struct io_uring_buf);
    u->br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (u->br == MAP_FAILED) {
        rc = -errno;
        goto fail_ring;
    }
    /* Untouched pages cost nothing: only buffers that ever held data are resident. */
    u->bufs = mmap(NULL, (size_t)u->nbufs * u->bufsize, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (u->bufs == MAP_FAILED) {
        rc = -errno;
        goto fail_br;
    }
    rc = register_ring(u);
    if (rc < 0)
        goto fail_bufs;
    u->registered = true;
    lend(u, RING_START);
    /* The probe found whether the kernel knows the cap (uring_probe.c). */
    if (w->e->uring_features & PX_URING_RECV_CAP)
        u->recv_cap = RECV_BURST_BUFFERS * u->bufsize;
    w->bs = u;
    arm_wake(w, u);
    return 0;
fail_bufs:
    munmap(u->bufs, (size_t)u->nbufs * u->bufsize);
fail_br:
    munmap(u->br, u->br_bytes);
fail_ring:
    io_uring_queue_exit(&u->ring);
fail:
    free(u->lent);
    free(u);
    return rc;
}

static void uring_destroy(px_worker_t *w)
{
    uring_state_t *u = state_of(w);

    if (u == NULL)
        return;
    io_uring_queue_exit(&u->ring);
    munmap(u->bufs, (size_t)u->nbufs * u->bufsize);
    munmap(u->br, u->br_bytes);
    free(u->lent);
    free(u);
    w->bs = NULL;
}

static int uring_listen(px_worker_t *w, px_listener_t *l)
{
    struct io_uring_sqe *sqe = get_sqe(state_of(w));

    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, PX_TAGGED(l, PX_TAG_ACCEPT));
    l->armed = true;
    return 0;
}

static void cancel_data(px_worker_t *w, uint64_t data)
{
    struct io_uring_sqe *sqe = get_sqe(state_of(w));

    if (sqe == NULL)
        return;
    io_uring_prep_cancel64(sqe, data, 0);
    io_uring_sqe_set_data64(sqe, PX_TAG_IGNORE);
}

static void uring_unlisten(px_worker_t *w, px_listener_t *l)
{
    if (l->armed) {
        cancel_data(w, PX_TAGGED(l, PX_TAG_ACCEPT)); /* closed on the last completion */
    } else if (l->fd >= 0) {
        close(l->fd);
        px__worker_listener_closed(w, l);
    }
}

static int uring_open(px_worker_t *w, px_conn_t *c)
{
    (void)w;
    (void)c;
    return 0;
}

static int uring_recv(px_worker_t *w, px_conn_t *c)
{
    struct io_uring_sqe *sqe = get_sqe(state_of(w));

    if (sqe == NULL)
        return -EBUSY;
    /* A multishot receive drains the socket eagerly; a connection that has
     * outrun its peer's reading gets one buffer at a time, so a pause stops it
     * within one buffer. */
    if (c->state & PX_CONN_CAREFUL) {
        io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    } else {
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->file_index = state_of(w)->recv_cap;
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = PX_URING_BUF_GROUP;
    io_uring_sqe_set_data64(sqe, PX_TAGGED(c, PX_TAG_RECV));
    c->ops |= PX_OP_RECV;
    return 0;
}

static void uring_recv_stop(px_worker_t *w, px_conn_t *c)
{
    /* The receive ends with -ECANCELED (or data already on its way). Submitted
     * now, not at the end of the loop turn: until the kernel sees it, every
     * syscall this thread makes may let the receive post more data. */
    cancel_data(w, PX_TAGGED(c, PX_TAG_RECV));
    io_uring_submit(&state_of(w)->ring);
}

static int uring_send(px_worker_t *w, px_conn_t *c)
{
    struct io_uring_sqe *sqe = get_sqe(state_of(w));

    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_sendmsg(sqe, c->fd, &c->sendop->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, PX_TAGGED(c, PX_TAG_SEND));
    c->ops |= PX_OP_SEND;
    return 0;
}

static int uring_poll_out(px_worker_t *w, px_conn_t *c)
{
    struct io_uring_sqe *sqe = get_sqe(state_of(w));

    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
    io_uring_sqe_set_data64(sqe, PX_TAGGED(c, PX_TAG_POLL));
    c->ops |= PX_OP_POLL;
    return 0;
}

static void uring_cancel(px_worker_t *w, px_conn_t *c)
{
    struct io_uring_sqe *sqe = get_sqe(state_of(w));

    if (sqe == NULL)
        return;
    io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, PX_TAG_IGNORE);
}

static void on_accept(px_worker_t *w, px_listener_t *l, struct io_uring_cqe *cqe)
{
    if (cqe->res >= 0)
        px__conn_accepted(l, cqe->res);
    if (cqe->flags & IORING_CQE_F_MORE)
        return;
    l->armed = false;
    if (l->closed) {
        close(l->fd);
        px__worker_listener_closed(w, l);
    } else if (cqe->res >= 0 || !px__listener_backoff(l, cqe->res)) {
        /* A multishot accept ends on any error. Out of descriptors, re-armed
         * at once it would fail again at once: px__listener_backoff pauses. */
        if (cqe->res < 0 && cqe->res != -ECANCELED)
            PX_STAT_ADD(&w->stats, errors, 1);
        uring_listen(w, l);
    }
}

static void dispatch(px_worker_t *w, uring_state_t *u, struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    void *p = PX_UNTAG(data);
    bool more = cqe->flags & IORING_CQE_F_MORE;

    switch (PX_TAG_OF(data)) {
    case PX_TAG_RECV:
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            u->received = u->resident = true;
            u->reading++;
            px__conn_received(p, u->bufs + (size_t)bid * u->bufsize, cqe->res, more);
            u->reading--;
            return_buffer(u, bid);
        } else {
            /* Ran dry: twice as many, once a turn however many receives
             * found it dry together (they are re-armed at the flush). */
            if (cqe->res == -ENOBUFS && u->registered && u->nlent < u->nbufs &&
                u->grown_turn != w->turn) {
                u->grown_turn = w->turn;
                lend(u, u->nlent);
            }
            px__conn_received(p, NULL, cqe->res, more);
        }
        break;
    case PX_TAG_SEND: px__conn_sent(p, cqe->res); break;
    case PX_TAG_POLL: px__conn_writable(p, cqe->res < 0 ? cqe->res : 0); break;
    case PX_TAG_ACCEPT: on_accept(w, p, cqe); break;
    case PX_TAG_WAKE:
        px__wake_ack(w->wake_fd, &w->wake_pending);
        if (!more)
            arm_wake(w, u);
        break;
    default: break;
    }
}

static int uring_wait(px_worker_t *w, uint64_t timeout_ns)
{
    uring_state_t *u = state_of(w);
    struct io_uring_cqe *cqe, copy;
    unsigned count = 0, limit;
    int rc;

    if (timeout_ns == 0 || io_uring_cq_ready(&u->ring) > 0) {
        rc = io_uring_submit(&u->ring);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = (long long)(timeout_ns / PX_NS_PER_SEC),
            .tv_nsec = (long long)(timeout_ns % PX_NS_PER_SEC),
        };
        rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
        PX_STAT_ADD(&w->stats, errors, 1);
    px__worker_tick(w);
    /* Only what is there now: completions keep coming while these run (a
     * multishot accept under a stream of connects), and a turn that never
     * ends never reads the inbox (the stop, other threads' sends) nor gives
     * the worker back to a thread waiting for it. The rest is the next
     * turn's, as with epoll's bounded batch.
     * One at a time, consumed before it is dispatched: if the dispatch blocks
     * and another thread takes the ring over, that thread goes on with the
     * next entry, and this one, given the ring back, finds what is left. */
    limit = io_uring_cq_ready(&u->ring);
    while (count < limit && io_uring_peek_cqe(&u->ring, &cqe) == 0 && cqe != NULL) {
        copy = *cqe;
        io_uring_cqe_seen(&u->ring, cqe);
        dispatch(w, u, &copy);
        count++;
    }
    return (int)count;
}

/* After an interval with no receive, the pages of every buffer go back to the
 * system. Which buffers the kernel may still write is settled first: once the
 * ring is unregistered (under the ring's lock, which the kernel also holds
 * from picking a buffer to posting its completion) it picks none, so every
 * buffer is ours again except those named by completions waiting in the queue,
 * which the next dispatch returns as usual. Then the ring is registered afresh
 * with RING_START buffers lent. Receives armed meanwhile end with -ENOBUFS and
 * are re-armed. madvise rather than munmap: the buffers stay where they are. */
static void uring_release_idle(px_worker_t *w)
{
    uring_state_t *u = state_of(w);
    struct io_uring_cqe *cqe;
    unsigned head, bid, start;

    /* A handler still reading a buffer (on a thread the worker was handed
     * from) would find it cleared and lend it twice; completions the kernel
     * keeps in its overflow list name buffers the loop below cannot see. */
    if (u->reading || io_uring_cq_has_overflow(&u->ring))
        return;
    if (!u->registered)
        goto again; /* the last registration failed: every buffer is ours */
    if (u->received || !u->resident) {
        u->received = false;
        return;
    }
    if (io_uring_unregister_buf_ring(&u->ring, PX_URING_BUF_GROUP) < 0)
        return;
    u->registered = false;
again: /* every buffer is ours but those of waiting completions */
    memset(u->lent, 0, u->nbufs);
    u->nlent = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        if (PX_TAG_OF(cqe->user_data) == PX_TAG_RECV && (cqe->flags & IORING_CQE_F_BUFFER)) {
            bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            u->lent[bid] = 1;
            u->nlent++;
        }
    }
    for (bid = 0; bid < u->nbufs; bid = start) {
        while (bid < u->nbufs && u->lent[bid])
            bid++;
        for (start = bid; start < u->nbufs && !u->lent[start]; start++)
            ;
        if (start > bid)
            madvise(u->bufs + (size_t)bid * u->bufsize, (size_t)(start - bid) * u->bufsize,
                    MADV_DONTNEED);
    }
    if (register_ring(u) < 0) {
        /* No memory to pin the ring again: receives fail with -ENOBUFS until
         * the next call succeeds. */
        PX_STAT_ADD(&w->stats, errors, 1);
        return;
    }
    u->registered = true;
    /* The buffers of waiting completions go back to the new ring when dispatched. */
    lend(u, RING_START);
    u->resident = false;
}

static bool uring_local_work(px_worker_t *w)
{
    return io_uring_sq_ready(&state_of(w)->ring) > 0;
}

/* From another thread: completions posted and not yet consumed. */
static bool uring_kernel_work(px_worker_t *w)
{
    uring_state_t *u = state_of(w);
    unsigned tail = atomic_load_explicit((_Atomic unsigned *)u->ring.cq.ktail,
                                         memory_order_acquire);
    unsigned head = atomic_load_explicit((_Atomic unsigned *)u->ring.cq.khead,
                                         memory_order_relaxed);

    return tail != head;
}

const px_backend_t px__backend_uring = {
    .name = "io_uring",
    .init = uring_init,
    .destroy = uring_destroy,
    .listen = uring_listen,
    .unlisten = uring_unlisten,
    .open = uring_open,
    .recv = uring_recv,
    .recv_stop = uring_recv_stop,
    .send = uring_send,
    .poll_out = uring_poll_out,
    .cancel = uring_cancel,
    .wait = uring_wait,
    .local_work = uring_local_work,
    .kernel_work = uring_kernel_work,
    .release_idle = uring_release_idle,
};
