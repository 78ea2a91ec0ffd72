/*
 * Checks the MPSC queue: FIFO order and emptiness on one thread, exactly-once
 * per-producer-FIFO delivery with four producers, and that push reports a
 * needed wake-up whenever the consumer has drained the queue, so a consumer
 * that sleeps after an empty pop is never stranded.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>

#include "px/queue.h"
#include "px_test.h"

#define PRODUCERS 4
#define PER_PRODUCER 200000
#define PINGS 20000
#define WAKE_TIMEOUT_S 60

struct msg {
    px_mpsc_node_t node;
    uint32_t producer;
    uint32_t seq;
};

static struct msg *msg_of(px_mpsc_node_t *n)
{
    return n == NULL ? NULL : PX_CONTAINER_OF(n, struct msg, node);
}

static void test_single_thread(void)
{
    px_mpsc_t q;
    struct msg m[3];

    px_mpsc_init(&q);
    PX_CHECK(px_mpsc_empty(&q));
    PX_CHECK(px_mpsc_pop(&q) == NULL);
    PX_CHECK(px_mpsc_empty(&q));

    PX_CHECK(px_mpsc_push(&q, &m[0].node)); /* empty before */
    PX_CHECK(!px_mpsc_empty(&q));
    PX_CHECK(!px_mpsc_push(&q, &m[1].node));
    PX_CHECK(!px_mpsc_push(&q, &m[2].node));
    PX_CHECK(msg_of(px_mpsc_pop(&q)) == &m[0]);
    PX_CHECK(msg_of(px_mpsc_pop(&q)) == &m[1]);
    PX_CHECK(!px_mpsc_empty(&q));
    PX_CHECK(msg_of(px_mpsc_pop(&q)) == &m[2]);
    PX_CHECK(px_mpsc_empty(&q));
    PX_CHECK(px_mpsc_pop(&q) == NULL);
    PX_CHECK(px_mpsc_pop(&q) == NULL); /* popping an empty queue twice */

    /* Drained by pops that returned nodes, then by one that returned NULL:
     * either way the next push must ask for a wake-up. */
    PX_CHECK(px_mpsc_push(&q, &m[0].node));
    PX_CHECK(msg_of(px_mpsc_pop(&q)) == &m[0]);
    PX_CHECK(px_mpsc_push(&q, &m[1].node));
    PX_CHECK(!px_mpsc_push(&q, &m[0].node)); /* nodes can be reused */
    PX_CHECK(msg_of(px_mpsc_pop(&q)) == &m[1]);
    PX_CHECK(msg_of(px_mpsc_pop(&q)) == &m[0]);
    PX_CHECK(px_mpsc_pop(&q) == NULL);
    PX_CHECK(px_mpsc_empty(&q));

    /* Many rounds through the stub, with varying depths. */
    for (int round = 0; round < 100; round++) {
        int depth = round % 3 + 1;

        for (int i = 0; i < depth; i++)
            PX_CHECK_EQ(px_mpsc_push(&q, &m[i].node), i == 0);
        for (int i = 0; i < depth; i++)
            PX_CHECK(msg_of(px_mpsc_pop(&q)) == &m[i]);
        PX_CHECK(px_mpsc_pop(&q) == NULL);
        PX_CHECK(px_mpsc_empty(&q));
    }
}

/* Stress: producers post the semaphore only when push says so; the consumer
 * sleeps on it after every empty pop. A lost wake-up shows as a timeout. */
static px_mpsc_t stress_q;
static sem_t wake;
static struct msg *msgs;

static void *producer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    struct msg *mine = msgs + (size_t)id * PER_PRODUCER;

    uint32_t rng = id * 2654435761u + 1;

    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        mine[i].producer = id;
        mine[i].seq = i;
        if (px_mpsc_push(&stress_q, &mine[i].node))
            PX_CHECK_EQ(sem_post(&wake), 0);
        /* Let the consumer catch up now and then, so that it drains the
         * queue and sleeps often, racing half-finished pushes. */
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        if (rng % 64 == 0)
            sched_yield();
    }
    return NULL;
}

static void wait_for_wakeup(const char *what)
{
    struct timespec ts;

    PX_CHECK_EQ(clock_gettime(CLOCK_REALTIME, &ts), 0);
    ts.tv_sec += WAKE_TIMEOUT_S;
    while (sem_timedwait(&wake, &ts) != 0) {
        if (errno == ETIMEDOUT)
            PX_FAIL_("no wake-up in %d s while %s: lost wake-up", WAKE_TIMEOUT_S, what);
        PX_CHECK_EQ(errno, EINTR);
    }
}

static void test_producers(void)
{
    pthread_t th[PRODUCERS];
    uint32_t next_seq[PRODUCERS] = {0};
    unsigned char *seen;
    size_t total = (size_t)PRODUCERS * PER_PRODUCER, got = 0, sleeps = 0;

    msgs = calloc(total, sizeof(*msgs));
    seen = calloc(total, 1);
    PX_CHECK(msgs != NULL && seen != NULL);
    px_mpsc_init(&stress_q);
    PX_CHECK_EQ(sem_init(&wake, 0, 0), 0);
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        PX_CHECK_EQ(pthread_create(&th[i], NULL, producer, (void *)i), 0);

    while (got < total) {
        struct msg *m = msg_of(px_mpsc_pop(&stress_q));
        size_t idx;

        if (m == NULL) {
            wait_for_wakeup("receiving");
            sleeps++;
            continue;
        }
        PX_CHECK_LT(m->producer, PRODUCERS);
        PX_CHECK_EQ(m->seq, next_seq[m->producer]); /* per-producer FIFO */
        next_seq[m->producer]++;
        idx = (size_t)m->producer * PER_PRODUCER + m->seq;
        PX_CHECK_EQ(seen[idx], 0);
        seen[idx] = 1;
        got++;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        PX_CHECK_EQ(pthread_join(th[i], NULL), 0);
        PX_CHECK_EQ(next_seq[i], PER_PRODUCER);
    }
    PX_CHECK(px_mpsc_pop(&stress_q) == NULL);
    PX_CHECK(px_mpsc_empty(&stress_q));
    printf("producers: %zu nodes, consumer slept %zu times\n", got, sleeps);
    PX_CHECK_EQ(sem_destroy(&wake), 0);
    free(seen);
    free(msgs);
}

/* Ping-pong: after the consumer has seen an empty queue, the next push must
 * return true, every single time. */
static px_mpsc_t ping_q;
static atomic_int drained; /* consumer saw the queue empty after round n */

static void *ping_consumer(void *arg)
{
    struct msg *m;

    (void)arg;
    for (int round = 0; round < PINGS; round++) {
        do
            m = msg_of(px_mpsc_pop(&ping_q));
        while (m == NULL);
        PX_CHECK_EQ(m->seq, (uint32_t)round);
        PX_CHECK(px_mpsc_pop(&ping_q) == NULL);
        atomic_store_explicit(&drained, round + 1, memory_order_release);
    }
    return NULL;
}

static void test_wakeup_protocol(void)
{
    pthread_t th;
    struct msg m[2];

    px_mpsc_init(&ping_q);
    atomic_init(&drained, 0);
    PX_CHECK_EQ(pthread_create(&th, NULL, ping_consumer, NULL), 0);
    for (int round = 0; round < PINGS; round++) {
        struct msg *cur = &m[round & 1];

        while (atomic_load_explicit(&drained, memory_order_acquire) != round)
            ;
        cur->seq = (uint32_t)round;
        PX_CHECK(px_mpsc_push(&ping_q, &cur->node));
    }
    PX_CHECK_EQ(pthread_join(th, NULL), 0);
}

int main(void)
{
    test_single_thread();
    test_wakeup_protocol();
    test_producers();
    printf("ok\n");
    return 0;
}
