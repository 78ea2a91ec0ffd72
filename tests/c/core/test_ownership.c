/* The ownership word of a worker (src/core/ownership.h): release, reclaim and
 * take, alone and raced by threads; exactly one of a reclaim and a take of the
 * same release wins, and what the owner wrote before releasing is seen by
 * whoever owns the worker next. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "ownership.h"
#include "px_test.h"

#define ROUNDS 200000

static void sequential(void)
{
    _Atomic uint64_t own = 0;
    uint64_t token, seen;

    /* Release then reclaim: owned again, nothing taken. */
    token = px__own_release(&own, false);
    PX_CHECK(px__own_is_released(atomic_load(&own)));
    PX_CHECK(!(atomic_load(&own) & PX_OWN_HINT));
    PX_CHECK(px__own_reclaim(&own, token));
    PX_CHECK(!px__own_is_released(atomic_load(&own)));
    /* A take needs a release. */
    PX_CHECK(!px__own_take(&own, atomic_load(&own)));
    /* Release with a hint, taken: the reclaim fails, the word moved on. */
    token = px__own_release(&own, true);
    seen = atomic_load(&own);
    PX_CHECK(seen & PX_OWN_HINT);
    PX_CHECK(px__own_take(&own, seen));
    PX_CHECK(!px__own_is_released(atomic_load(&own)));
    PX_CHECK(!px__own_reclaim(&own, token));
    /* The new owner releases and reclaims; the old token stays stale. */
    uint64_t token2 = px__own_release(&own, false);
    PX_CHECK_NE(token2, token);
    PX_CHECK(!px__own_reclaim(&own, token));
    PX_CHECK(px__own_reclaim(&own, token2));
    /* A take of an older observation fails even when released again (no ABA). */
    seen = atomic_load(&own);
    token = px__own_release(&own, false);
    PX_CHECK(!px__own_take(&own, seen));
    PX_CHECK(px__own_reclaim(&own, token));
    /* Sequence numbers never repeat across many rounds. */
    uint64_t last = atomic_load(&own);
    for (int i = 0; i < 1000; i++) {
        token = px__own_release(&own, i & 1);
        PX_CHECK_GT(token & ~PX_OWN_FLAGS, last & ~PX_OWN_FLAGS);
        if (i % 3 == 0) {
            PX_CHECK(px__own_take(&own, token));
        } else {
            PX_CHECK(px__own_reclaim(&own, token));
        }
        last = atomic_load(&own);
    }
}

/* Race: an owner releases and reclaims in a loop while a taker takes whatever
 * release it sees. Ownership moves between them; each checks that it alone
 * holds the worker (a plain counter written only by the owner) and that it
 * sees the other's last write. */
typedef struct shared {
    _Atomic uint64_t own;
    _Atomic unsigned handbacks; /* bumped by the taker when it gives the worker back */
    _Atomic bool stop;
    uint64_t data;           /* written only by whoever owns */
    _Atomic unsigned inside; /* threads inside the owned section: never two */
    _Atomic unsigned takes, reclaims;
} shared_t;

static void owned_section(shared_t *s, uint64_t expect_at_least)
{
    PX_CHECK_EQ(atomic_fetch_add(&s->inside, 1), 0);
    PX_CHECK_GE(s->data, expect_at_least);
    s->data++;
    PX_CHECK_EQ(atomic_fetch_sub(&s->inside, 1), 1);
}

static void *owner_thread(void *arg)
{
    shared_t *s = arg;
    uint64_t seen_data = 0;

    for (int i = 0; i < ROUNDS; i++) {
        unsigned handbacks = atomic_load_explicit(&s->handbacks, memory_order_acquire);
        owned_section(s, seen_data);
        seen_data = s->data;
        uint64_t token = px__own_release(&s->own, false);
        /* "the callback": a little work without the worker, now and then long
         * enough for the taker to get in */
        for (volatile int k = 0; k < ((i & 63) == 0 ? 20000 : (i & 15)); k++)
            ;
        if ((i & 1023) == 0)
            sched_yield();
        if (px__own_reclaim(&s->own, token)) {
            atomic_fetch_add(&s->reclaims, 1);
        } else {
            /* Taken: wait until the taker hands it back. */
            while (atomic_load_explicit(&s->handbacks, memory_order_acquire) == handbacks)
                ;
            seen_data = s->data; /* the taker's write is visible */
        }
    }
    atomic_store(&s->stop, true);
    return NULL;
}

static void *taker_thread(void *arg)
{
    shared_t *s = arg;

    while (!atomic_load(&s->stop)) {
        uint64_t seen = atomic_load_explicit(&s->own, memory_order_acquire);
        if (!px__own_take(&s->own, seen))
            continue;
        atomic_fetch_add(&s->takes, 1);
        owned_section(s, 0);
        /* Hand back at "the end of the loop turn". */
        atomic_fetch_add_explicit(&s->handbacks, 1, memory_order_release);
    }
    return NULL;
}

static void raced(void)
{
    shared_t *s = calloc(1, sizeof(*s));
    pthread_t a, b;

    PX_CHECK_EQ(pthread_create(&a, NULL, owner_thread, s), 0);
    PX_CHECK_EQ(pthread_create(&b, NULL, taker_thread, s), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("raced: %u takes, %u reclaims, %llu owned sections\n", atomic_load(&s->takes),
           atomic_load(&s->reclaims), (unsigned long long)s->data);
    PX_CHECK_GT(atomic_load(&s->takes), 0);
    PX_CHECK_GT(atomic_load(&s->reclaims), 0);
    free(s);
}

int main(void)
{
    sequential();
    raced();
    printf("ok\n");
    return 0;
}
