/*
 * The process-wide memory budget: request bodies (charged by the application)
 * and unsent output (the chunks queued on connections) across every worker.
 *
 * Cheap on the hot path: a worker owns its figures and adds nothing per send;
 * when it takes its pool figures (every 64 turns, at least every 100 ms) it
 * compares what it holds with what it last published to the engine's atomic
 * total and publishes only a move of budget_step or more, so the total is
 * exact to within one step per worker (and that long ago). A worker admitting
 * a body counts its own figure exactly. Over budget, each worker
 * closes its own slowest readers (most unsent output, waiting longest) until
 * it has given back its share of the excess.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SHED_INTERVAL_MS 20   /* how often a worker over budget looks for slow readers */
#define SHED_MAX 64           /* connections closed per look, at most */
#define SHED_MIN_STALL_MS 200 /* a reader is slow once its output stood still this long */
#define RECHECK_MS 100        /* over budget: the longest a worker waits to look again */
#define STEP_MIN ((int64_t)16 << 10)
#define STEP_MAX ((int64_t)1 << 20)

/* The cgroup (v2) memory limit of this process, or 0 when none is readable. */
static size_t cgroup_limit(void)
{
    char buf[64];
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "re");
    unsigned long long v = 0;

    if (f == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) == NULL || sscanf(buf, "%llu", &v) != 1)
        v = 0; /* "max": no limit */
    fclose(f);
    return (size_t)v;
}

size_t px_memory_budget_default(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t mem = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
    size_t cg = cgroup_limit();

    if (cg > 0 && (mem == 0 || cg < mem))
        mem = cg;
    return PX_MAX(mem / 4, PX_MIN_MEMORY_BUDGET);
}

void px__budget_init(px_engine_t *e)
{
    size_t budget = e->cfg.memory_budget ? e->cfg.memory_budget : px_memory_budget_default();
    int64_t step;

    e->cfg.memory_budget = budget;
    e->budget = budget > (size_t)INT64_MAX ? INT64_MAX : (int64_t)budget;
    /* Workers together may be off by a step each: an eighth of the budget. */
    step = e->budget / 8 / (e->nworkers > 0 ? e->nworkers : 1);
    e->budget_step = PX_MIN(PX_MAX(step, STEP_MIN), STEP_MAX);
    atomic_init(&e->budget_used, 0);
}

size_t px_engine_memory_budget(const px_engine_t *e)
{
    return e->cfg.memory_budget;
}

/* What w holds now: the chunks of its output queues and held input, and the
 * bodies its connections' application charged. */
static int64_t held(const px_worker_t *w)
{
    return (int64_t)(w->chunk_pool.in_use * w->chunk_pool.obj_size) + w->body_bytes;
}

static void publish(px_worker_t *w, int64_t now_held)
{
    atomic_fetch_add_explicit(&w->e->budget_used, now_held - w->budget_published,
                              memory_order_relaxed);
    w->budget_published = now_held;
}

void px_conn_charge(px_conn_t *c, int64_t delta)
{
    c->w->body_bytes += delta;
}

bool px_conn_over_budget(const px_conn_t *c, size_t more)
{
    const px_worker_t *w = c->w;
    int64_t used = atomic_load_explicit(&w->e->budget_used, memory_order_relaxed);

    /* This worker's own figure exactly, the others' as last published. */
    used += held(w) - w->budget_published;
    if (used < 0)
        used = 0; /* figures published by steps may lag below zero */
    /* Compared by difference: used + more may not fit in 64 bits. */
    return used > w->e->budget || more > (size_t)(w->e->budget - used);
}

/* Unsent output in memory (file ranges cost no memory). */
static int64_t unsent_memory(const px_conn_t *c)
{
    int64_t n = 0;

    for (const px_seg_t *s = c->out_head; s != NULL; s = s->next)
        if (s->fd < 0)
            n += (int64_t)(s->len - s->off);
    return n;
}

/* The connection to close first: the most unsent output, weighted by how long
 * its peer has not taken any of it; NULL when no peer left its output alone
 * for SHED_MIN_STALL_MS (output merely in flight is no reason to close). */
static px_conn_t *slowest_reader(px_worker_t *w, int64_t *bytes)
{
    px_conn_t *best = NULL;
    uint64_t best_score = 0;
    uint32_t now = (uint32_t)w->wheel.now;

    for (px_conn_t *c = w->conns.next; c != &w->conns; c = c->next) {
        uint32_t stalled = now - c->out_moved_ms;
        int64_t mem;
        uint64_t score;

        if (c->out_head == NULL || stalled < SHED_MIN_STALL_MS || (c->state & PX_CONN_DEAD) ||
            px__conn_in_handler(c))
            continue;
        mem = unsent_memory(c);
        if (mem == 0)
            continue;
        score = (uint64_t)mem * stalled;
        if (score > best_score) {
            best_score = score;
            best = c;
            *bytes = mem;
        }
    }
    return best;
}

/* Close this worker's slowest readers until it gave back its share of the
 * excess (every worker does the same with its own). */
static void shed(px_worker_t *w, int64_t used, int64_t mine)
{
    int64_t excess = used - w->e->budget;
    int64_t share = used > 0 ? (int64_t)((double)excess * (double)mine / (double)used) + 1 : 1;

    for (int i = 0; i < SHED_MAX && share > 0; i++) {
        int64_t bytes = 0;
        px_conn_t *c = slowest_reader(w, &bytes);

        if (c == NULL)
            break;
        PX_STAT_ADD(&w->stats, budget_closed, 1);
        c->busy++; /* as every caller of the engine's own closes: freed below */
        px_conn_abort(c);
        c->busy--;
        px__conn_maybe_free(c);
        share -= bytes;
    }
}

static void recheck(px_timer_t *t)
{
    (void)t; /* the turn it ends takes the figures again (px__budget_turn) */
}

void px__budget_turn(px_worker_t *w)
{
    px_engine_t *e = w->e;
    int64_t mine = held(w), used;

    PX_STAT_SET(&w->stats, budget_held, (uint64_t)(mine > 0 ? mine : 0));
    if (mine - w->budget_published >= e->budget_step ||
        w->budget_published - mine >= e->budget_step)
        publish(w, mine);
    if (mine <= 0)
        return; /* nothing of this worker's to give back */
    used = atomic_load_explicit(&e->budget_used, memory_order_relaxed);
    if (used <= e->budget)
        return;
    /* Look again soon even if nothing else wakes this worker (its slow
     * readers only stand still). */
    if (!px_timer_armed(&w->budget_timer)) {
        px_timer_init(&w->budget_timer, recheck);
        px_timer_start(&w->wheel, &w->budget_timer, RECHECK_MS);
    }
    if (w->wheel.now - w->budget_shed_at < SHED_INTERVAL_MS)
        return;
    w->budget_shed_at = w->wheel.now;
    shed(w, used, mine);
    publish(w, held(w));
}
