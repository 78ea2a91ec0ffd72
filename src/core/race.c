/*
 * Connecting to a name: every address tried, RFC 8305 style (see connect.c).
 * A race lives on the worker that will own the connection; only the resolver
 * thread touches it before it is posted there.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

typedef struct race {
    px_msg_t msg;
    px_resolve_job_t job;     /* the name and, once resolved, its addresses */
    px_endpoint_t attempt_ep; /* every attempt's: its on_close is attempt_closed */
    px_endpoint_t *app_ep;    /* the application's, until the winner owns it */
    char *host;
    unsigned timeout_ms, delay_ms;
    unsigned next;    /* the next address to try */
    unsigned pending; /* attempts whose connect is in progress */
    unsigned live;    /* attempt connections not yet closed */
    unsigned busy;    /* calls on the stack that use the race */
    bool decided;     /* won, or reported as failed */
    px_timer_t delay_timer, timeout_timer;
    px_conn_t *conns[PX_CONNECT_MAX_ADDRS]; /* pending attempts */
    int errs[PX_CONNECT_MAX_ADDRS];
} race_t;

static void try_next(race_t *r, px_worker_t *w);

static race_t *race_of(px_conn_t *c)
{
    return PX_CONTAINER_OF(c->ep, race_t, attempt_ep);
}

static void race_free(race_t *r)
{
    free(r->app_ep);
    free(r->host);
    free(r);
}

static void race_msg_drop(px_msg_t *m)
{
    race_free(PX_CONTAINER_OF(m, race_t, msg));
}

static void race_maybe_free(race_t *r)
{
    if (r->decided && r->live == 0 && r->busy == 0)
        race_free(r);
}

/* End every pending attempt: their connections close without a word to the
 * application. */
static void cancel_attempts(race_t *r, int err)
{
    for (unsigned i = 0; i < r->job.n; i++) {
        px_conn_t *c = r->conns[i];
        if (c == NULL)
            continue;
        r->conns[i] = NULL;
        r->pending--;
        if (r->errs[i] == 0)
            r->errs[i] = err;
        c->busy++;
        px__conn_kill(c, err);
        c->busy--;
        px__conn_maybe_free(c);
    }
}

static void stop_timers(race_t *r, px_worker_t *w)
{
    px_timer_stop(&w->wheel, &r->delay_timer);
    px_timer_stop(&w->wheel, &r->timeout_timer);
}

/* No attempt connected: tell the application why. */
static void race_fail(race_t *r, px_worker_t *w, int err)
{
    px_connect_error_t ce = {.gai_err = r->job.gai_err, .sys_err = r->job.sys_err};
    px_handler_t *h = &r->app_ep->handler;

    r->decided = true;
    stop_timers(r, w);
    cancel_attempts(r, err ? err : -ECANCELED);
    ce.count = r->next;
    ce.addrs = r->job.addrs;
    ce.errs = r->errs;
    if (err == 0) /* the cause all attempts share, else the first one's */
        err = r->next ? r->errs[0] : -EADDRNOTAVAIL;
    ce.err = err;
    if (h->on_connect_error) {
        uint64_t t0 = px_worker_callback_enter(w);
        h->on_connect_error(r->app_ep->udata, &ce);
        px_worker_callback_leave(w, t0);
    } else if (h->on_connect_failed) {
        h->on_connect_failed(r->app_ep->udata, err);
    }
}

/* c connected first: it becomes the application's connection. */
static void race_win(race_t *r, px_conn_t *c, unsigned i)
{
    px_worker_t *w = c->w;

    r->conns[i] = NULL;
    r->pending--;
    r->live--;
    r->decided = true;
    stop_timers(r, w);
    cancel_attempts(r, -ECANCELED);
    c->state &= ~PX_CONN_ATTEMPT;
    c->state |= PX_CONN_OWNS_EP;
    c->ep = r->app_ep;
    c->idle_ms = r->app_ep->idle_timeout_ms;
    r->app_ep = NULL;
    PX_STAT_ADD(&w->stats, connects, 1);
    px__conn_start(c);
}

static void attempt_closed(px_conn_t *c, int err)
{
    race_t *r = race_of(c);
    px_worker_t *w = c->w;

    r->busy++;
    r->live--;
    /* Closed while pending, without a connect result (the worker stops): a
     * failed attempt. */
    for (unsigned i = 0; i < r->job.n; i++) {
        if (r->conns[i] != c)
            continue;
        r->conns[i] = NULL;
        r->pending--;
        r->errs[i] = err < 0 ? err : -ECANCELED;
        if (w->stopping)
            race_fail(r, w, -ECANCELED);
        else
            try_next(r, w);
    }
    r->busy--;
    race_maybe_free(r);
}

static const px_handler_t attempt_handler = {.on_close = attempt_closed};

/* Start the attempt of address i: 0 (pending, or connected and won), or -errno. */
static int attempt(race_t *r, px_worker_t *w, unsigned i)
{
    const struct sockaddr_storage *ss = &r->job.addrs[i];
    bool pending = false;
    px_conn_t *c;
    int fd, rc;

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    px__socket_tune(fd, r->app_ep->sock_flags);
    atomic_fetch_add_explicit(&w->e->connections, 1, memory_order_relaxed);
    c = px__conn_new(w, &r->attempt_ep, fd);
    if (c == NULL) {
        atomic_fetch_sub_explicit(&w->e->connections, 1, memory_order_relaxed);
        close(fd);
        return -ENOMEM;
    }
    c->state |= PX_CONN_CLIENT | PX_CONN_ATTEMPT;
    r->live++;
    c->busy++;
    rc = w->be->open(w, c);
    if (rc == 0)
        rc = px__connect_start(c, (const struct sockaddr *)ss, r->job.lens[i], &pending);
    if (rc < 0) {
        px__conn_kill(c, rc);
    } else {
        r->conns[i] = c;
        r->pending++;
        if (!pending)
            race_win(r, c, i);
    }
    c->busy--;
    px__conn_maybe_free(c);
    return rc;
}

/* Start attempts until one is pending (or won), or the addresses run out. */
static void try_next(race_t *r, px_worker_t *w)
{
    while (!r->decided && r->next < r->job.n) {
        unsigned i = r->next++;
        int rc = attempt(r, w, i);
        if (rc == 0) {
            if (!r->decided && r->next < r->job.n)
                px_timer_start(&w->wheel, &r->delay_timer, r->delay_ms);
            return;
        }
        r->errs[i] = rc;
    }
    if (!r->decided && r->pending == 0)
        race_fail(r, w, 0);
}

void px__race_attempt_done(px_conn_t *c, int res)
{
    race_t *r = race_of(c);
    px_worker_t *w = c->w;
    unsigned i;

    for (i = 0; i < r->job.n && r->conns[i] != c; i++) {
    }
    if (i == r->job.n) { /* cancelled already: it only has to close */
        c->busy++;
        px__conn_kill(c, res < 0 ? res : -ECANCELED);
        c->busy--;
        px__conn_maybe_free(c);
        return;
    }
    r->busy++;
    c->busy++;
    if (res == 0 && !(c->state & PX_CONN_DEAD)) {
        race_win(r, c, i);
    } else {
        r->conns[i] = NULL;
        r->pending--;
        r->errs[i] = res < 0 ? res : -ECANCELED;
        px__conn_kill(c, r->errs[i]);
        if (w->stopping) {
            race_fail(r, w, -ECANCELED);
        } else {
            /* A failure starts the next attempt at once (RFC 8305 5). */
            px_timer_stop(&w->wheel, &r->delay_timer);
            try_next(r, w);
        }
    }
    c->busy--;
    px__conn_maybe_free(c);
    r->busy--;
    race_maybe_free(r);
}

static void delay_expired(px_timer_t *t)
{
    race_t *r = PX_CONTAINER_OF(t, race_t, delay_timer);
    px_worker_t *w = px_worker_current();

    r->busy++;
    try_next(r, w);
    r->busy--;
    race_maybe_free(r);
}

static void timeout_expired(px_timer_t *t)
{
    race_t *r = PX_CONTAINER_OF(t, race_t, timeout_timer);
    px_worker_t *w = px_worker_current();

    r->busy++;
    if (!r->decided)
        race_fail(r, w, -ETIMEDOUT);
    r->busy--;
    race_maybe_free(r);
}

static void race_msg_fn(px_worker_t *w, px_msg_t *m)
{
    race_t *r = PX_CONTAINER_OF(m, race_t, msg);

    /* The worker's loop is over (its last messages run as it exits): nobody
     * would serve the connection. */
    if (atomic_load(&w->inbox_closed)) {
        race_free(r);
        return;
    }
    r->busy++;
    if (w->stopping) {
        race_fail(r, w, -ECANCELED);
    } else if (r->job.gai_err) {
        race_fail(r, w, -EADDRNOTAVAIL);
    } else {
        px_timer_start(&w->wheel, &r->timeout_timer, r->timeout_ms);
        try_next(r, w);
    }
    r->busy--;
    race_maybe_free(r);
}

int px_engine_connect_on(px_engine_t *e, px_worker_t *w, const char *host, int port,
                         const px_endpoint_config_t *cfg)
{
    race_t *r = calloc(1, sizeof(*r));
    int rc;

    if (r == NULL)
        return -ENOMEM;
    r->app_ep = calloc(1, sizeof(*r->app_ep));
    r->host = strdup(host ? host : "");
    if (r->app_ep == NULL || r->host == NULL) {
        race_free(r);
        return -ENOMEM;
    }
    r->app_ep->handler = *cfg->handler;
    r->app_ep->udata = cfg->udata;
    r->app_ep->sock_flags = cfg->sock_flags;
    r->app_ep->idle_timeout_ms = cfg->idle_timeout_ms;
    r->attempt_ep.handler = attempt_handler;
    r->attempt_ep.udata = r;
    r->attempt_ep.sock_flags = cfg->sock_flags;
    r->timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
                                            : PX_DEFAULT_CONNECT_TIMEOUT_MS;
    r->delay_ms = cfg->connect_delay_ms ? cfg->connect_delay_ms : PX_DEFAULT_CONNECT_DELAY_MS;
    px_timer_init(&r->delay_timer, delay_expired);
    px_timer_init(&r->timeout_timer, timeout_expired);
    px_msg_init(&r->msg, race_msg_fn, race_msg_drop);
    if (w == NULL)
        w = e->workers[atomic_fetch_add(&e->next_client_worker, 1) % (unsigned)e->nworkers];
    r->job.host = r->host;
    r->job.port = port;
    r->job.w = w;
    r->job.msg = &r->msg;
    /* A numeric address needs no lookup: straight to the worker. */
    if (px__resolve_numeric(&r->job) != EAI_NONAME) {
        px_worker_post(w, &r->msg);
        return 0;
    }
    r->job.gai_err = 0;
    rc = px__resolver_submit(e->resolver, &r->job);
    if (rc < 0)
        race_free(r);
    return rc;
}

int px_engine_connect(px_engine_t *e, const char *host, int port, const px_endpoint_config_t *cfg)
{
    return px_engine_connect_on(e, NULL, host, port, cfg);
}
