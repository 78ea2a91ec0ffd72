/* The STM core without Python: a bank of accounts moved between by several
 * threads while observers sum every account in read-only transactions (the
 * total must never change, in any snapshot); a few hot accounts with a tiny
 * retry limit (the irrevocable mode must finish every transaction); and every
 * value a commit replaced is released exactly once, after its readers. Run
 * under TSan by tools/sanitize tsan. */
#include <errno.h>
#include <pthread.h>

#include "px/stm.h"
#include "px_test.h"

#define START 1000

typedef struct box {
    long balance;
    long magic;
} box_t;

static _Atomic long made, released;

static void release_box(void *p)
{
    box_t *b = p;
    PX_CHECK_EQ(b->magic, 0x5eed);
    b->magic = 0; /* a second release or a late reader would see this */
    free(b);
    atomic_fetch_add(&released, 1);
}

static box_t *new_box(long balance)
{
    box_t *b = malloc(sizeof *b);
    PX_CHECK(b != NULL);
    b->balance = balance;
    b->magic = 0x5eed;
    atomic_fetch_add(&made, 1);
    return b;
}

typedef struct bank {
    px_stm_loc_t *accounts;
    int n, max_retries, transfers;
    _Atomic bool done;
    _Atomic long observed;
} bank_t;

typedef struct job {
    bank_t *bank;
    uint32_t seed;
    int src, dst;
    long amount, sum;
} job_t;

static int transfer(px_stm_thread_t *th, job_t *j)
{
    void *a, *b;
    int err;
    if ((err = px_stm_read(th, &j->bank->accounts[j->src], &a)) < 0 ||
        (err = px_stm_read(th, &j->bank->accounts[j->dst], &b)) < 0)
        return err;
    PX_CHECK_EQ(((box_t *)a)->magic, 0x5eed);
    if (((box_t *)a)->balance < j->amount || j->src == j->dst)
        return 0;
    if ((err = px_stm_write(th, &j->bank->accounts[j->src],
                            new_box(((box_t *)a)->balance - j->amount))) < 0)
        return err;
    return px_stm_write(th, &j->bank->accounts[j->dst], new_box(((box_t *)b)->balance + j->amount));
}

static int sum_all(px_stm_thread_t *th, job_t *j)
{
    j->sum = 0;
    for (int i = 0; i < j->bank->n; i++) {
        void *v;
        int err = px_stm_read(th, &j->bank->accounts[i], &v);
        if (err < 0)
            return err;
        PX_CHECK_EQ(((box_t *)v)->magic, 0x5eed);
        j->sum += ((box_t *)v)->balance;
    }
    return 0;
}

/* atomic(): retry on conflict, irrevocably after max_retries losses. */
static void run_tx(px_stm_thread_t *th, int max_retries, int (*fn)(px_stm_thread_t *, job_t *),
                   job_t *j)
{
    for (int attempt = 0;; attempt++) {
        bool serial = attempt > max_retries;
        int err;
        if (serial) {
            px_stm_serial_enter(th);
            px_stm_count(th, PX_STM_SERIAL);
        }
        err = px_stm_begin(th, serial);
        if (err == -EAGAIN) {
            px_stm_wait_serial();
            attempt--;
            continue;
        }
        PX_CHECK_EQ(err, 0);
        err = fn(th, j);
        if (err == 0)
            err = px_stm_commit(th);
        px_stm_end(th);
        if (serial) {
            px_stm_serial_exit(th);
            PX_CHECK_GE(err, 0); /* the irrevocable mode cannot lose */
        }
        px_stm_reclaim(th);
        if (err >= 0)
            return;
        PX_CHECK(err == -EBUSY || err == -ESTALE);
        px_stm_count(th, PX_STM_RETRIES);
        px_stm_backoff(th, (unsigned)attempt);
    }
}

static void *client(void *arg)
{
    job_t *j = arg;
    px_stm_thread_t *th = px_stm_thread();
    PX_CHECK(th != NULL);
    for (int i = 0; i < j->bank->transfers; i++) {
        j->src = (int)(px_test_rand32(&j->seed) % (uint32_t)j->bank->n);
        j->dst = (int)(px_test_rand32(&j->seed) % (uint32_t)j->bank->n);
        j->amount = 1 + px_test_rand32(&j->seed) % 200;
        run_tx(th, j->bank->max_retries, transfer, j);
    }
    return NULL;
}

static void *observer(void *arg)
{
    job_t *j = arg;
    px_stm_thread_t *th = px_stm_thread();
    PX_CHECK(th != NULL);
    while (!atomic_load(&j->bank->done) || atomic_load(&j->bank->observed) < 5) {
        run_tx(th, j->bank->max_retries, sum_all, j);
        PX_CHECK_EQ(j->sum, (long)j->bank->n * START);
        atomic_fetch_add(&j->bank->observed, 1);
    }
    return NULL;
}

static void run_bank(int accounts, int clients, int transfers, int max_retries)
{
    bank_t bank = {.n = accounts, .max_retries = max_retries, .transfers = transfers};
    pthread_t tids[16];
    job_t jobs[16];
    uint64_t totals[PX_STM_NCOUNTERS];
    long sum = 0;

    bank.accounts = calloc((size_t)accounts, sizeof *bank.accounts);
    PX_CHECK(bank.accounts != NULL);
    for (int i = 0; i < accounts; i++)
        px_stm_loc_init(&bank.accounts[i], new_box(START));
    px_stm_totals(totals, true);
    for (int i = 0; i <= clients; i++) {
        jobs[i] = (job_t){.bank = &bank, .seed = (uint32_t)i * 7919u + 1};
        PX_CHECK_EQ(pthread_create(&tids[i], NULL, i < clients ? client : observer, &jobs[i]), 0);
    }
    for (int i = 0; i < clients; i++)
        PX_CHECK_EQ(pthread_join(tids[i], NULL), 0);
    atomic_store(&bank.done, true);
    PX_CHECK_EQ(pthread_join(tids[clients], NULL), 0);

    px_stm_totals(totals, false);
    PX_CHECK_EQ(totals[PX_STM_COMMITS],
                (uint64_t)(clients * transfers + atomic_load(&bank.observed)));
    printf("accounts %d, max_retries %d: commits %llu, read-only %llu, aborts locked %llu "
           "stale %llu busy %llu, retries %llu, serial %llu, extensions %llu\n",
           accounts, max_retries, (unsigned long long)totals[PX_STM_COMMITS],
           (unsigned long long)totals[PX_STM_READ_ONLY],
           (unsigned long long)totals[PX_STM_ABORT_LOCKED],
           (unsigned long long)totals[PX_STM_ABORT_STALE],
           (unsigned long long)totals[PX_STM_ABORT_BUSY],
           (unsigned long long)totals[PX_STM_RETRIES], (unsigned long long)totals[PX_STM_SERIAL],
           (unsigned long long)totals[PX_STM_EXTENSIONS]);
    PX_CHECK_EQ(totals[PX_STM_RETRIES], totals[PX_STM_ABORT_LOCKED] + totals[PX_STM_ABORT_STALE] +
                                            totals[PX_STM_ABORT_BUSY]);
    for (int i = 0; i < accounts; i++) {
        box_t *b = px_stm_loc_value(&bank.accounts[i]);
        PX_CHECK_GE(b->balance, 0);
        sum += b->balance;
        release_box(b);
    }
    PX_CHECK_EQ(sum, (long)accounts * START);
    free(bank.accounts);
}

/* A thread that retires values without running transactions (one that frees
 * containers) releases what is due as it goes. */
static void *retire_outside(void *arg)
{
    px_stm_thread_t *th = px_stm_thread();
    long before = atomic_load(&released);
    (void)arg;
    for (int i = 0; i < 2000; i++)
        PX_CHECK_EQ(px_stm_retire(th, new_box(0)), 0);
    PX_CHECK_GT(atomic_load(&released) - before, 1000);
    return NULL;
}

/* Values retired by threads that have ended are taken over and released by a
 * thread that goes on running transactions (read-only ones suffice). */
static void *drain_limbo(void *arg)
{
    px_stm_thread_t *th = px_stm_thread();
    px_stm_loc_t loc;
    uint64_t deadline = px_test_now_ms() + 20000;
    (void)arg;
    px_stm_loc_init(&loc, new_box(0));
    while (atomic_load(&made) - atomic_load(&released) > 1 && px_test_now_ms() < deadline) {
        void *v;
        PX_CHECK_EQ(px_stm_begin(th, false), 0);
        PX_CHECK_EQ(px_stm_read(th, &loc, &v), 0);
        PX_CHECK_EQ(px_stm_commit(th), 1);
        px_stm_end(th);
        px_stm_reclaim(th);
    }
    release_box(px_stm_loc_value(&loc));
    return NULL;
}

static void *commit_to(void *arg)
{
    px_stm_loc_t *loc = arg;
    px_stm_thread_t *th = px_stm_thread();
    void *v;
    PX_CHECK_EQ(px_stm_begin(th, false), 0);
    PX_CHECK_EQ(px_stm_read(th, loc, &v), 0);
    PX_CHECK_EQ(px_stm_write(th, loc, new_box(1)), 0);
    PX_CHECK_EQ(px_stm_commit(th), 0);
    px_stm_end(th);
    px_stm_reclaim(th);
    return NULL;
}

/* A commit that fails validation leaves nothing locked: its caller runs code
 * (a finalizer, a stop-the-world) before px_stm_end, which may wait for a
 * reader of what it wrote. */
static void *failed_commit_unlocks(void *arg)
{
    px_stm_thread_t *th = px_stm_thread();
    px_stm_loc_t read, written;
    pthread_t t;
    void *v;
    px_stm_loc_init(&read, new_box(0));
    px_stm_loc_init(&written, new_box(0));
    PX_CHECK_EQ(px_stm_begin(th, false), 0);
    PX_CHECK_EQ(px_stm_read(th, &read, &v), 0);
    PX_CHECK_EQ(px_stm_write(th, &written, new_box(2)), 0);
    PX_CHECK_EQ(pthread_create(&t, NULL, commit_to, &read), 0);
    PX_CHECK_EQ(pthread_join(t, NULL), 0);
    PX_CHECK_EQ(px_stm_commit(th), -ESTALE);
    px_stm_pin(th);
    PX_CHECK_EQ(px_stm_peek(&written, &v), 0);
    PX_CHECK_EQ(((box_t *)v)->balance, 0);
    px_stm_unpin(th);
    px_stm_end(th);
    px_stm_reclaim(th);
    release_box(px_stm_loc_value(&read));
    release_box(px_stm_loc_value(&written));
    (void)arg;
    return NULL;
}

int main(void)
{
    px_stm_setup(release_box, true);
    run_bank(100, 4, 20000, 16); /* low contention */
    run_bank(4, 3, 20000, 0);    /* hot accounts: the irrevocable mode must finish them */
    /* Every value made is released once: none twice (release_box checks), and
     * none leaked once the threads that retired them are gone. */
    {
        pthread_t t;
        /* On threads of their own: a thread that ends leaves its limbo to
         * be adopted; the main thread's would stay with it. */
        PX_CHECK_EQ(pthread_create(&t, NULL, failed_commit_unlocks, NULL), 0);
        PX_CHECK_EQ(pthread_join(t, NULL), 0);
        PX_CHECK_EQ(pthread_create(&t, NULL, retire_outside, NULL), 0);
        PX_CHECK_EQ(pthread_join(t, NULL), 0);
        PX_CHECK_EQ(pthread_create(&t, NULL, drain_limbo, NULL), 0);
        PX_CHECK_EQ(pthread_join(t, NULL), 0);
    }
    PX_CHECK_EQ(atomic_load(&made), atomic_load(&released));
    printf("released %ld values\n", atomic_load(&released));
    return 0;
}
