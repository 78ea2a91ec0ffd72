/*
 * The engine: configuration, backend choice, workers, servers, the main
 * thread's queue, and shutdown (clients: connect.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "px/listen_fds.h"

void px_engine_config_default(px_engine_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = PX_BACKEND_AUTO;
    cfg->max_connections = PX_DEFAULT_MAX_CONNECTIONS;
    cfg->recv_buffer_size = PX_DEFAULT_RECV_BUFFER_SIZE;
    cfg->recv_buffers = PX_DEFAULT_RECV_BUFFERS;
    cfg->send_high_water = PX_DEFAULT_SEND_HIGH_WATER;
    cfg->send_low_water = PX_DEFAULT_SEND_LOW_WATER;
    cfg->turn_budget = PX_DEFAULT_TURN_BUDGET;
    cfg->ring_entries = PX_DEFAULT_RING_ENTRIES;
    cfg->handoff_ms = PX_DEFAULT_HANDOFF_MS;
    cfg->pool_idle_ms = PX_DEFAULT_POOL_IDLE_MS;
}

static int usable_cpus(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return 1;
}

/* Where io_uring lacks something the engine needs, one line says what (and
 * that epoll serves, unless io_uring was asked for): no error code can name
 * the feature. A refusal (a sandbox, a sysctl) is the expected case for
 * PX_BACKEND_AUTO and stays quiet: px_engine_uring_error reports it. */
static void say_missing(const px_engine_t *e)
{
    fprintf(stderr, "pyparallel: io_uring lacks %s%s\n", e->uring_missing,
            e->cfg.backend == PX_BACKEND_URING ? "" : ": serving with epoll");
}

static int choose_backend(px_engine_t *e)
{
    unsigned found, missing, mask;
    int rc;

    if (e->cfg.backend == PX_BACKEND_EPOLL) {
        e->be = &px__backend_epoll;
        return 0;
    }
    mask = e->cfg.uring_mask | px_uring_mask_parse(getenv("PX_URING_MASK"));
    rc = px__uring_probe(&found);
    if (rc == 0) {
        e->uring_features = found & ~mask;
        missing = PX_URING_REQUIRED & ~e->uring_features;
        if (missing != 0) {
            e->uring_missing = px_uring_feature_name(missing & -missing);
            rc = -EOPNOTSUPP;
        }
    }
    if (rc == 0) {
        e->be = &px__backend_uring;
        return 0;
    }
    e->uring_err = rc;
    if (e->uring_missing)
        say_missing(e);
    if (e->cfg.backend == PX_BACKEND_URING)
        return rc;
    e->be = &px__backend_epoll;
    return 0;
}

static void destroy_workers(px_engine_t *e)
{
    int i;

    for (i = 0; i < e->nworkers; i++) {
        if (e->workers[i] != NULL)
            px__worker_destroy(e->workers[i]);
        e->workers[i] = NULL;
    }
}

static int create_workers(px_engine_t *e)
{
    int i, rc;

    for (i = 0; i < e->nworkers; i++) {
        rc = px__worker_create(e, i, &e->workers[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int px_engine_create(const px_engine_config_t *cfg, const px_thread_hooks_t *hooks,
                     px_engine_t **out)
{
    px_engine_t *e = calloc(1, sizeof(*e));
    int rc;

    if (e == NULL)
        return -ENOMEM;
    e->cfg = *cfg;
    px_clock_init(); /* latencies are timed with it */
    if (e->cfg.recv_buffers == 0 || (e->cfg.recv_buffers & (e->cfg.recv_buffers - 1))) {
        free(e);
        return -EINVAL;
    }
    if (hooks)
        e->hooks = *hooks;
    e->nworkers = cfg->workers > 0 ? cfg->workers : usable_cpus();
    px__budget_init(e);
    pthread_mutex_init(&e->lock, NULL);
    px__threads_init(e);
    px_mpsc_init(&e->main_q);
    e->main_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->main_fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = px__resolver_create(&e->resolver);
    if (rc < 0)
        goto fail;
    rc = choose_backend(e);
    if (rc < 0)
        goto fail;
    e->workers = calloc((size_t)e->nworkers, sizeof(*e->workers));
    if (e->workers == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = create_workers(e);
    if (rc < 0 && e->be == &px__backend_uring && e->cfg.backend == PX_BACKEND_AUTO) {
        /* The probe's small ring worked, the workers' did not (their size,
         * locked memory): epoll serves rather than nobody. */
        destroy_workers(e);
        e->uring_err = rc;
        e->be = &px__backend_epoll;
        fprintf(stderr, "pyparallel: io_uring worker set-up failed (%s): serving with epoll\n",
                strerror(-rc));
        rc = create_workers(e);
    }
    if (rc < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    px_engine_destroy(e);
    return rc;
}

static int dup_listener(int fd)
{
    int rc = fcntl(fd, F_DUPFD_CLOEXEC, 3);

    return rc < 0 ? -errno : rc;
}

/* A Unix domain socket: no worker can bind a twin of it (SO_REUSEPORT is
 * for ports), so every worker accepts on a duplicate of the one given. */
static bool is_local_socket(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_UNIX;
}

static void arm_listener(px_worker_t *w, px_msg_t *m)
{
    px_listener_t *l = PX_CONTAINER_OF(m, px_listener_t, arm_msg);
    int rc;

    if (w->stopping || l->closed)
        return;
    rc = w->be->listen(w, l);
    if (rc < 0)
        PX_STAT_ADD(&w->stats, errors, 1);
}

int px_engine_listen(px_engine_t *e, const char *host, int port, const px_endpoint_config_t *cfg,
                     px_server_t **out)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = 0;
    px_server_t *s;
    int group[PX_LISTEN_GROUP_MAX];
    int i, rc, ngroup = 0;
    bool local = cfg->listen_fd >= 0 && is_local_socket(cfg->listen_fd);

    rc = local ? 0 : px__resolve(host, port, &ss, &len, true);
    if (rc < 0)
        return rc;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->e = e;
    s->ep.handler = *cfg->handler;
    s->ep.udata = cfg->udata;
    s->ep.sock_flags = cfg->sock_flags;
    s->ep.idle_timeout_ms = cfg->idle_timeout_ms;
    if (cfg->proxy_protocol)
        s->ep.proxy_timeout_ms = cfg->proxy_timeout_ms ? cfg->proxy_timeout_ms
                                                       : PX_DEFAULT_PROXY_TIMEOUT_MS;
    /* An inherited socket (px/listen_fds.h): its group serves, nothing binds. */
    if (cfg->listen_fd >= 0) {
        ngroup = px_listen_fds_group(cfg->listen_fd, group, PX_LISTEN_GROUP_MAX);
        if (ngroup < 0)
            ngroup = 0;
        if (ngroup == 0 && local) {
            group[0] = cfg->listen_fd;
            ngroup = 1;
        }
    }
    s->nlisteners = ngroup > e->nworkers ? ngroup : e->nworkers;
    s->listeners = calloc((size_t)s->nlisteners, sizeof(*s->listeners));
    if (s->listeners == NULL) {
        free(s);
        return -ENOMEM;
    }
    for (i = 0; i < s->nlisteners; i++)
        s->listeners[i].fd = -1;
    for (i = 0; i < s->nlisteners; i++) {
        /* Port 0: the first socket picks a port, the others join it. The
         * first owns the port unless sharing it was asked for. Inherited
         * sockets are shared by several workers when fewer than workers, and
         * a worker serves several when more: none is left unserved. */
        if (ngroup > 0)
            rc = dup_listener(group[i % ngroup]);
        else if (i == 0 && cfg->listen_fd >= 0)
            rc = cfg->listen_fd;
        else
            rc = px__listen_socket((struct sockaddr *)&ss, len,
                                   cfg->backlog > 0 ? cfg->backlog : PX_DEFAULT_BACKLOG,
                                   i > 0 || cfg->reuse_port);
        if (rc < 0)
            goto fail;
        s->listeners[i].fd = rc;
        s->listeners[i].inherited = ngroup > 0;
        if (i == 0 && !local) {
            rc = px__socket_port(s->listeners[0].fd);
            if (rc < 0)
                goto fail;
            s->port = rc;
            if (ss.ss_family == AF_INET6)
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)rc);
            else
                ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)rc);
        }
        s->listeners[i].w = e->workers[i % e->nworkers];
        s->listeners[i].server = s;
        px_msg_init(&s->listeners[i].arm_msg, arm_listener, NULL);
        px_timer_init(&s->listeners[i].backoff_timer, px__listener_rearm);
    }
    if (ngroup > 0)
        close(cfg->listen_fd); /* taken: the listeners hold the group's duplicates */
    pthread_mutex_lock(&e->lock);
    s->next = e->servers;
    e->servers = s;
    pthread_mutex_unlock(&e->lock);
    for (i = 0; i < s->nlisteners; i++)
        px_worker_post(s->listeners[i].w, &s->listeners[i].arm_msg);
    if (out)
        *out = s;
    return s->port;
fail:
    for (i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].fd >= 0 && (i > 0 || s->listeners[i].fd != cfg->listen_fd))
            close(s->listeners[i].fd);
    free(s->listeners);
    free(s);
    return rc;
}

int px_engine_start(px_engine_t *e)
{
    int i, rc = 0;

    pthread_mutex_lock(&e->lock);
    if (e->started) {
        pthread_mutex_unlock(&e->lock);
        return -EALREADY;
    }
    e->started = true;
    for (i = 0; i < e->nworkers; i++) {
        atomic_fetch_add(&e->running_workers, 1);
        rc = px__thread_spawn(e, e->workers[i]);
        if (rc < 0) {
            atomic_fetch_sub(&e->running_workers, 1);
            break;
        }
    }
    if (rc == 0)
        rc = px__supervisor_start(e);
    pthread_mutex_unlock(&e->lock);
    if (rc < 0)
        px_engine_shutdown(e, 0);
    return rc;
}

void px_engine_shutdown(px_engine_t *e, unsigned timeout_ms)
{
    int i;

    for (i = 0; i < e->nworkers; i++)
        px__worker_stop(e->workers[i], timeout_ms);
}

void px_engine_drain(px_engine_t *e, unsigned grace_ms, unsigned timeout_ms)
{
    int i;

    for (i = 0; i < e->nworkers; i++)
        px__worker_drain(e->workers[i], grace_ms, timeout_ms);
}

void px_engine_announce_stop(px_engine_t *e)
{
    atomic_store(&e->announce_stop, true);
}

int px_engine_listen_fds(px_engine_t *e, int *out, int max)
{
    px_server_t *s, *order[64];
    int i, n = 0, nservers = 0;

    pthread_mutex_lock(&e->lock);
    for (s = e->servers; s && nservers < 64; s = s->next)
        order[nservers++] = s;
    /* Oldest server first: the order the next process listens in. */
    while (nservers-- > 0) {
        s = order[nservers];
        for (i = 0; i < s->nlisteners; i++) {
            if (s->listeners[i].fd < 0 || s->listeners[i].closed)
                continue;
            if (n == max) {
                n = -ENOSPC;
                goto out;
            }
            out[n++] = s->listeners[i].fd;
        }
    }
out:
    pthread_mutex_unlock(&e->lock);
    return n;
}

bool px_engine_finished(px_engine_t *e)
{
    return atomic_load(&e->running_workers) == 0;
}

int px_engine_join(px_engine_t *e)
{
    px__threads_join(e);
    return 0;
}

void px_engine_destroy(px_engine_t *e)
{
    px_server_t *s, *next;
    px_mpsc_node_t *n;
    int i;

    if (e == NULL)
        return;
    px_engine_join(e);
    /* No lookup posts to a worker from here on. */
    px__resolver_close(e->resolver);
    e->resolver = NULL;
    /* Messages that never reached a running worker go first: some live inside
     * the servers freed below (a listener's arm message). */
    for (i = 0; e->workers && i < e->nworkers; i++) {
        if (e->workers[i] == NULL)
            continue;
        while ((n = px_mpsc_pop(&e->workers[i]->inbox)) != NULL)
            px_msg_drop(PX_CONTAINER_OF(n, px_msg_t, node));
    }
    for (s = e->servers; s; s = next) {
        next = s->next;
        for (i = 0; i < s->nlisteners; i++)
            if (s->listeners[i].fd >= 0)
                close(s->listeners[i].fd);
        free(s->listeners);
        free(s);
    }
    for (i = 0; e->workers && i < e->nworkers; i++) {
        if (e->workers[i] != NULL)
            px__worker_destroy(e->workers[i]);
    }
    free(e->workers);
    px_engine_main_discard(e);
    if (e->main_fd >= 0)
        close(e->main_fd);
    px__threads_destroy(e);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

int px_engine_worker_count(const px_engine_t *e)
{
    return e->nworkers;
}
px_worker_t *px_engine_worker(px_engine_t *e, int i)
{
    return e->workers[i];
}
const char *px_engine_backend_name(const px_engine_t *e)
{
    return e->be->name;
}
unsigned px_engine_handoff_ms(const px_engine_t *e)
{
    return e->cfg.handoff_ms;
}

int px_engine_uring_error(const px_engine_t *e)
{
    return e->uring_err;
}
unsigned px_engine_uring_features(const px_engine_t *e)
{
    return e->uring_features;
}
const char *px_engine_uring_missing(const px_engine_t *e)
{
    return e->uring_missing;
}

void px_engine_post_main(px_engine_t *e, px_msg_t *m)
{
    px_mpsc_push(&e->main_q, &m->node);
    px__wake(e->main_fd, &e->main_wake_pending);
}

int px_engine_main_fd(const px_engine_t *e)
{
    return e->main_fd;
}

px_msg_t *px_engine_main_pop(px_engine_t *e)
{
    px_mpsc_node_t *n = px_mpsc_pop(&e->main_q);

    if (n == NULL) {
        px__wake_ack(e->main_fd, &e->main_wake_pending);
        n = px_mpsc_pop(&e->main_q); /* pushed between the pop and the ack */
        if (n == NULL)
            return NULL;
    }
    return PX_CONTAINER_OF(n, px_msg_t, node);
}

void px_engine_main_discard(px_engine_t *e)
{
    px_mpsc_node_t *n;

    while ((n = px_mpsc_pop(&e->main_q)) != NULL)
        px_msg_drop(PX_CONTAINER_OF(n, px_msg_t, node));
}
