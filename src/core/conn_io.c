/*
 * Connections, their I/O: the output queue (memory chunks and file ranges,
 * gathered into one send per turn, bounded by the turn budget), the input
 * held while the application cannot take it, and the completions the
 * backends deliver (received, sent, writable). The life of a connection
 * (creation, timers, the close sequence) is in conn.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static void output_moved(px_conn_t *c);
static void conn_end(px_conn_t *c, int res);
static void deliver_held(px_conn_t *c);

void px__conn_free_input(px_conn_t *c)
{
    px_seg_t *s, *next;

    for (s = c->in_head; s != NULL; s = next) {
        next = s->next;
        px_pool_free(&c->w->chunk_pool, s);
    }
    c->in_head = c->in_tail = NULL;
}

void px__conn_free_output(px_conn_t *c)
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
    c->files = 0;
    px__conn_publish_unsent(c);
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
    if (c->out_tail) {
        c->out_tail->next = s;
    } else {
        c->out_head = s;
        c->out_moved_ms = (uint32_t)c->w->wheel.now; /* waiting for the peer from now */
    }
    c->out_tail = s;
}

static void after_queue(px_conn_t *c)
{
    px__worker_mark_dirty(c->w, c);
    px__conn_publish_unsent(c);
    if (c->unsent > c->w->e->cfg.send_high_water &&
        !(c->state & (PX_CONN_BACKPRESSURE | PX_CONN_OWN_OUTPUT))) {
        c->state |= PX_CONN_BACKPRESSURE | PX_CONN_CAREFUL;
        PX_STAT_ADD(&c->w->stats, paused, 1);
        px__conn_hold_deadline(c);
        px__conn_stop_recv(c);
    }
}

void px_conn_wait_output(px_conn_t *c)
{
    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD) || c->out_head == NULL)
        return; /* nothing to wait for: output_moved would never resume it */
    c->state |= PX_CONN_WAIT_OUT;
    if (!(c->state & PX_CONN_BACKPRESSURE)) {
        c->state |= PX_CONN_BACKPRESSURE;
        px__conn_hold_deadline(c);
        px__conn_stop_recv(c);
    }
}

bool px_conn_paused(const px_conn_t *c)
{
    return px__conn_paused(c);
}

int px_conn_send(px_conn_t *c, const struct iovec *iov, int iovcnt)
{
    px_seg_t *s;
    int i;

    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))
        return -ENOTCONN;
    if (c->state & PX_CONN_SEND_SHUT)
        return -EPIPE;
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

    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD | PX_CONN_SEND_SHUT)) {
        close(fd);
        return c->state & PX_CONN_SEND_SHUT && !(c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))
                   ? -EPIPE
                   : -ENOTCONN;
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
    c->files++;
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
    if (c->turn_bytes < c->w->e->cfg.turn_budget && c->turn_bytes + n >= c->w->e->cfg.turn_budget)
        PX_STAT_ADD(&c->w->stats, hogs, 1);
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

/* Output could not be written: the connection dies with err, and the
 * application can tell a failed send from a failed receive. Only when err
 * becomes the close error: an earlier error stays the cause. */
static void send_failed(px_conn_t *c, int err)
{
    if (!(c->state & PX_CONN_DEAD) && c->close_err == 0)
        c->state |= PX_CONN_SEND_ERR;
    px__conn_kill(c, err);
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
                px__conn_kill(c, rc);
        } else {
            send_failed(c, err);
        }
        return;
    }
    if (n == 0) { /* the file shrank under us: the promised length cannot be met */
        send_failed(c, -EIO);
        return;
    }
    PX_STAT_ADD(&c->w->stats, bytes_out, (uint64_t)n);
    PX_STAT_ADD(&c->w->stats, sendfiles, 1);
    count_turn(c, (size_t)n);
    s->fleft -= (size_t)n;
    c->unsent -= (size_t)n;
    if (s->fleft == 0) {
        c->out_head = s->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        c->files--;
        close(s->fd);
        free(s);
    }
    c->busy++;
    output_moved(c);
    c->busy--;
    px__conn_maybe_free(c);
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
            px__conn_kill(c, -ENOMEM);
            return;
        }
        c->sendop = op;
    }
    for (s = c->out_head; s && s->fd < 0 && n < PX_IOV_MAX && total < budget; s = s->next) {
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
        px__conn_kill(c, rc);
}

/* After a pause or a handler: held input, then a held end of stream, then a
 * held on_drain. A handler still running elsewhere keeps them waiting. */
static void deliver_waiting(px_conn_t *c)
{
    if (px__conn_in_handler(c)) {
        px__tap_feed(c); /* a tap takes input while its handler runs */
        return;          /* its return marks c again */
    }
    c->state &= ~PX_CONN_DELIVER;
    deliver_held(c);
    /* Backpressure ends by itself: the end waits for the input held meanwhile. */
    if ((c->state & PX_CONN_END_HELD) &&
        (c->in_head == NULL || (px__conn_paused(c) && !(c->state & PX_CONN_BACKPRESSURE))) &&
        !px__conn_in_handler(c)) {
        c->state &= ~PX_CONN_END_HELD;
        conn_end(c, c->held_end);
    }
    if ((c->state & PX_CONN_DRAIN_HELD) && !px__conn_in_handler(c)) {
        c->state &= ~PX_CONN_DRAIN_HELD;
        if (c->out_head == NULL && c->ep->handler.on_drain &&
            !(c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))) {
            uint64_t t0 = px__conn_handler_enter(c);
            c->ep->handler.on_drain(c);
            px__conn_handler_leave(c, t0);
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
        px__conn_arm_recv(c);
    }
    if (c->state & PX_CONN_NEED_RECV) {
        c->state &= ~PX_CONN_NEED_RECV;
        px__conn_arm_recv(c);
    }
    if (c->ops & (PX_OP_SEND | PX_OP_POLL | PX_OP_CONNECT))
        return;
    if (c->out_head == NULL) {
        if (px__conn_fin_due(c))
            px__conn_send_fin(c);
        return;
    }
    if (c->out_head->fd >= 0)
        send_file_seg(c, c->out_head);
    else
        start_mem_send(c);
}

/* ---- completions --------------------------------------------------------- */

/* Bytes left the queue (a send completed, or a sendfile step): the idle
 * timer, more to send, the close sequence, the end of backpressure, on_drain.
 * The caller holds c busy. */
static void output_moved(px_conn_t *c)
{
    px__conn_touch(c);
    px__conn_publish_unsent(c);
    c->out_moved_ms = (uint32_t)c->w->wheel.now;
    if (c->out_head || px__conn_fin_due(c)) {
        px__worker_mark_dirty(c->w, c); /* partial write, more queued, or the FIN */
    } else if (c->state & PX_CONN_CLOSING) {
        px__conn_shut(c);
        return;
    }
    if ((c->state & PX_CONN_BACKPRESSURE) && c->unsent <= c->w->e->cfg.send_low_water &&
        !((c->state & PX_CONN_WAIT_OUT) && c->files > 0)) {
        c->state &= ~(PX_CONN_BACKPRESSURE | PX_CONN_WAIT_OUT);
        px__conn_unpause(c);
    }
    if (c->out_head == NULL && c->ep->handler.on_drain &&
        !(c->state & (PX_CONN_CLOSING | PX_CONN_IN_DRAIN))) {
        if (px__conn_in_handler(c)) {
            c->state |= PX_CONN_DRAIN_HELD; /* its handler is blocked elsewhere */
        } else {
            uint64_t t0;
            c->state |= PX_CONN_IN_DRAIN;
            t0 = px__conn_handler_enter(c);
            c->ep->handler.on_drain(c);
            px__conn_handler_leave(c, t0);
            c->state &= ~PX_CONN_IN_DRAIN;
        }
    }
}

void px__conn_sent(px_conn_t *c, int res)
{
    c->busy++;
    c->ops &= ~PX_OP_SEND;
    if (c->sendop) {
        px_pool_free(&c->w->sendop_pool, c->sendop);
        c->sendop = NULL;
    }
    if (res == -EAGAIN && !(c->state & PX_CONN_DEAD)) {
        /* io_uring does not wait on a non-blocking socket: poll for room. */
        int rc = c->w->be->poll_out(c->w, c);
        if (rc < 0)
            px__conn_kill(c, rc);
        goto out;
    }
    if (res < 0) {
        if (!(c->state & PX_CONN_DEAD) && res != -ECANCELED) {
            PX_STAT_ADD(&c->w->stats, errors, 1);
            if (c->close_err == 0)
                c->state |= PX_CONN_SEND_ERR;
        }
        px__conn_kill(c, res == -ECANCELED ? 0 : res);
        goto out;
    }
    if (c->state & PX_CONN_DEAD)
        goto out;
    PX_STAT_ADD(&c->w->stats, bytes_out, (uint64_t)res);
    PX_STAT_ADD(&c->w->stats, sends, 1);
    count_turn(c, (size_t)res);
    consume_output(c, (size_t)res);
    output_moved(c);
out:
    c->busy--;
    px__conn_maybe_free(c);
}

void px__conn_writable(px_conn_t *c, int res)
{
    c->busy++;
    c->ops &= ~PX_OP_POLL;
    if (c->ops & PX_OP_CONNECT) {
        px__conn_connect_polled(c, res);
    } else if (res < 0 && res != -ECANCELED) {
        send_failed(c, res);
    } else if (!(c->state & PX_CONN_DEAD)) {
        px__worker_mark_dirty(c->w, c);
    }
    c->busy--;
    px__conn_maybe_free(c);
}

static void deliver(px_conn_t *c, const char *data, size_t len)
{
    int rc = 0;
    uint64_t t0;

    t0 = px__conn_handler_enter(c);
    if (c->ep->handler.on_data)
        rc = c->ep->handler.on_data(c, data, len);
    px__conn_handler_leave(c, t0);
    if (rc < 0) {
        if (c->close_err == 0 && rc != -ECONNABORTED)
            c->close_err = rc;
        px_conn_close(c);
    }
}

int px__conn_hold_input(px_conn_t *c, const char *data, size_t len)
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

int px_conn_unread(px_conn_t *c, const char *data, size_t len)
{
    px_seg_t *first = NULL, *last = NULL;

    if (c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))
        return 0; /* input is dropped from here on anyway */
    /* Copied into a chain of its own, then put in front of what was held
     * meanwhile (newer bytes). */
    while (len > 0) {
        px_seg_t *s = new_mem_seg(c);
        size_t n = PX_MIN(len, PX_SEG_CAPACITY);

        if (s == NULL) {
            for (; first != NULL; first = s) {
                s = first->next;
                px_pool_free(&c->w->chunk_pool, first);
            }
            return -ENOMEM;
        }
        memcpy(s->data, data, n);
        s->len = (uint32_t)n;
        if (last)
            last->next = s;
        else
            first = s;
        last = s;
        data += n;
        len -= n;
    }
    if (last == NULL)
        return 0;
    last->next = c->in_head;
    if (c->in_head == NULL)
        c->in_tail = last;
    c->in_head = first;
    return 0;
}

/* Hand held input to the application until it pauses again (flush time). */
static void deliver_held(px_conn_t *c)
{
    if (c->tap != NULL) {
        px__tap_feed(c);
        return;
    }
    while (c->in_head && !px__conn_paused(c) && !px__conn_in_handler(c) &&
           !(c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))) {
        px_seg_t *s = c->in_head;
        c->in_head = s->next;
        if (c->in_head == NULL)
            c->in_tail = NULL;
        deliver(c, s->data + s->off, s->len - s->off); /* off: what a tap took */
        px_pool_free(&c->w->chunk_pool, s);
    }
    if (c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))
        px__conn_free_input(c);
}

static void conn_end(px_conn_t *c, int res)
{
    if (res == 0) {
        c->state |= PX_CONN_EOF;
        if (c->state & PX_CONN_SHUT) {
            px__conn_kill(c, c->close_err);
        } else if (!(c->state & PX_CONN_DEAD)) {
            if (c->ep->handler.on_eof) {
                uint64_t t0 = px__conn_handler_enter(c);
                c->ep->handler.on_eof(c, 0);
                px__conn_handler_leave(c, t0);
            }
            /* Half-open: c stays for sending until closed or its FIN is out. */
            if (!(c->state & PX_CONN_HALF_OPEN) || (c->state & PX_CONN_FIN_SENT))
                px_conn_close(c);
        }
    } else if (!(c->state & PX_CONN_DEAD)) {
        if (c->ep->handler.on_eof && !(c->state & PX_CONN_SHUT)) {
            uint64_t t0 = px__conn_handler_enter(c);
            c->ep->handler.on_eof(c, res);
            px__conn_handler_leave(c, t0);
        }
        px__conn_kill(c, res);
    }
}

void px__conn_received(px_conn_t *c, const char *data, int res, bool more)
{
    c->busy++;
    if ((c->state & PX_CONN_PROXY_WAIT) && res != -ENOBUFS && res != -ECANCELED) {
        if (!(c->state & PX_CONN_DEAD))
            px__proxy_received(c, data, res);
        goto rearm;
    }
    /* The end of the input reaches a tap at once (a body reader is waiting);
     * the handler hears of it as before. Behind held input, it waits for it. */
    if (res <= 0 && res != -ENOBUFS && res != -ECANCELED && c->tap != NULL && c->in_head == NULL &&
        !(c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD)))
        px__tap_end(c, res);
    if (res > 0) {
        PX_STAT_ADD(&c->w->stats, bytes_in, (uint64_t)res);
        PX_STAT_ADD(&c->w->stats, recvs, 1);
        if (!(c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))) {
            px__conn_touch(c);
            count_turn(c, (size_t)res);
            if (c->tap != NULL && !px__conn_paused(c) && c->in_head == NULL) {
                px__tap_deliver(c, data, (size_t)res);
            } else if (px__conn_paused(c) || c->in_head || px__conn_in_handler(c)) {
                /* A multishot receive stops only when its cancellation is
                 * submitted: keep what it still read for the resume. */
                if (px__conn_hold_input(c, data, (size_t)res) < 0)
                    px__conn_kill(c, -ENOMEM);
                else if (px__conn_in_handler(c))
                    px__conn_stop_recv(c); /* read no more while the handler is blocked */
            } else {
                deliver(c, data, (size_t)res);
            }
        }
    } else if (res == -ENOBUFS) {
        /* The buffer ring ran dry: re-arm once this turn returned buffers. */
        PX_STAT_ADD(&c->w->stats, buffer_shortages, 1);
        c->state |= PX_CONN_NEED_RECV;
        px__worker_mark_dirty(c->w, c);
    } else if (res == -ECANCELED) {
        /* a cancelled receive: whoever cancelled it knows why */
    } else if (res == 0 && c->in_head &&
               !(c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))) {
        /* Read past a pause (pipelined requests waiting for their answers to
         * drain): the end of the stream comes after them. */
        c->state |= PX_CONN_EOF | PX_CONN_END_HELD;
        c->held_end = 0;
    } else if (px__conn_in_handler(c) && !(c->state & (PX_CONN_SHUT | PX_CONN_DEAD))) {
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
rearm:
    if (!more) {
        c->ops &= ~PX_OP_RECV;
        if (!(c->state & PX_CONN_NEED_RECV))
            px__conn_arm_recv(c);
    }
    c->busy--;
    px__conn_maybe_free(c);
}
