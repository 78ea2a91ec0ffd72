/*
 * The load generator's run: configuration, the engine and its workers, the
 * phases (connect, run, over) driven from the controlling thread, and the
 * results gathered from every worker at the end.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "internal.h"

#define START_DELAY_NS 1000000u /* from the end of the connect phase to request 0 */

void px_lg_config_default(px_lg_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->port = 80;
    cfg->rate = 1000;
    cfg->duration = 10;
    cfg->connections = 10;
    cfg->timeout_ms = 2000;
    cfg->workers = 1;
    cfg->backend = PX_BACKEND_AUTO;
}

/* ---- signals from the workers ------------------------------------------- */

static void wake_controller(px_lg_t *lg)
{
    pthread_mutex_lock(&lg->lock);
    pthread_cond_broadcast(&lg->cond);
    pthread_mutex_unlock(&lg->lock);
}

void px__lg_settled(px_lg_t *lg)
{
    if (atomic_fetch_add(&lg->settled, 1) + 1 == lg->nconns)
        wake_controller(lg);
}

void px__lg_done(px_lg_t *lg)
{
    if (atomic_fetch_add(&lg->done, 1) + 1 == lg->nconns)
        wake_controller(lg);
}

/* ---- messages to the workers --------------------------------------------- */

/* Open every connection of the worker (the connect phase). */
static void open_fn(px_worker_t *w, px_msg_t *m)
{
    lg_worker_t *lw = PX_CONTAINER_OF(m, lg_worker_t, open_msg);

    (void)w;
    for (unsigned i = 0; i < lw->nconns; i++)
        if (!lw->conns[i]->finished)
            px__lg_conn_connect(lw->conns[i]);
}

/* The schedule has a start: every connection arms its first request. */
static void begin_fn(px_worker_t *w, px_msg_t *m)
{
    lg_worker_t *lw = PX_CONTAINER_OF(m, lg_worker_t, begin_msg);
    uint64_t now = px_now_ns();

    (void)w;
    lw->begun = true;
    for (unsigned i = 0; i < lw->nconns; i++)
        px__lg_conn_kick(lw->conns[i], now);
}

static void finish_fn(px_worker_t *w, px_msg_t *m)
{
    lg_worker_t *lw = PX_CONTAINER_OF(m, lg_worker_t, finish_msg);

    (void)w;
    lw->finishing = true;
    for (unsigned i = 0; i < lw->nconns; i++)
        px__lg_conn_finish(lw->conns[i]);
}

/* Precise pacing needs precise sleeps: the default timer slack (50 us) would
 * make every wake-up late by up to that much. */
static void thread_start(px_worker_t *w, void *arg)
{
    (void)w;
    (void)arg;
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

/* ---- configuration ------------------------------------------------------- */

static int check_config(const px_lg_config_t *cfg)
{
    if (cfg->host == NULL || cfg->request == NULL || cfg->request_len == 0)
        return -EINVAL;
    if (cfg->port <= 0 || cfg->port > 65535)
        return -EINVAL;
    /* isfinite rejects NaN and infinities; the product bounds the schedule. */
    if (!isfinite(cfg->rate) || !isfinite(cfg->duration) || cfg->rate <= 0 || cfg->duration <= 0 ||
        cfg->rate * cfg->duration >= 1e12)
        return -EINVAL;
    if (cfg->connections == 0 || cfg->connections > 1000000 || cfg->timeout_ms == 0)
        return -EINVAL;
    if (cfg->workers < 0 || cfg->workers > 1024)
        return -EINVAL;
    return 0;
}

static int resolve(px_lg_t *lg)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char port[16];
    int rc;

    snprintf(port, sizeof(port), "%d", lg->cfg.port);
    rc = getaddrinfo(lg->cfg.host, port, &hints, &ai);
    if (rc != 0)
        return rc == EAI_MEMORY ? -ENOMEM : rc == EAI_SYSTEM ? -errno : -ENOENT;
    memcpy(&lg->addr, ai->ai_addr, ai->ai_addrlen);
    lg->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int px_lg_create(const px_lg_config_t *cfg, px_lg_t **out)
{
    px_engine_config_t ecfg;
    px_thread_hooks_t hooks = {.thread_start = thread_start};
    px_lg_t *lg;
    uint64_t per, extra;
    int rc, i;

    if ((rc = check_config(cfg)) < 0)
        return rc;
    lg = calloc(1, sizeof(*lg));
    if (lg == NULL)
        return -ENOMEM;
    px__hdr_init(&lg->latency);
    lg->cfg = *cfg;
    pthread_mutex_init(&lg->lock, NULL);
    {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&lg->cond, &attr);
        pthread_condattr_destroy(&attr);
    }
    lg->request = malloc(cfg->request_len);
    if (lg->request == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    memcpy(lg->request, cfg->request, cfg->request_len);
    lg->cfg.request = lg->request;
    if ((rc = resolve(lg)) < 0)
        goto fail;
    lg->cfg.host = NULL; /* the caller's string is not kept: the address is */
    lg->scheduled = (uint64_t)llround(cfg->rate * cfg->duration);
    if (lg->scheduled == 0)
        lg->scheduled = 1;
    lg->ns_per_request = 1e9 / cfg->rate;
    lg->nconns = (unsigned)PX_MIN((uint64_t)cfg->connections, lg->scheduled);

    px_engine_config_default(&ecfg);
    ecfg.workers = cfg->workers;
    ecfg.backend = cfg->backend;
    rc = px_engine_create(&ecfg, &hooks, &lg->e);
    if (rc < 0)
        goto fail;
    lg->nworkers = px_engine_worker_count(lg->e);
    lg->workers = calloc((size_t)lg->nworkers, sizeof(*lg->workers));
    lg->conns = calloc(lg->nconns, sizeof(*lg->conns));
    if (lg->workers == NULL || lg->conns == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    for (i = 0; i < lg->nworkers; i++) {
        lg_worker_t *lw = calloc(1, sizeof(*lw));
        unsigned n = lg->nconns / (unsigned)lg->nworkers +
                     ((unsigned)i < lg->nconns % (unsigned)lg->nworkers);
        if (lw == NULL || (lw->conns = calloc(n ? n : 1, sizeof(*lw->conns))) == NULL) {
            free(lw);
            rc = -ENOMEM;
            goto fail;
        }
        lw->lg = lg;
        lw->w = px_engine_worker(lg->e, i);
        px__hdr_init(&lw->hist);
        lg->workers[i] = lw;
    }
    /* Request s belongs to connection s % C, connection k to worker k % K. */
    per = lg->scheduled / lg->nconns;
    extra = lg->scheduled % lg->nconns;
    for (unsigned k = 0; k < lg->nconns; k++) {
        lg_worker_t *lw = lg->workers[k % (unsigned)lg->nworkers];
        px__lg_conn_init(&lg->conns[k], lw, k, per + (k < extra));
        lw->conns[lw->nconns++] = &lg->conns[k];
    }
    *out = lg;
    return 0;
fail:
    px_lg_destroy(lg);
    return rc;
}

int px_lg_start(px_lg_t *lg)
{
    int rc;

    if (lg->started)
        return -EALREADY;
    rc = px_engine_start(lg->e);
    if (rc < 0)
        return rc;
    lg->started = true;
    lg->phase = LG_PHASE_CONNECT;
    lg->connect_deadline = px_now_ns() + (uint64_t)lg->cfg.timeout_ms * 1000000u;
    for (int i = 0; i < lg->nworkers; i++) {
        lg->workers[i]->open_msg.fn = open_fn;
        px_worker_post(lg->workers[i]->w, &lg->workers[i]->open_msg);
    }
    return 0;
}

/* Fix the schedule's start and tell every worker. */
static void begin_schedule(px_lg_t *lg)
{
    uint64_t t0 = px_now_ns() + START_DELAY_NS;

    atomic_store(&lg->t0, t0);
    lg->hard_deadline = t0 + (uint64_t)(lg->cfg.duration * 1e9) +
                        (uint64_t)lg->cfg.timeout_ms * 1000000u;
    lg->phase = LG_PHASE_RUN;
    for (int i = 0; i < lg->nworkers; i++) {
        lg->workers[i]->begin_msg.fn = begin_fn;
        px_worker_post(lg->workers[i]->w, &lg->workers[i]->begin_msg);
    }
}

void px_lg_stop(px_lg_t *lg)
{
    atomic_store(&lg->stop, true);
    wake_controller(lg);
}

static bool phase_done(px_lg_t *lg, uint64_t now)
{
    if (lg->phase == LG_PHASE_CONNECT)
        return atomic_load(&lg->settled) >= lg->nconns || now >= lg->connect_deadline;
    return atomic_load(&lg->done) >= lg->nconns || now >= lg->hard_deadline;
}

int px_lg_wait(px_lg_t *lg, unsigned timeout_ms)
{
    uint64_t now = px_now_ns(), until = now + (uint64_t)timeout_ms * 1000000u;

    if (!lg->started)
        return -EINVAL;
    for (;;) {
        uint64_t wake;
        struct timespec ts;

        if (lg->phase == LG_PHASE_OVER)
            return 1;
        if (atomic_load(&lg->stop)) {
            lg->phase = LG_PHASE_OVER;
            continue;
        }
        if (phase_done(lg, now)) {
            if (lg->phase == LG_PHASE_CONNECT)
                begin_schedule(lg);
            else
                lg->phase = LG_PHASE_OVER;
            continue;
        }
        if (now >= until)
            return 0;
        wake = PX_MIN(until,
                      lg->phase == LG_PHASE_CONNECT ? lg->connect_deadline : lg->hard_deadline);
        ts.tv_sec = (time_t)(wake / 1000000000u);
        ts.tv_nsec = (long)(wake % 1000000000u);
        pthread_mutex_lock(&lg->lock);
        /* The workers signal under the lock: re-check before sleeping. */
        if (!atomic_load(&lg->stop) && !phase_done(lg, px_now_ns()))
            pthread_cond_timedwait(&lg->cond, &lg->lock, &ts);
        pthread_mutex_unlock(&lg->lock);
        now = px_now_ns();
    }
}

static void merge_worker(px_lg_t *lg, px_lg_result_t *res, const lg_worker_t *lw, uint64_t *lag_sum,
                         uint64_t *last)
{
    px__hdr_merge(&lg->latency, &lw->hist);
    res->responses += lw->responses;
    res->non_2xx_3xx += lw->non_2xx_3xx;
    res->err_connect += lw->failed[LG_FAIL_CONNECT];
    res->err_read += lw->failed[LG_FAIL_READ];
    res->err_write += lw->failed[LG_FAIL_WRITE];
    res->err_timeout += lw->failed[LG_FAIL_TIMEOUT];
    res->err_parse += lw->failed[LG_FAIL_PARSE];
    res->sent += lw->sent;
    res->connects += lw->connects;
    res->connect_errors += lw->connect_errors;
    res->protocol_errors += lw->protocol_errors;
    res->bytes_read += lw->bytes_read;
    res->send_lag_max_ns = PX_MAX(res->send_lag_max_ns, lw->send_lag_max_ns);
    *lag_sum += lw->send_lag_sum_ns;
    *last = PX_MAX(*last, lw->last_response_ns);
}

int px_lg_finish(px_lg_t *lg, px_lg_result_t *res)
{
    uint64_t lag_sum = 0, last = 0, t0;

    if (!lg->started || lg->phase != LG_PHASE_OVER)
        return -EINVAL;
    if (!lg->finished_run) {
        lg->finish_ns = px_now_ns();
        for (int i = 0; i < lg->nworkers; i++) {
            lg->workers[i]->finish_msg.fn = finish_fn;
            px_worker_post(lg->workers[i]->w, &lg->workers[i]->finish_msg);
        }
        px_engine_shutdown(lg->e, 200);
        px_engine_join(lg->e);
        lg->finished_run = true;
    }
    memset(res, 0, sizeof(*res));
    px__hdr_init(&lg->latency);
    for (int i = 0; i < lg->nworkers; i++)
        merge_worker(lg, res, lg->workers[i], &lag_sum, &last);
    res->latency.count = lg->latency.total;
    res->latency.min = lg->latency.total ? lg->latency.min : 0;
    res->latency.max = lg->latency.max;
    res->latency.mean = px__hdr_mean(&lg->latency);
    res->latency.stdev = px__hdr_stdev(&lg->latency);
    /* What was never answered. After a full run every request was due a
     * timeout ago at least: a timeout. A stop cuts the rest off. */
    t0 = atomic_load(&lg->t0);
    res->interrupted = atomic_load(&lg->stop);
    for (unsigned k = 0; k < lg->nconns; k++) {
        lg_conn_t *lc = &lg->conns[k];
        if (res->interrupted)
            res->cancelled += lc->total - lc->resolved;
        else
            res->err_timeout += lc->total - lc->resolved;
    }
    res->scheduled = lg->scheduled;
    res->connections = lg->nconns;
    res->workers = lg->nworkers;
    res->backend = px_engine_backend_name(lg->e);
    res->send_lag_mean_ns = res->sent ? (double)lag_sum / (double)res->sent : 0.0;
    if (t0 != 0)
        res->elapsed_ns = (res->responses ? last : lg->finish_ns) - t0;
    return 0;
}

uint64_t px_lg_latency_at(const px_lg_t *lg, double percentile)
{
    return px__hdr_value_at(&lg->latency, percentile);
}

size_t px_lg_latency_spectrum(const px_lg_t *lg, unsigned ticks_per_half, px_lg_point_t *out,
                              size_t cap)
{
    return px__hdr_spectrum(&lg->latency, ticks_per_half, out, cap);
}

void px_lg_destroy(px_lg_t *lg)
{
    if (lg == NULL)
        return;
    if (lg->e != NULL) {
        if (lg->started && !lg->finished_run) {
            px_engine_shutdown(lg->e, 0);
            px_engine_join(lg->e);
        }
        px_engine_destroy(lg->e);
    }
    for (int i = 0; lg->workers != NULL && i < lg->nworkers; i++) {
        if (lg->workers[i] != NULL)
            free(lg->workers[i]->conns);
        free(lg->workers[i]);
    }
    for (unsigned k = 0; lg->conns != NULL && k < lg->nconns; k++)
        px__lg_conn_free(&lg->conns[k]);
    free(lg->workers);
    free(lg->conns);
    free(lg->request);
    pthread_cond_destroy(&lg->cond);
    pthread_mutex_destroy(&lg->lock);
    free(lg);
}
