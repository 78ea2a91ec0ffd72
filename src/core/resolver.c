/*
 * Name lookups off the workers. getaddrinfo blocks (DNS, files), so a name
 * that is not a numeric address goes to the engine's resolver threads:
 * started on demand (at most PX_RESOLVER_THREADS at once), each exits after
 * RESOLVER_IDLE_MS without work. A finished lookup is posted to the worker
 * that asked for it.
 *
 * A lookup cannot be interrupted, so the engine never waits for one: at
 * destroy, the queued jobs are dropped and the threads busy in getaddrinfo
 * finish on their own, holding a reference to the resolver (not the engine);
 * their results are dropped then. The last reference frees the resolver.
 *
 * Test hooks (environment, read when the engine is created):
 *   PX_TEST_RESOLVE="name=addr,addr;other="  answers those names with these
 *       numeric addresses (none: EAI_NONAME), in this order, no lookup;
 *   PX_TEST_RESOLVE_DELAY_MS=N  every lookup takes N ms more.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RESOLVER_IDLE_MS 2000

struct px_resolver {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    px_resolve_job_t *head, *tail; /* lock */
    unsigned queued;               /* lock: jobs in the queue */
    unsigned threads, idle;        /* lock */
    unsigned refs;                 /* lock: the engine's, and one per thread */
    bool closed;                   /* lock: the engine is gone */
    char *fake;                    /* PX_TEST_RESOLVE */
    unsigned delay_ms;             /* PX_TEST_RESOLVE_DELAY_MS */
};

/* The RFC 8305 section 4 order: families alternate, starting with the family
 * of the first address getaddrinfo gave; each family keeps its own order. */
static void interleave(px_resolve_job_t *job)
{
    struct sockaddr_storage addrs[PX_CONNECT_MAX_ADDRS];
    socklen_t lens[PX_CONNECT_MAX_ADDRS];
    unsigned first[PX_CONNECT_MAX_ADDRS], other[PX_CONNECT_MAX_ADDRS];
    unsigned i, nf = 0, no = 0, n = 0;

    for (i = 0; i < job->n; i++) {
        if (job->addrs[i].ss_family == job->addrs[0].ss_family)
            first[nf++] = i;
        else
            other[no++] = i;
    }
    for (i = 0; i < nf || i < no; i++) {
        if (i < nf) {
            addrs[n] = job->addrs[first[i]];
            lens[n++] = job->lens[first[i]];
        }
        if (i < no) {
            addrs[n] = job->addrs[other[i]];
            lens[n++] = job->lens[other[i]];
        }
    }
    memcpy(job->addrs, addrs, sizeof(addrs[0]) * n);
    memcpy(job->lens, lens, sizeof(lens[0]) * n);
}

static int lookup(const char *host, int port, int flags, px_resolve_job_t *job)
{
    struct addrinfo hints, *res = NULL, *ai;
    char service[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | flags;
    snprintf(service, sizeof(service), "%d", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        job->sys_err = rc == EAI_SYSTEM ? errno : 0;
        return rc;
    }
    for (ai = res; ai != NULL && job->n < PX_CONNECT_MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(job->addrs[0]))
            continue;
        memcpy(&job->addrs[job->n], ai->ai_addr, ai->ai_addrlen);
        job->lens[job->n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    return 0;
}

/* A name PX_TEST_RESOLVE answers: 1 (job filled, maybe with EAI_NONAME), or 0. */
static int fake_lookup(const char *fake, px_resolve_job_t *job)
{
    size_t hl = strlen(job->host);
    const char *p = fake;

    while (p != NULL && *p) {
        const char *end = strchr(p, ';'), *eq = strchr(p, '=');
        if (end == NULL)
            end = p + strlen(p);
        if (eq != NULL && eq < end && (size_t)(eq - p) == hl && memcmp(p, job->host, hl) == 0) {
            const char *a = eq + 1;
            while (a < end) {
                const char *comma = memchr(a, ',', (size_t)(end - a));
                char addr[64];
                size_t len = (size_t)((comma ? comma : end) - a);
                if (len > 0 && len < sizeof(addr)) {
                    memcpy(addr, a, len);
                    addr[len] = '\0';
                    lookup(addr, job->port, AI_NUMERICHOST, job);
                }
                a += len + 1;
            }
            job->gai_err = job->n ? 0 : EAI_NONAME;
            return 1;
        }
        p = *end ? end + 1 : NULL;
    }
    return 0;
}

int px__resolve_numeric(px_resolve_job_t *job)
{
    const char *host = job->host && job->host[0] ? job->host : NULL;

    job->n = 0;
    job->gai_err = lookup(host, job->port, AI_NUMERICHOST, job);
    if (job->gai_err == 0)
        interleave(job);
    return job->gai_err;
}

static void resolve(px_resolver_t *r, px_resolve_job_t *job)
{
    if (r->delay_ms) {
        struct timespec ts = {r->delay_ms / 1000, (long)(r->delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
    job->n = 0;
    if (r->fake == NULL || !fake_lookup(r->fake, job))
        job->gai_err = lookup(job->host, job->port, 0, job);
    if (job->gai_err == 0)
        interleave(job);
}

static void resolver_unref_locked(px_resolver_t *r)
{
    bool last = --r->refs == 0;

    pthread_mutex_unlock(&r->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->fake);
    free(r);
}

static void *resolver_main(void *arg)
{
    px_resolver_t *r = arg;

    pthread_mutex_lock(&r->lock);
    for (;;) {
        px_resolve_job_t *job;
        while (r->head == NULL && !r->closed) {
            struct timespec until;
            int rc;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += RESOLVER_IDLE_MS / 1000;
            r->idle++;
            rc = pthread_cond_timedwait(&r->cond, &r->lock, &until);
            r->idle--;
            if (rc == ETIMEDOUT && r->head == NULL)
                break;
        }
        job = r->head;
        if (job == NULL || r->closed)
            break;
        r->head = job->next;
        r->queued--;
        if (r->head == NULL)
            r->tail = NULL;
        pthread_mutex_unlock(&r->lock);
        resolve(r, job);
        pthread_mutex_lock(&r->lock);
        if (r->closed)
            px_msg_drop(job->msg); /* the engine is gone: nobody takes the result */
        else
            px_worker_post(job->w, job->msg);
    }
    r->threads--;
    resolver_unref_locked(r);
    return NULL;
}

int px__resolver_create(px_resolver_t **out)
{
    px_resolver_t *r = calloc(1, sizeof(*r));
    const char *fake = getenv("PX_TEST_RESOLVE"), *delay = getenv("PX_TEST_RESOLVE_DELAY_MS");

    if (r == NULL)
        return -ENOMEM;
    if (fake != NULL && (r->fake = strdup(fake)) == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->delay_ms = delay ? (unsigned)strtoul(delay, NULL, 10) : 0;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->refs = 1;
    *out = r;
    return 0;
}

int px__resolver_submit(px_resolver_t *r, px_resolve_job_t *job)
{
    int rc = 0;

    job->next = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->closed) {
        pthread_mutex_unlock(&r->lock);
        return -ESHUTDOWN;
    }
    /* Every queued job gets a thread of its own, up to the cap: a slow name
     * does not hold up the next. */
    if (r->queued + 1 > r->idle && r->threads < PX_RESOLVER_THREADS) {
        pthread_attr_t attr;
        pthread_t tid;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = -pthread_create(&tid, &attr, resolver_main, r);
        pthread_attr_destroy(&attr);
        if (rc == 0) {
            r->threads++;
            r->refs++;
        } else if (r->threads > 0) {
            rc = 0; /* the threads there will get to it */
        }
    }
    if (rc == 0) {
        if (r->tail)
            r->tail->next = job;
        else
            r->head = job;
        r->tail = job;
        r->queued++;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void px__resolver_close(px_resolver_t *r)
{
    px_resolve_job_t *job, *next;

    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->closed = true;
    job = r->head;
    r->head = r->tail = NULL;
    r->queued = 0;
    pthread_cond_broadcast(&r->cond);
    resolver_unref_locked(r);
    for (; job != NULL; job = next) {
        next = job->next;
        px_msg_drop(job->msg);
    }
}
