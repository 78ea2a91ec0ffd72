/*
 * Connections, their life: creation (accepted or connected), the handler
 * brackets, timers (idle, request deadline, resume after a pause), reading
 * on and off (pause, backpressure), and the close sequence. The output queue
 * and the completions the backends deliver are in conn_io.c.
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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* A connection id: the worker's index in the bits above these, a count below. */
#define CONN_ID_WORKER_SHIFT 48

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

uint64_t px_worker_callback_enter(px_worker_t *w)
{
    return callback_enter(w);
}
void px_worker_callback_leave(px_worker_t *w, uint64_t t0)
{
    callback_leave(w, t0);
}

static bool wants_read(const px_conn_t *c)
{
    if (c->state & (PX_CONN_DEAD | PX_CONN_EOF | PX_CONN_END_HELD))
        return false;
    if (c->state & PX_CONN_SHUT)
        return true; /* lingering: drain whatever the peer still sends */
    if (!(c->state & (PX_CONN_OPEN | PX_CONN_PROXY_WAIT)))
        return false;
    return !(c->state & (PX_CONN_PAUSED | PX_CONN_BACKPRESSURE | PX_CONN_CLOSING)) &&
           c->in_head == NULL;
}

/* A request deadline measures the peer's slowness at sending. While the engine
 * itself does not read (backpressure, or the application paused the
 * connection) it is held, and runs on with what was left once reading resumes;
 * a peer that stalls the server by not reading meets the idle timeout instead. */
void px__conn_hold_deadline(px_conn_t *c)
{
    px_timer_t *t = &c->deadline_timer;

    if (!px_timer_armed(t))
        return;
    c->deadline_left_ms = t->_deadline > c->w->wheel.now
                              ? (uint32_t)(t->_deadline - c->w->wheel.now)
                              : 1;
    px_timer_stop(&c->w->wheel, t);
}

static void release_deadline(px_conn_t *c)
{
    if (c->deadline_left_ms && !(c->state & PX_CONN_DEAD))
        px_timer_start(&c->w->wheel, &c->deadline_timer, c->deadline_left_ms);
    c->deadline_left_ms = 0;
}

void px__conn_arm_recv(px_conn_t *c)
{
    if (!(c->ops & PX_OP_RECV) && wants_read(c)) {
        int rc = c->w->be->recv(c->w, c);
        if (rc < 0)
            px__conn_kill(c, rc);
    }
}

void px__conn_stop_recv(px_conn_t *c)
{
    if (c->ops & PX_OP_RECV)
        c->w->be->recv_stop(c->w, c);
}

void px__conn_touch(px_conn_t *c)
{
    if (c->idle_ms && !(c->state & PX_CONN_SHUT))
        px_timer_start(&c->w->wheel, &c->idle_timer, c->idle_ms);
}

/* Brackets of every handler call (counted and timed by callback_enter). */
uint64_t px__conn_handler_enter(px_conn_t *c)
{
    c->state |= PX_CONN_IN_HANDLER;
    return callback_enter(c->w);
}

/* The worker stops: c closes, its protocol's way when it has one. */
static void close_for_shutdown(px_conn_t *c)
{
    if (c->ep->handler.on_shutdown != NULL)
        c->ep->handler.on_shutdown(c);
    else
        px_conn_close(c);
}

/* What waited for the handler is delivered at the next flush; a shutdown that
 * waited for it closes c now that its answer is queued. */
void px__conn_handler_leave(px_conn_t *c, uint64_t t0)
{
    callback_leave(c->w, t0);
    c->state &= ~PX_CONN_IN_HANDLER;
    if ((c->in_head || (c->state & (PX_CONN_END_HELD | PX_CONN_DRAIN_HELD)) ||
         px__conn_fin_due(c)) &&
        !(c->state & PX_CONN_DEAD)) {
        c->state |= PX_CONN_DELIVER;
        px__worker_mark_dirty(c->w, c);
    }
    if (c->state & PX_CONN_STOP_AFTER) {
        c->state &= ~PX_CONN_STOP_AFTER;
        close_for_shutdown(c);
    }
}

static void idle_expired(px_timer_t *t)
{
    px_conn_t *c = PX_CONTAINER_OF(t, px_conn_t, idle_timer);

    c->busy++;
    if (c->state & PX_CONN_SHUT) {
        px__conn_kill(c, c->close_err); /* linger over */
    } else if (px__conn_in_handler(c)) {
        px__conn_touch(c); /* a connection whose handler runs is not idle */
    } else {
        PX_STAT_ADD(&c->w->stats, timeouts, 1);
        c->close_err = -ETIMEDOUT;
        if (c->unsent)
            px__conn_kill(c, -ETIMEDOUT);
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
    PX_STAT_ADD(&c->w->stats, timeouts, 1);
    c->close_err = -ETIMEDOUT;
    px__conn_kill(c, -ETIMEDOUT);
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
    c->id = ((uint64_t)w->index << CONN_ID_WORKER_SHIFT) | ++w->next_id;
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
    px__conn_touch(c);
    t0 = px__conn_handler_enter(c);
    rc = c->ep->handler.on_open ? c->ep->handler.on_open(c) : 0;
    px__conn_handler_leave(c, t0);
    if (rc < 0)
        px__conn_kill(c, rc);
    else
        px__conn_arm_recv(c);
    c->busy--;
    px__conn_maybe_free(c);
}

void px__conn_free(px_conn_t *c)
{
    px_worker_t *w = c->w;

    px_timer_stop(&w->wheel, &c->idle_timer);
    px_timer_stop(&w->wheel, &c->resume_timer);
    px_timer_stop(&w->wheel, &c->deadline_timer);
    px__conn_free_output(c);
    px__conn_free_input(c);
    px__proxy_free(c);
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
    if (c->handle)
        px__handle_detach(c->handle);
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
    t0 = px__conn_handler_enter(c);
    /* One whose PROXY header never came was never the application's. */
    if (c->ep->handler.on_close && !(c->state & PX_CONN_PROXY_WAIT))
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
void px__conn_kill(px_conn_t *c, int err)
{
    if (c->state & PX_CONN_DEAD)
        return;
    if (err && !c->close_err)
        c->close_err = err;
    c->state |= PX_CONN_DEAD;
    if (c->tap)
        px__tap_end(c, err < 0 ? err : -ECONNRESET);
    if (c->handle)
        px__handle_closing(c->handle);
    px__conn_free_output(c);
    px__conn_free_input(c);
    px_timer_stop(&c->w->wheel, &c->idle_timer);
    px_timer_stop(&c->w->wheel, &c->resume_timer);
    px_timer_stop(&c->w->wheel, &c->deadline_timer);
    if (c->ops)
        c->w->be->cancel(c->w, c); /* epoll's may leave nothing in flight */
    if (!c->ops)                   /* nothing in flight will come back for it (killed from a
                                    * timer, a message): the next flush frees it */
        px__worker_mark_dirty(c->w, c);
}

/* Output drained after a close request: send FIN and linger. */
void px__conn_shut(px_conn_t *c)
{
    if (c->state & (PX_CONN_SHUT | PX_CONN_DEAD))
        return;
    c->state |= PX_CONN_SHUT;
    if (shutdown(c->fd, SHUT_WR) < 0 || (c->state & PX_CONN_EOF)) {
        px__conn_kill(c, 0);
        return;
    }
    px_timer_start(&c->w->wheel, &c->idle_timer, PX_LINGER_MS);
    px__conn_arm_recv(c);
}

/* Flush time, nothing queued or in flight: the FIN px_conn_shutdown_send asked
 * for. A handler of c still running elsewhere makes it wait (its return marks
 * c again), so that on_send_shut never runs beside it. */
void px__conn_send_fin(px_conn_t *c)
{
    if (px__conn_in_handler(c) || (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD)))
        return;
    c->state |= PX_CONN_FIN_SENT;
    if (shutdown(c->fd, SHUT_WR) < 0) {
        px__conn_kill(c, -errno);
        return;
    }
    if (c->ep->handler.on_send_shut) {
        uint64_t t0 = px__conn_handler_enter(c);
        c->ep->handler.on_send_shut(c);
        px__conn_handler_leave(c, t0);
    }
    /* Both directions are over, unless the end (and input before it) is only
     * held: its delivery closes c then, after the input. */
    if ((c->state & (PX_CONN_EOF | PX_CONN_END_HELD)) == PX_CONN_EOF)
        px_conn_close(c);
}

int px_conn_shutdown_send(px_conn_t *c)
{
    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))
        return -ENOTCONN;
    if (c->state & PX_CONN_SEND_SHUT)
        return 0;
    c->state |= PX_CONN_SEND_SHUT;
    if (c->handle)
        atomic_store_explicit(&c->handle->send_shut, true, memory_order_release);
    px__worker_mark_dirty(c->w, c);
    return 0;
}

void px_conn_set_half_close(px_conn_t *c, bool on)
{
    if (on)
        c->state |= PX_CONN_HALF_OPEN;
    else
        c->state &= ~PX_CONN_HALF_OPEN;
}

void px_conn_set_output_backpressure(px_conn_t *c, bool on)
{
    if (on)
        c->state &= ~PX_CONN_OWN_OUTPUT;
    else
        c->state |= PX_CONN_OWN_OUTPUT;
}

void px_conn_close(px_conn_t *c)
{
    if (c->state & (PX_CONN_CLOSING | PX_CONN_DEAD))
        return;
    c->state |= PX_CONN_CLOSING;
    if (c->tap)
        px__tap_end(c, -ECONNRESET); /* input is dropped from here on */
    if (c->handle)
        px__handle_closing(c->handle);
    if (!(c->state & PX_CONN_OPEN)) {
        px__conn_kill(c, c->close_err);
        return;
    }
    if (c->out_head == NULL && !(c->ops & (PX_OP_SEND | PX_OP_POLL)))
        px__conn_shut(c);
}

void px_conn_abort(px_conn_t *c)
{
    px__conn_kill(c, c->close_err ? c->close_err : -ECONNABORTED);
}

/* Idle connections close now; one whose handler runs (blocked on another
 * thread) keeps it: its answer is sent, then it closes (handler_leave). */
void px__conn_begin_shutdown(px_conn_t *c)
{
    c->busy++;
    px__conn_stop_recv(c);
    if (px__conn_in_handler(c) && !(c->state & (PX_CONN_CLOSING | PX_CONN_DEAD)))
        c->state |= PX_CONN_STOP_AFTER;
    else
        close_for_shutdown(c);
    c->busy--;
    px__conn_maybe_free(c);
}

/* Reading may go on: deliver held input first (at the next flush, never from
 * inside a handler), then receive again. */
void px__conn_unpause(px_conn_t *c)
{
    release_deadline(c);
    if (c->in_head) {
        c->state |= PX_CONN_DELIVER;
        px__worker_mark_dirty(c->w, c);
    } else {
        px__conn_arm_recv(c);
    }
}

/* The end of the stream (res 0) or a failed receive (-errno). */
void px__conn_accepted(px_listener_t *l, int fd)
{
    px_worker_t *w = l->w;
    px_engine_t *e = w->e;
    px_conn_t *c;

    /* Accepted after the stop: closed, unless the worker still serves (a
     * hand-over's grace: this client reached us, not the next process). */
    if ((w->stopping || l->closed) && w->drain_until == 0) {
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
        px__conn_kill(c, rc);
        px__conn_maybe_free(c);
        return;
    }
    if (c->ep->proxy_timeout_ms)
        px__proxy_start(c);
    else
        px__conn_start(c);
}

/* ---- small accessors and controls ----------------------------------------- */

void px_conn_pause(px_conn_t *c)
{
    c->state |= PX_CONN_PAUSED;
    px__conn_hold_deadline(c);
    px__conn_stop_recv(c);
}

void px_conn_resume(px_conn_t *c)
{
    c->state &= ~PX_CONN_PAUSED;
    px_timer_stop(&c->w->wheel, &c->resume_timer);
    if (!px__conn_paused(c))
        px__conn_unpause(c);
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
        px__conn_touch(c);
}

void px_conn_set_deadline(px_conn_t *c, unsigned ms)
{
    if (px__conn_paused(c)) { /* it starts when reading resumes */
        c->deadline_left_ms = ms;
        return;
    }
    if (ms == 0)
        px_timer_stop(&c->w->wheel, &c->deadline_timer);
    else if (!(c->state & PX_CONN_DEAD))
        px_timer_start(&c->w->wheel, &c->deadline_timer, ms);
}

void *px_conn_udata(const px_conn_t *c)
{
    return c->udata;
}
void px_conn_set_udata(px_conn_t *c, void *udata)
{
    c->udata = udata;
}
void *px_conn_app_data(const px_conn_t *c)
{
    return c->app_data;
}
void px_conn_set_app_data(px_conn_t *c, void *data)
{
    c->app_data = data;
}
void *px_conn_server_udata(const px_conn_t *c)
{
    return c->ep->udata;
}
px_worker_t *px_conn_worker(const px_conn_t *c)
{
    return c->w;
}
int px_conn_fd(const px_conn_t *c)
{
    return c->fd;
}
uint64_t px_conn_id(const px_conn_t *c)
{
    return c->id;
}
size_t px_conn_unsent(const px_conn_t *c)
{
    return c->unsent;
}
bool px_conn_is_client(const px_conn_t *c)
{
    return c->state & PX_CONN_CLIENT;
}
bool px_conn_closing(const px_conn_t *c)
{
    return c->state & (PX_CONN_CLOSING | PX_CONN_DEAD);
}
bool px_conn_send_failed(const px_conn_t *c)
{
    return c->state & PX_CONN_SEND_ERR;
}
bool px_conn_draining(const px_conn_t *c)
{
    /* Set by px_engine_shutdown at once, before the worker gets to c. */
    return atomic_load_explicit(&c->w->stop_requested, memory_order_relaxed) ||
           atomic_load_explicit(&c->w->e->announce_stop, memory_order_relaxed) ||
           (c->state & PX_CONN_STOP_AFTER);
}
