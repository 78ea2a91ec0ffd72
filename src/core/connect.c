/*
 * Client connections. A request to connect travels as a message to the worker
 * that will own the connection; there the socket is created, registered with
 * the backend and connected without blocking. When the connect ends (at once,
 * or once the socket turns writable) the connection opens as an accepted one
 * does: on_open, then reads.
 *
 * px_worker_connect (one address, already resolved): a connection that never
 * comes to be reports on_connect_failed (no socket, no memory) or on_close
 * with -errno (the connect failed).
 *
 * px_engine_adopt_on (a socket someone else connected, as asyncio's
 * create_connection(sock=...) hands over): the same message, carrying the
 * descriptor instead of an address; on the worker it opens at once.
 *
 * px_engine_connect_on (a name, maybe several addresses): a race (RFC 8305).
 * The name is resolved off the workers (resolver.c); on the worker, each
 * address gets an attempt, a connection of its own whose endpoint is the
 * race's (so the application hears nothing of it), started when the last one
 * failed or connect_delay_ms after it while it is pending. The first to
 * connect takes the application's endpoint and opens; the others are killed.
 * When none does, or the timeout runs out, on_connect_error reports every
 * attempt. The race is freed when it is decided and its last attempt closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

typedef struct connect_msg {
    px_msg_t msg;
    struct sockaddr_storage ss;
    socklen_t len;
    px_endpoint_t *ep;
    int fd; /* adopted, already connected; -1: connect to ss */
} connect_msg_t;

static void connect_msg_drop(px_msg_t *m)
{
    connect_msg_t *cm = PX_CONTAINER_OF(m, connect_msg_t, msg);
    if (cm->fd >= 0)
        close(cm->fd);
    free(cm->ep);
    free(cm);
}

/* Connect c's socket to addr without blocking: 0 and *pending false when it
 * connected at once; 0 and *pending true when the kernel goes on and a
 * writability poll (PX_OP_CONNECT) will report the end; or -errno. */
static int start_connect(px_conn_t *c, const struct sockaddr *addr, socklen_t len, bool *pending)
{
    int rc;

    *pending = false;
    if (connect(c->fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -errno;
    c->ops |= PX_OP_CONNECT;
    rc = c->w->be->poll_out(c->w, c);
    if (rc < 0) {
        c->ops &= ~PX_OP_CONNECT;
        return rc;
    }
    *pending = true;
    return 0;
}

int px__connect_start(px_conn_t *c, const struct sockaddr *addr, socklen_t len, bool *pending)
{
    return start_connect(c, addr, len, pending);
}

static void connect_msg_fn(px_worker_t *w, px_msg_t *m)
{
    connect_msg_t *cm = PX_CONTAINER_OF(m, connect_msg_t, msg);
    px_endpoint_t *ep = cm->ep;
    px_conn_t *c;
    bool pending = false, adopted = cm->fd >= 0;
    int fd, rc;

    /* The worker's loop is over (its last messages run as it exits): nobody
     * would serve the connection. */
    if (atomic_load(&w->inbox_closed)) {
        connect_msg_drop(m);
        return;
    }
    fd = adopted ? cm->fd : socket(cm->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cm->fd = -1;
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    px__socket_tune(fd, ep->sock_flags);
    atomic_fetch_add_explicit(&w->e->connections, 1, memory_order_relaxed);
    c = px__conn_new(w, ep, fd);
    if (c == NULL) {
        atomic_fetch_sub_explicit(&w->e->connections, 1, memory_order_relaxed);
        close(fd);
        rc = -ENOMEM;
        goto fail;
    }
    c->state |= PX_CONN_CLIENT | PX_CONN_OWNS_EP;
    c->busy++;
    rc = w->be->open(w, c);
    if (rc == 0 && !adopted)
        rc = start_connect(c, (struct sockaddr *)&cm->ss, cm->len, &pending);
    if (rc < 0 || !pending)
        px__conn_connected(c, rc);
    c->busy--;
    px__conn_maybe_free(c);
    free(cm);
    return;
fail:
    PX_STAT_ADD(&w->stats, errors, 1);
    if (ep->handler.on_connect_failed)
        ep->handler.on_connect_failed(ep->udata, rc);
    free(ep);
    free(cm);
}

static connect_msg_t *connect_msg_new(const px_endpoint_config_t *cfg)
{
    connect_msg_t *cm = calloc(1, sizeof(*cm));

    if (cm == NULL)
        return NULL;
    cm->ep = calloc(1, sizeof(*cm->ep));
    if (cm->ep == NULL) {
        free(cm);
        return NULL;
    }
    cm->ep->handler = *cfg->handler;
    cm->ep->udata = cfg->udata;
    cm->ep->sock_flags = cfg->sock_flags;
    cm->ep->idle_timeout_ms = cfg->idle_timeout_ms;
    cm->fd = -1;
    px_msg_init(&cm->msg, connect_msg_fn, connect_msg_drop);
    return cm;
}

int px_worker_connect(px_worker_t *w, const struct sockaddr *addr, socklen_t len,
                      const px_endpoint_config_t *cfg)
{
    connect_msg_t *cm;

    if (len > sizeof(cm->ss) || len < (socklen_t)sizeof(addr->sa_family))
        return -EINVAL;
    cm = connect_msg_new(cfg);
    if (cm == NULL)
        return -ENOMEM;
    memcpy(&cm->ss, addr, len);
    cm->len = len;
    px_worker_post(w, &cm->msg);
    return 0;
}

int px_engine_adopt_on(px_engine_t *e, px_worker_t *w, int fd, const px_endpoint_config_t *cfg)
{
    connect_msg_t *cm = NULL;
    int type = 0, flags, rc = 0;
    socklen_t len = sizeof(type);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        rc = -errno;
    else if (type != SOCK_STREAM)
        rc = -EINVAL;
    /* The engine's sockets never block (epoll) and never leak into children. */
    else if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
             fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        rc = -errno;
    else if ((cm = connect_msg_new(cfg)) == NULL)
        rc = -ENOMEM;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    cm->fd = fd;
    if (w == NULL)
        w = e->workers[atomic_fetch_add(&e->next_client_worker, 1) % (unsigned)e->nworkers];
    px_worker_post(w, &cm->msg);
    return 0;
}

void px__conn_connected(px_conn_t *c, int res)
{
    if (c->state & PX_CONN_ATTEMPT) {
        px__race_attempt_done(c, res);
        return;
    }
    c->busy++;
    if (res < 0) {
        c->close_err = res;
        px__conn_kill(c, res);
    } else if (!(c->state & PX_CONN_DEAD)) {
        PX_STAT_ADD(&c->w->stats, connects, 1);
        px__conn_start(c);
    }
    c->busy--;
    px__conn_maybe_free(c);
}

/* The poll that waited for a connect ended: the connect's own result is the
 * socket's pending error. */
void px__conn_connect_polled(px_conn_t *c, int res)
{
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
}
