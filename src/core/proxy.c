/*
 * The PROXY protocol on a listener (px_endpoint_config_t.proxy_protocol): a
 * new connection is the application's only once its PROXY header is in. Until
 * then the bytes are collected here, the connection's deadline is the
 * header's, and a connection that sends anything else, or too little in
 * time, is closed without a word (as HAProxy's own "accept-proxy" does):
 * the application never hears of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "px/proxy_protocol.h"

struct px_proxy_state {
    struct sockaddr_storage peer; /* the client, as the balancer said */
    socklen_t peer_len;           /* 0: none said (LOCAL, UNKNOWN) */
    size_t len;                   /* bytes of buf collected */
    char buf[];                   /* PX_PROXY_V2_MAX while waiting; gone after */
};

void px__proxy_start(px_conn_t *c)
{
    c->proxy = malloc(sizeof(*c->proxy) + PX_PROXY_V2_MAX);
    if (c->proxy == NULL) {
        px__conn_kill(c, -ENOMEM);
        return;
    }
    c->proxy->len = 0;
    c->proxy->peer_len = 0;
    c->state |= PX_CONN_PROXY_WAIT;
    px_timer_start(&c->w->wheel, &c->deadline_timer, c->ep->proxy_timeout_ms);
    px__conn_arm_recv(c);
}

static void refuse(px_conn_t *c, int err)
{
    PX_STAT_ADD(&c->w->stats, proxy_refused, 1);
    px__conn_kill(c, err);
}

void px__proxy_received(px_conn_t *c, const char *data, int res)
{
    px_proxy_state_t *p = c->proxy, *shrunk;
    px_proxy_header_t h;
    size_t take;
    int n;

    if (res <= 0) { /* gone before its header: nobody to tell */
        px__conn_kill(c, res < 0 ? res : -ECONNRESET);
        return;
    }
    take = PX_MIN((size_t)res, PX_PROXY_V2_MAX - p->len);
    memcpy(p->buf + p->len, data, take);
    p->len += take;
    n = px_proxy_parse(p->buf, p->len, &h);
    if (n == PX_PROXY_INCOMPLETE && p->len == PX_PROXY_V2_MAX)
        n = PX_PROXY_ERROR;
    if (n == PX_PROXY_INCOMPLETE)
        return;
    if (n < 0) {
        refuse(c, -EPROTO);
        return;
    }
    /* What followed the header is the application's: held, delivered at the
     * flush, as any input that arrives before it may be taken. */
    if ((size_t)n < p->len && px__conn_hold_input(c, p->buf + n, p->len - (size_t)n) < 0) {
        px__conn_kill(c, -ENOMEM);
        return;
    }
    if ((size_t)res > take && px__conn_hold_input(c, data + take, (size_t)res - take) < 0) {
        px__conn_kill(c, -ENOMEM);
        return;
    }
    if (h.local) {
        free(p);
        c->proxy = NULL;
    } else {
        p->peer = h.src;
        p->peer_len = h.addr_len;
        shrunk = realloc(p, sizeof(*p));
        c->proxy = shrunk ? shrunk : p;
    }
    c->state &= ~PX_CONN_PROXY_WAIT;
    px_timer_stop(&c->w->wheel, &c->deadline_timer);
    if (c->in_head != NULL) {
        c->state |= PX_CONN_DELIVER;
        px__worker_mark_dirty(c->w, c);
    }
    px__conn_start(c);
}

void px__proxy_free(px_conn_t *c)
{
    free(c->proxy);
    c->proxy = NULL;
}

int px_conn_peer_addr(const px_conn_t *c, struct sockaddr_storage *ss, socklen_t *len)
{
    if (c->proxy != NULL && c->proxy->peer_len > 0 && !(c->state & PX_CONN_PROXY_WAIT)) {
        memcpy(ss, &c->proxy->peer, c->proxy->peer_len);
        *len = c->proxy->peer_len;
        return 0;
    }
    *len = sizeof(*ss);
    if (getpeername(c->fd, (struct sockaddr *)ss, len) < 0)
        return -errno;
    return 0;
}
