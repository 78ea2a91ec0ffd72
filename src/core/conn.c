/*
 * Connections: the output queue, the close sequence, backpressure, idle
 * timeouts, and the completions the backends deliver.
 *
 * Close sequence: px_conn_close marks CLOSING; once the output has drained the
 * write side is shut (FIN) and the socket lingers, reading and discarding,
 * until the peer closes or PX_LINGER_MS passes, so the peer reads our last
 * bytes instead of a reset. Then every operation is cancelled (DEAD), and the
 * struct is freed when the last one has completed and no call is on the stack.
 *
 * Handlers and hand-off: while a handler of c runs (IN_HANDLER), its thread may
 * block and another thread may take the worker over. That thread never calls a
 * handler of c: input is held (and reading stopped), the end of the stream and
 * on_drain wait, and all of it is delivered at the first flush after the
 * handler returned. It never frees c either: the handler's caller holds c busy.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static void conn_kill(px_conn_t *c, int err);
static void deliver_held(px_conn_t *c);
static void unpause(px_conn_t *c);
static void stop_recv(px_conn_t *c);

static px_worker_stats_t *stats_of(px_conn_t *c) { return &c->w->stats; }

/* Around every call into the application: count it, time it, and publish that
 * the worker is inside one (for stats readers). Owner thread only. */
static uint64_t callback_enter(px_worker_t *w)
{
    uint64_t t0 = px_ticks();

    PX_STAT_ADD(&w->stats, callbacks, 1);
    if (w->callback_depth++ == 0)
        atomic_store_explicit(&w->callback_since, t0, memory_order_relaxed);
    return t0;
}

static void callback_leave(px_worker_t *w, uint64_t t0)
{
    px_hist_record(&w->callback_latency, px_ticks_ns((int64_t)(px_ticks() - t0)));
    if (--w->callback_depth == 0)
        atomic_store_explicit(&w->callback_since, 0, memory_order_relaxed);
}

uint64_t px_worker_callback_enter(px_worker_t *w) { return callback_enter(w); }
void px_worker_callback_leave(px_worker_t *w, uint64_t t0) { callback_leave(w, t0); }

static bool wants_read(const px_conn_t *c)
{
    if (c->state & (PX_CONN_DEAD | PX_CONN_EOF | PX_CONN_END_HELD))
        return false;
    if (c->state & PX_CONN_SHUT)
        return true; /* lingering: drain whatever the peer still sends */
    if (!(c->state & PX_CONN_OPEN))
        return false;
    return !(c->state & (PX_CONN_PAUSED | PX_CONN_BACKPRESSURE | PX_CONN_CLOSING)) &&
           c->in_head == NULL;
}

static bool paused(const px_conn_t *c)
{
    return c->state & (PX_CONN_PAUSED | PX_CONN_BACKPRESSURE);
}

/* A request deadline measures the peer's slowness at sending. While the engine
 * itself does not read (backpressure, or the application paused the
 * connection) it is held, and runs on with what was left once reading resumes;
 * a peer that stalls the server by not reading meets the idle timeout instead. */
static void hold_deadline(px_conn_t *c)
{
    px_timer_t *t = &c->deadline_timer;

    if (!px_timer_armed(t))
        return;
    c->deadline_left_ms = t->_deadline > c->w->wheel.now ?
        (uint32_t)(t->_deadline - c->w->wheel.now) : 1;
    px_timer_stop(&c->w->wheel, t);
}

static void release_deadline(px_conn_t *c)
{
    if (c->deadline_left_ms && !(c->state & PX_CONN_DEAD))
        px_timer_start(&c->w->wheel, &c->deadline_timer, c->deadline_left_ms);
    c->deadline_left_ms = 0;
}

static void arm_recv(px_conn_t *c)
{
    if (!(c->ops & PX_OP_RECV) && wants_read(c)) {
        int rc = c->w->be->recv(c->w, c);
        if (rc < 0)
            conn_kill(c, rc);
    }
}

static void stop_recv(px_conn_t *c)
{
    if (c->ops & PX_OP_RECV)
        c->w->be->recv_stop(c->w, c);
}

static void touch(px_conn_t *c)
{
    if (c->idle_ms && !(c->state & PX_CONN_SHUT))
        px_timer_start(&c->w->wheel, &c->idle_timer, c->idle_ms);
}

/* Brackets of every handler call (counted and timed by callback_enter). */
static uint64_t handler_enter(px_conn_t *c)
{
    c->state |= PX_CONN_IN_HANDLER;
    return callback_enter(c->w);
}

/* What waited for the handler is delivered at the next flush. */
static void handler_leave(px_conn_t *c, uint64_t t0)
{
    callback_leave(c->w, t0);
    c->state &= ~PX_CONN_IN_HANDLER;
    if ((c->in_head || (c->state & (PX_CONN_END_HELD | PX_CONN_DRAIN_HELD))) &&
        !(c->state & PX_CONN_DEAD)) {
        c->state |= PX_CONN_DELIVER;
        px__worker_mark_dirty(c->w, c);
    }
}

static bool in_handler(const px_conn_t *c) { return c->state & PX_CONN_IN_HANDLER; }

static void idle_expired(px_timer_t *t)
{
    px_conn_t *c = PX_CONTAINER_OF(t, px_conn_t, idle_timer);

    c->busy++;
    if (c->state & PX_CONN_SHUT) {
        conn_kill(c, c->close_err); /* linger over */
    } else if (in_handler(c)) {
        touch(c); /* a connection whose handler runs is not idle */
    } else {
        PX_STAT_ADD(stats_of(c), timeouts, 1);
        c->close_err = -ETIMEDOUT;
        if (c->unsent)
            conn_kill(c, -ETIMEDOUT);
        else
            px_conn_close(c);
    }
    c->busy--;
    px__conn_maybe_free(c);
}

static void deadline_expired(px_timer_t *t)
{
    px_conn_t *c = PX_CONTAINER_OF(t, px_conn_t, deadline_timer);

    c->busy++;
    PX_STAT_ADD(stats_of(c), timeouts, 1);
    c->close_err = -ETIMEDOUT;
    conn_kill(c, -ETIMEDOUT);
    c->busy--;
    px__conn_maybe_free(c);
}

static void resume_expired(px_timer_t *t)
{
    px_conn_t *c = PX_CONTAINER_OF(t, px_conn_t, resume_timer);

    c->busy++;
    px_conn_resume(c);
    c->busy--;
    px__conn_maybe_free(c);
}

px_conn_t *px__conn_new(px_worker_t *w, px_endpoint_t *ep, int fd)
{
    px_conn_t *c = px_pool_alloc(&w->conn_pool);

    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->ep = ep;
    c->fd = fd;
    c->id = ((uint64_t)w->index << 48) | ++w->next_id;
    c->idle_ms = ep->idle_timeout_ms;
    px_timer_init(&c->idle_timer, idle_expired);
    px_timer_init(&c->resume_timer, resume_expired);
    px_timer_init(&c->deadline_timer, deadline_expired);
    c->next = w->conns.next;
    c->prev = &w->conns;
    w->conns.next->prev = c;
    w->conns.next = c;
    PX_STAT_ADD(&w->stats, connections, 1);
    return c;
}

/* Register the socket with the backend and hand it to the application. */
void px__conn_start(px_conn_t *c)
{
    int rc;
    uint64_t t0;

    c->busy++;
    c->state |= PX_CONN_OPEN;
    touch(c);
    t0 = handler_enter(c);
    rc = c->ep->handler.on_open ? c->ep->handler.on_open(c) : 0;
    handler_leave(c, t0);
    if (rc < 0)
        conn_kill(c, rc);
    else
        arm_recv(c);
    c->busy--;
    px__conn_maybe_free(c);
}

static void free_input(px_conn_t *c)
{
    px_seg_t *s, *next;

    for (s = c->in_head; s != NULL; s = next) {
        next = s->next;
        px_pool_free(&c->w->chunk_pool, s);
    }
    c->in_head = c->in_tail = NULL;
}

static void free_output(px_conn_t *c)
{
    px_seg_t *s = c->out_head, *next;

    for (; s != NULL; s = next) {
        next = s->next;
        if (s->fd >= 0) {
            close(s->fd);
            free(s);
        } else {
            px_pool_free(&c->w->chunk_pool, s);
        }
    }
    c->out_head = c->out_tail = NULL;
    c->unsent = 0;
}

void px__conn_free(px_conn_t *c)
{
    px_worker_t *w = c->w;

    px_timer_stop(&w->wheel, &c->idle_timer);
    px_timer_stop(&w->wheel, &c->resume_timer);
    px_timer_stop(&w->wheel, &c->deadline_timer);
    free_output(c);
    free_input(c);
    if (c->sendop)
        px_pool_free(&w->sendop_pool, c->sendop);
    if (c->fd >= 0)
        close(c->fd);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    PX_STAT_SUB(&w->stats, connections, 1);
    PX_STAT_ADD(&w->stats, closes, 1);
    atomic_fetch_sub_explicit(&w->e->connections, 1, memory_order_relaxed);
    if (c->state & PX_CONN_OWNS_EP)
        free(c->ep);
    px_pool_free(&w->conn_pool, c);
}

/* Free c once it is dead, no operation is in the kernel, no call is on the
 * stack and the flush list no longer holds it. A dead connection refuses every
 * request, so on_close cannot bring it back; c is held during on_close, so a
 * thread that takes the worker over while on_close blocks leaves c alone. */
void px__conn_maybe_free(px_conn_t *c)
{
    px_worker_t *w = c->w;
    uint64_t t0;

    if (c->busy || c->ops || (c->state & (PX_CONN_DIRTY | PX_CONN_FREED)) ||
        !(c->state & PX_CONN_DEAD))
        return;
    c->busy++;
    t0 = handler_enter(c);
    if (c->ep->handler.on_close)
        c->ep->handler.on_close(c, c->close_err);
    callback_leave(w, t0);
    c->state &= ~PX_CONN_IN_HANDLER;
    c->busy--;
    if (c->w->defer_free) {
        c->state |= PX_CONN_FREED;
        c->dirty_next = c->w->graveyard;
        c->w->graveyard = c;
        return;
    }
    px__conn_free(c);
}

void px__conn_op_done(px_conn_t *c, uint32_t op)
{
    c->ops &= ~op;
    px__conn_maybe_free(c);
}

/* Cancel everything; the struct goes when the last operation completes. */
static void conn_kill(px_conn_t *c, int err)
{
    if (c->state & PX_CONN_DEAD)
        return;
    if (err && !c->close_err)
        c->close_err = err;
    c->state |= PX_CONN_DEAD;
    free_output(c);
    free_input(c);
    px_timer_stop(&c->w->wheel, &c->idle_timer);
    px_timer_stop(&c->w->wheel, &c->resume_timer);
    px_timer_stop(&c->w->wheel, &c->deadline_timer);
    if (c->ops)
        c->w->be->cancel(c->w, c);
}

/* Output drained after a close request: send FIN and linger. */
static void conn_shut(px_conn_t *c)
{
    if (c->state & (PX_CONN_SHUT | PX_CONN_DEAD))
        return;
    c->state |= PX_CONN_SHUT;
    if (shutdown(c->fd, SHUT_WR) < 0 || (c->state & PX_CONN_EOF)) {
        conn_kill(c, 0);
        return;
    }
    px_timer_start(&c->w->wheel, &c->idle_timer, PX_LINGER_MS);
    arm_recv(c);
}

void px_conn_close(px_conn_t *c)
{
    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))
        return;
    c->state |= PX_CONN_CLOSING;
    if (!(c->state & PX_CONN_OPEN)) {
        conn_kill(c, c->close_err);
        return;
    }
    if (c->out_head == NULL && !(c->ops & (PX_OP_SEND | PX_OP_POLL)))
        conn_shut(c);
}

void px_conn_abort(px_conn_t *c)
{
    conn_kill(c, c->close_err ? c->close_err : -ECONNABORTED);
}

void px__conn_begin_shutdown(px_conn_t *c)
{
    c->busy++;
    stop_recv(c);
    px_conn_close(c);
    c->busy--;
    px__conn_maybe_free(c);
}

/* ---- output -------------------------------------------------------------- */

static px_seg_t *new_mem_seg(px_conn_t *c)
{
    px_seg_t *s = px_pool_alloc(&c->w->chunk_pool);

    if (s == NULL)
        return NULL;
    s->next = NULL;
    s->len = s->off = 0;
    s->fd = -1;
    s->fleft = 0;
    s->foff = 0;
    return s;
}

static void append_seg(px_conn_t *c, px_seg_t *s)
{
    if (c->out_tail)
        c->out_tail->next = s;
    else
        c->out_head = s;
    c->out_tail = s;
}

static void after_queue(px_conn_t *c)
{
    px__worker_mark_dirty(c->w, c);
    if (c->unsent > c->w->e->cfg.send_high_water &&
        !(c->state & PX_CONN_BACKPRESSURE)) {
        c->state |= PX_CONN_BACKPRESSURE | PX_CONN_CAREFUL;
        PX_STAT_ADD(stats_of(c), paused, 1);
        hold_deadline(c);
        stop_recv(c);
    }
}

int px_conn_send(px_conn_t *c, const struct iovec *iov, int iovcnt)
{
    px_seg_t *s;
    int i;

    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))
        return -ENOTCONN;
    for (i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;

        while (left > 0) {
            size_t n;

            s = c->out_tail;
            if (s == NULL || s->fd >= 0 || s->len == PX_SEG_CAPACITY) {
                s = new_mem_seg(c);
                if (s == NULL)
                    return -ENOMEM;
                append_seg(c, s);
            }
            n = PX_MIN(left, PX_SEG_CAPACITY - s->len);
            memcpy(s->data + s->len, p, n);
            s->len += (uint32_t)n;
            c->unsent += n;
            p += n;
            left -= n;
        }
    }
    if (iovcnt > 0)
        after_queue(c);
    return 0;
}

int px_conn_sendfile(px_conn_t *c, int fd, off_t offset, size_t count)
{
    px_seg_t *s;

    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD)) {
        close(fd);
        return -ENOTCONN;
    }
    if (count == 0) {
        close(fd);
        return 0;
    }
    s = malloc(sizeof(*s));
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    s->next = NULL;
    s->len = s->off = 0;
    s->fd = fd;
    s->foff = offset;
    s->fleft = count;
    append_seg(c, s);
    c->unsent += count;
    after_queue(c);
    return 0;
}

static void count_turn(px_conn_t *c, size_t n)
{
    if (c->turn != c->w->turn) {
        c->turn = c->w->turn;
        c->turn_bytes = 0;
    }
    if (c->turn_bytes < c->w->e->cfg.turn_budget &&
        c->turn_bytes + n >= c->w->e->cfg.turn_budget)
        PX_STAT_ADD(stats_of(c), hogs, 1);
    c->turn_bytes += n;
}

/* Drop n sent bytes from the front of the queue. */
static void consume_output(px_conn_t *c, size_t n)
{
    c->unsent -= n;
    while (n > 0 && c->out_head) {
        px_seg_t *s = c->out_head;
        size_t avail = s->len - s->off;
        size_t take = PX_MIN(avail, n);

        s->off += (uint32_t)take;
        n -= take;
        if (s->off == s->len) {
            c->out_head = s->next;
            if (c->out_head == NULL)
                c->out_tail = NULL;
            px_pool_free(&c->w->chunk_pool, s);
        }
    }
}

static void send_file_seg(px_conn_t *c, px_seg_t *s)
{
    size_t want = PX_MIN(s->fleft, c->w->e->cfg.turn_budget);
    ssize_t n = sendfile(c->fd, s->fd, &s->foff, want);

    if (n < 0) {
        int err = -errno;
        if (err == -EAGAIN) {
            int rc = c->w->be->poll_out(c->w, c);
            if (rc < 0)
                conn_kill(c, rc);
        } else {
            conn_kill(c, err);
        }
        return;
    }
    if (n == 0) { /* the file shrank under us: the promised length cannot be met */
        conn_kill(c, -EIO);
        return;
    }
    PX_STAT_ADD(stats_of(c), bytes_out, (uint64_t)n);
    PX_STAT_ADD(stats_of(c), sendfiles, 1);
    count_turn(c, (size_t)n);
    s->fleft -= (size_t)n;
    c->unsent -= (size_t)n;
    if (s->fleft == 0) {
        c->out_head = s->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        close(s->fd);
        free(s);
    }
    px__conn_sent(c, -EINPROGRESS); /* continue the queue's bookkeeping */
}

static void start_mem_send(px_conn_t *c)
{
    px_sendop_t *op = c->sendop;
    size_t budget = c->w->e->cfg.turn_budget, total = 0;
    px_seg_t *s;
    int n = 0, rc;

    if (op == NULL) {
        op = px_pool_alloc(&c->w->sendop_pool);
        if (op == NULL) {
            conn_kill(c, -ENOMEM);
            return;
        }
        c->sendop = op;
    }
    for (s = c->out_head; s && s->fd < 0 && n < PX_IOV_MAX && total < budget;
         s = s->next) {
        op->iov[n].iov_base = s->data + s->off;
        op->iov[n].iov_len = s->len - s->off;
        total += s->len - s->off;
        n++;
    }
    memset(&op->msg, 0, sizeof(op->msg));
    op->msg.msg_iov = op->iov;
    op->msg.msg_iovlen = (size_t)n;
    rc = c->w->be->send(c->w, c);
    if (rc < 0)
        conn_kill(c, rc);
}

static void conn_end(px_conn_t *c, int res);

/* After a pause or a handler: held input, then a held end of stream, then a
 * held on_drain. A handler still running elsewhere keeps them waiting. */
static void deliver_waiting(px_conn_t *c)
{
    if (in_handler(c))
        return; /* its return marks c again */
    c->state &= ~PX_CONN_DELIVER;
    deliver_held(c);
    if ((c->state & PX_CONN_END_HELD) && (c->in_head == NULL || paused(c)) &&
        !in_handler(c)) {
        c->state &= ~PX_CONN_END_HELD;
        conn_end(c, c->held_end);
    }
    if ((c->state & PX_CONN_DRAIN_HELD) && !in_handler(c)) {
        c->state &= ~PX_CONN_DRAIN_HELD;
        if (c->out_head == NULL && c->ep->handler.on_drain &&
            !(c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))) {
            uint64_t t0 = handler_enter(c);
            c->ep->handler.on_drain(c);
            handler_leave(c, t0);
        }
    }
}

void px__conn_flush(px_conn_t *c)
{
    if (c->state & PX_CONN_DEAD)
        return;
    if (c->state & PX_CONN_DELIVER) {
        deliver_waiting(c);
        if (c->state & PX_CONN_DEAD)
            return;
        arm_recv(c);
    }
    if (c->state & PX_CONN_NEED_RECV) {
        c->state &= ~PX_CONN_NEED_RECV;
        arm_recv(c);
    }
    if (c->ops & (PX_OP_SEND | PX_OP_POLL | PX_OP_CONNECT) || c->out_head == NULL)
        return;
    if (c->out_head->fd >= 0)
        send_file_seg(c, c->out_head);
    else
        start_mem_send(c);
}

/* ---- completions --------------------------------------------------------- */

void px__conn_sent(px_conn_t *c, int res)
{
    c->busy++;
    if (res != -EINPROGRESS) { /* a real send completion, not a sendfile step */
        c->ops &= ~PX_OP_SEND;
        if (c->sendop) {
            px_pool_free(&c->w->sendop_pool, c->sendop);
            c->sendop = NULL;
        }
        if (res == -EAGAIN && !(c->state & PX_CONN_DEAD)) {
            /* io_uring does not wait on a non-blocking socket: poll for room. */
            int rc = c->w->be->poll_out(c->w, c);
            if (rc < 0)
                conn_kill(c, rc);
            goto out;
        }
        if (res < 0) {
            if (!(c->state & PX_CONN_DEAD) && res != -ECANCELED)
                PX_STAT_ADD(stats_of(c), errors, 1);
            conn_kill(c, res == -ECANCELED ? 0 : res);
            goto out;
        }
        if (c->state & PX_CONN_DEAD)
            goto out;
        PX_STAT_ADD(stats_of(c), bytes_out, (uint64_t)res);
        PX_STAT_ADD(stats_of(c), sends, 1);
        count_turn(c, (size_t)res);
        consume_output(c, (size_t)res);
    }
    touch(c);
    if (c->out_head) {
        px__worker_mark_dirty(c->w, c); /* partial write or more queued */
    } else if (c->state & PX_CONN_CLOSING) {
        conn_shut(c);
        goto out;
    }
    if ((c->state & PX_CONN_BACKPRESSURE) &&
        c->unsent <= c->w->e->cfg.send_low_water) {
        c->state &= ~PX_CONN_BACKPRESSURE;
        unpause(c);
    }
    if (c->out_head == NULL && c->ep->handler.on_drain &&
        !(c->state & (PX_CONN_CLOSING | PX_CONN_IN_DRAIN))) {
        if (in_handler(c)) {
            c->state |= PX_CONN_DRAIN_HELD; /* its handler is blocked elsewhere */
        } else {
            uint64_t t0;
            c->state |= PX_CONN_IN_DRAIN;
            t0 = handler_enter(c);
            c->ep->handler.on_drain(c);
            handler_leave(c, t0);
            c->state &= ~PX_CONN_IN_DRAIN;
        }
    }
out:
    c->busy--;
    px__conn_maybe_free(c);
}

void px__conn_writable(px_conn_t *c, int res)
{
    c->busy++;
    c->ops &= ~PX_OP_POLL;
    if (c->ops & PX_OP_CONNECT) {
        int err = 0;
        socklen_t len = sizeof(err);

        c->ops &= ~PX_OP_CONNECT;
        if (res < 0)
            err = res;
        else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = -errno;
        else
            err = -err;
        px__conn_connected(c, err);
    } else if (res < 0 && res != -ECANCELED) {
        conn_kill(c, res);
    } else if (!(c->state & PX_CONN_DEAD)) {
        px__worker_mark_dirty(c->w, c);
    }
    c->busy--;
    px__conn_maybe_free(c);
}

void px__conn_connected(px_conn_t *c, int res)
{
    c->busy++;
    if (res < 0) {
        c->close_err = res;
        conn_kill(c, res);
    } else if (!(c->state & PX_CONN_DEAD)) {
        PX_STAT_ADD(stats_of(c), connects, 1);
        px__conn_start(c);
    }
    c->busy--;
    px__conn_maybe_free(c);
}

static void deliver(px_conn_t *c, const char *data, size_t len)
{
    int rc = 0;
    uint64_t t0;

    t0 = handler_enter(c);
    if (c->ep->handler.on_data)
        rc = c->ep->handler.on_data(c, data, len);
    handler_leave(c, t0);
    if (rc < 0) {
        if (c->close_err == 0 && rc != -ECONNABORTED)
            c->close_err = rc;
        px_conn_close(c);
    }
}

static int hold_input(px_conn_t *c, const char *data, size_t len)
{
    while (len > 0) {
        px_seg_t *s = c->in_tail;
        size_t n;

        if (s == NULL || s->len == PX_SEG_CAPACITY) {
            s = new_mem_seg(c);
            if (s == NULL)
                return -ENOMEM;
            if (c->in_tail)
                c->in_tail->next = s;
            else
                c->in_head = s;
            c->in_tail = s;
        }
        n = PX_MIN(len, PX_SEG_CAPACITY - s->len);
        memcpy(s->data + s->len, data, n);
        s->len += (uint32_t)n;
        data += n;
        len -= n;
    }
    return 0;
}

/* Hand held input to the application until it pauses again (flush time). */
static void deliver_held(px_conn_t *c)
{
    while (c->in_head && !paused(c) && !in_handler(c) &&
           !(c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))) {
        px_seg_t *s = c->in_head;
        c->in_head = s->next;
        if (c->in_head == NULL)
            c->in_tail = NULL;
        deliver(c, s->data, s->len);
        px_pool_free(&c->w->chunk_pool, s);
    }
    if (c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))
        free_input(c);
}

/* Reading may go on: deliver held input first (at the next flush, never from
 * inside a handler), then receive again. */
static void unpause(px_conn_t *c)
{
    release_deadline(c);
    if (c->in_head) {
        c->state |= PX_CONN_DELIVER;
        px__worker_mark_dirty(c->w, c);
    } else {
        arm_recv(c);
    }
}

/* The end of the stream (res 0) or a failed receive (-errno). */
static void conn_end(px_conn_t *c, int res)
{
    if (res == 0) {
        c->state |= PX_CONN_EOF;
        if (c->state & PX_CONN_SHUT) {
            conn_kill(c, c->close_err);
        } else if (!(c->state & PX_CONN_DEAD)) {
            if (c->ep->handler.on_eof) {
                uint64_t t0 = handler_enter(c);
                c->ep->handler.on_eof(c, 0);
                handler_leave(c, t0);
            }
            px_conn_close(c);
        }
    } else if (!(c->state & PX_CONN_DEAD)) {
        if (c->ep->handler.on_eof && !(c->state & PX_CONN_SHUT)) {
            uint64_t t0 = handler_enter(c);
            c->ep->handler.on_eof(c, res);
            handler_leave(c, t0);
        }
        conn_kill(c, res);
    }
}

void px__conn_received(px_conn_t *c, const char *data, int res, bool more)
{
    c->busy++;
    if (res > 0) {
        PX_STAT_ADD(stats_of(c), bytes_in, (uint64_t)res);
        PX_STAT_ADD(stats_of(c), recvs, 1);
        if (!(c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))) {
            touch(c);
            count_turn(c, (size_t)res);
            if (paused(c) || c->in_head || in_handler(c)) {
                /* A multishot receive stops only when its cancellation is
                 * submitted: keep what it still read for the resume. */
                if (hold_input(c, data, (size_t)res) < 0)
                    conn_kill(c, -ENOMEM);
                else if (in_handler(c))
                    stop_recv(c); /* read no more while the handler is blocked */
            } else {
                deliver(c, data, (size_t)res);
            }
        }
    } else if (res == -ENOBUFS) {
        /* The buffer ring ran dry: re-arm once this turn returned buffers. */
        PX_STAT_ADD(stats_of(c), buffer_shortages, 1);
        c->state |= PX_CONN_NEED_RECV;
        px__worker_mark_dirty(c->w, c);
    } else if (res == -ECANCELED) {
        /* a cancelled receive: whoever cancelled it knows why */
    } else if (in_handler(c) && !(c->state & (PX_CONN_SHUT | PX_CONN_DEAD))) {
        /* The handler is blocked on another thread: the end waits for it
         * (and for the input held meanwhile). */
        if (res == 0)
            c->state |= PX_CONN_EOF;
        if (!(c->state & PX_CONN_END_HELD)) {
            c->state |= PX_CONN_END_HELD;
            c->held_end = res;
        }
    } else {
        conn_end(c, res);
    }
    if (!more) {
        c->ops &= ~PX_OP_RECV;
        if (!(c->state & PX_CONN_NEED_RECV))
            arm_recv(c);
    }
    c->busy--;
    px__conn_maybe_free(c);
}

void px__conn_accepted(px_listener_t *l, int fd)
{
    px_worker_t *w = l->w;
    px_engine_t *e = w->e;
    px_conn_t *c;

    if (w->stopping || l->closed) {
        close(fd);
        return;
    }
    if (atomic_fetch_add_explicit(&e->connections, 1, memory_order_relaxed) >=
        e->cfg.max_connections) {
        atomic_fetch_sub_explicit(&e->connections, 1, memory_order_relaxed);
        PX_STAT_ADD(&w->stats, refused, 1);
        close(fd);
        return;
    }
    px__socket_tune(fd, l->server->ep.sock_flags);
    c = px__conn_new(w, &l->server->ep, fd);
    if (c == NULL) {
        atomic_fetch_sub_explicit(&e->connections, 1, memory_order_relaxed);
        PX_STAT_ADD(&w->stats, errors, 1);
        close(fd);
        return;
    }
    PX_STAT_ADD(&w->stats, accepts, 1);
    int rc = w->be->open(w, c);
    if (rc < 0) {
        conn_kill(c, rc);
        px__conn_maybe_free(c);
        return;
    }
    px__conn_start(c);
}

/* ---- small accessors and controls ----------------------------------------- */

void px_conn_pause(px_conn_t *c)
{
    c->state |= PX_CONN_PAUSED;
    hold_deadline(c);
    stop_recv(c);
}

void px_conn_resume(px_conn_t *c)
{
    c->state &= ~PX_CONN_PAUSED;
    px_timer_stop(&c->w->wheel, &c->resume_timer);
    if (!paused(c))
        unpause(c);
}

void px_conn_pause_for(px_conn_t *c, unsigned ms)
{
    px_conn_pause(c);
    px_timer_start(&c->w->wheel, &c->resume_timer, ms);
}

void px_conn_set_idle_timeout(px_conn_t *c, unsigned ms)
{
    c->idle_ms = ms;
    if (ms == 0)
        px_timer_stop(&c->w->wheel, &c->idle_timer);
    else
        touch(c);
}

void px_conn_set_deadline(px_conn_t *c, unsigned ms)
{
    if (paused(c)) { /* it starts when reading resumes */
        c->deadline_left_ms = ms;
        return;
    }
    if (ms == 0)
        px_timer_stop(&c->w->wheel, &c->deadline_timer);
    else if (!(c->state & PX_CONN_DEAD))
        px_timer_start(&c->w->wheel, &c->deadline_timer, ms);
}

void *px_conn_udata(const px_conn_t *c) { return c->udata; }
void px_conn_set_udata(px_conn_t *c, void *udata) { c->udata = udata; }
void *px_conn_server_udata(const px_conn_t *c) { return c->ep->udata; }
px_worker_t *px_conn_worker(const px_conn_t *c) { return c->w; }
int px_conn_fd(const px_conn_t *c) { return c->fd; }
uint64_t px_conn_id(const px_conn_t *c) { return c->id; }
size_t px_conn_unsent(const px_conn_t *c) { return c->unsent; }
bool px_conn_is_client(const px_conn_t *c) { return c->state & PX_CONN_CLIENT; }
bool px_conn_closing(const px_conn_t *c)
{
    return c->state & (PX_CONN_CLOSING | PX_CONN_DEAD);
}
