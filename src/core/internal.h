/*
 * Private structures of the engine, shared by its source files only.
 *
 * Ownership: a worker owns its connections, listeners, pools and wheel; every
 * in-flight kernel operation is accounted in its connection's `ops` bits and
 * the connection is freed only when it is closed and no operation remains.
 */
#ifndef PX_CORE_INTERNAL_H
#define PX_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "px/clock.h"
#include "px/engine.h"
#include "px/histogram.h"
#include "px/pool.h"
#include "px/queue.h"
#include "px/stats.h"
#include "px/hrtimer.h"
#include "px/timer.h"
#include "ownership.h"

#define PX_IOV_MAX 64         /* iovecs in one gathered send */
#define PX_CHUNK_SIZE 16384   /* send chunk, header included */
#define PX_LINGER_MS 2000     /* how long a closing socket drains input */
#define PX_SCRATCH_SIZE 65536 /* epoll receive buffer, one per worker */

/* user_data / epoll data: a pointer with the operation in its low bits. */
enum px_tag {
    PX_TAG_RECV = 1,
    PX_TAG_SEND = 2,
    PX_TAG_POLL = 3,
    PX_TAG_CONNECT = 4,
    PX_TAG_ACCEPT = 5,
    PX_TAG_WAKE = 6,
    PX_TAG_IGNORE = 7, /* cancellations and other fire-and-forget requests */
};
#define PX_TAG_MASK 7u
#define PX_TAGGED(p, tag) ((uint64_t)(uintptr_t)(p) | (tag))
#define PX_UNTAG(v) ((void *)(uintptr_t)((v) & ~(uint64_t)PX_TAG_MASK))
#define PX_TAG_OF(v) ((unsigned)((v)&PX_TAG_MASK))

/* Operations a connection has in the kernel (or armed, on epoll). */
enum {
    PX_OP_RECV = 1u << 0,
    PX_OP_SEND = 1u << 1,
    PX_OP_POLL = 1u << 2,
    PX_OP_CONNECT = 1u << 3,
};

/* Connection state bits. */
enum {
    PX_CONN_OPEN = 1u << 0, /* on_open has run */
    PX_CONN_CLIENT = 1u << 1,
    PX_CONN_PAUSED = 1u << 2, /* application asked to stop reading */
    PX_CONN_BACKPRESSURE = 1u << 3,
    PX_CONN_CLOSING = 1u << 4,     /* close after the output drains */
    PX_CONN_SHUT = 1u << 5,        /* FIN sent; reading only to drain */
    PX_CONN_DEAD = 1u << 6,        /* cancelled; freed when ops reach 0 */
    PX_CONN_DIRTY = 1u << 7,       /* on the worker's flush list */
    PX_CONN_EOF = 1u << 8,         /* peer closed its side */
    PX_CONN_NEED_RECV = 1u << 9,   /* receive must be (re)armed at flush */
    PX_CONN_IN_DRAIN = 1u << 10,   /* inside on_drain: no recursion */
    PX_CONN_OWNS_EP = 1u << 11,    /* client endpoint freed with the conn */
    PX_CONN_FREED = 1u << 12,      /* on_close done; memory released after the batch */
    PX_CONN_DELIVER = 1u << 13,    /* held input waits for the flush to deliver it */
    PX_CONN_CAREFUL = 1u << 14,    /* has hit backpressure: one receive at a time */
    PX_CONN_IN_HANDLER = 1u << 15, /* a handler of c is on some thread's stack */
    PX_CONN_END_HELD = 1u << 16,   /* EOF or error waits for the handler to return */
    PX_CONN_DRAIN_HELD = 1u << 17, /* on_drain waits for the handler to return */
    PX_CONN_STOP_AFTER = 1u << 18, /* shutdown: close once the running handler returns */
    PX_CONN_ATTEMPT = 1u << 19,    /* one connection attempt of a client (connect.c) */
    PX_CONN_WAIT_OUT = 1u << 20,   /* px_conn_wait_output: no file queued to resume */
    PX_CONN_SEND_SHUT = 1u << 21,  /* px_conn_shutdown_send: FIN once the output drains */
    PX_CONN_FIN_SENT = 1u << 22,   /* that FIN is out; input is still delivered */
    PX_CONN_HALF_OPEN = 1u << 23,  /* the peer's end of stream leaves c open for sending */
    PX_CONN_SEND_ERR = 1u << 24,   /* a send failed: close_err is its error */
    PX_CONN_TAP_FULL = 1u << 25,   /* the tap left input: held until px_conn_tap_resume */
    PX_CONN_TAP_ENDED = 1u << 26,  /* the tap was told the end of the input */
    PX_CONN_OWN_OUTPUT = 1u << 27, /* c's own unsent output never stops its reading */
    PX_CONN_PROXY_WAIT = 1u << 28, /* its PROXY header is awaited (proxy.c): not open yet */
};

typedef struct px_endpoint {
    px_handler_t handler;
    void *udata;
    unsigned sock_flags;
    unsigned idle_timeout_ms;
    unsigned proxy_timeout_ms; /* listeners: a PROXY header first, within this; 0: none */
} px_endpoint_t;

typedef struct px_proxy_state px_proxy_state_t;

/* One piece of the output queue: bytes in a pooled chunk, or a file range. */
typedef struct px_seg {
    struct px_seg *next;
    uint32_t len; /* bytes filled (memory) */
    uint32_t off; /* bytes already sent (memory) */
    int fd;       /* -1 for memory */
    off_t foff;   /* next file offset */
    size_t fleft; /* file bytes left */
    char data[];
} px_seg_t;

#define PX_SEG_CAPACITY (PX_CHUNK_SIZE - offsetof(px_seg_t, data))

/* The memory of one in-flight gathered send (lives until its completion). */
typedef struct px_sendop {
    struct msghdr msg;
    struct iovec iov[PX_IOV_MAX];
} px_sendop_t;

struct px_conn {
    px_worker_t *w;
    px_endpoint_t *ep;
    void *udata;
    int fd;
    uint32_t state;
    uint32_t ops;
    unsigned busy; /* calls on the stack that use c */
    int close_err;
    uint32_t files; /* file ranges in the output queue */
    uint64_t id;
    px_seg_t *out_head, *out_tail;
    size_t unsent;
    px_seg_t *in_head, *in_tail; /* input read while paused, delivered on resume */
    int held_end;                /* END_HELD: 0 (EOF) or -errno */
    uint32_t out_moved_ms;       /* wheel time (truncated) the output last moved */
    px_sendop_t *sendop;         /* in flight, or NULL */
    int send_res;                /* epoll: result waiting to be delivered */
    unsigned idle_ms;
    uint64_t turn; /* loop turn of turn_bytes */
    size_t turn_bytes;
    px_timer_t idle_timer; /* idle timeout, linger, and resume share it */
    px_timer_t resume_timer;
    px_timer_t deadline_timer;
    uint32_t deadline_left_ms;   /* a deadline held while reading is paused */
    struct px_conn *next, *prev; /* the worker's list of connections */
    struct px_conn *dirty_next;  /* flush list */
    struct px_conn *ready_next;  /* epoll: completions to deliver */
    uint32_t ready_ops;          /* epoll: which completions */
    uint32_t epoll_events;       /* epoll: registered interest */
    struct px_handle *handle;    /* other threads' way to c (handle.c), or NULL */
    void *app_data;              /* the protocol layer's app (px_conn_app_data) */
    const px_conn_tap_t *tap;    /* input for a blocked handler (tap.c), or NULL */
    px_proxy_state_t *proxy;     /* PROXY protocol (proxy.c): header, then client, or NULL */
};

/* A connection as other threads hold it (px/handle.h, handle.c). */
struct px_handle {
    _Atomic unsigned refs;
    _Atomic bool closed;      /* closing, or a close was posted: sends refused */
    _Atomic bool gone;        /* the connection was freed */
    _Atomic bool send_shut;   /* its sending side is (to be) shut: sends refused */
    _Atomic size_t posted;    /* bytes posted, not yet queued on the connection */
    _Atomic unsigned pending; /* calls posted, not yet applied (or dropped) */
    _Atomic size_t unsent;    /* the connection's unsent output, as last published */
    px_worker_t *w;
    px_conn_t *c; /* the owning worker only: NULL once freed */
    uint64_t id;
    size_t high_water;
    size_t low_water;
    /* Threads waiting for the output to move (px_handle_wait_queued), and a
     * watch for the low-water mark (px_handle_watch_low): wait_lock. */
    _Atomic unsigned waiters;
    _Atomic bool watching;
    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
    void (*watch_fn)(struct px_handle *h, void *arg);
    void *watch_arg;
};

typedef struct px_listener {
    px_msg_t arm_msg;
    px_worker_t *w;
    px_server_t *server;
    int fd;
    bool armed;
    bool closed;
    bool inherited;           /* the socket outlives this process (px/listen_fds.h): never shut */
    px_timer_t backoff_timer; /* out of descriptors: accepting again when it fires */
} px_listener_t;

struct px_server {
    px_endpoint_t ep;
    px_engine_t *e;
    int port;
    px_listener_t *listeners; /* one per worker, or per inherited socket if more */
    int nlisteners;
    px_server_t *next;
};

typedef struct px_backend px_backend_t;
typedef struct px_thread px_thread_t;

/* An engine thread. Threads are interchangeable: each runs whatever worker it
 * is given, until it hands the worker over or the worker finishes, then parks
 * as a spare (threads.c). */
struct px_thread {
    px_engine_t *e;
    pthread_t tid;
    bool started;  /* e->threads_lock, like the two below */
    bool spawning; /* a spare not yet parked once */
    bool retired;  /* an idle spare that ended, to be joined */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    px_worker_t *given; /* lock: a worker handed to this thread */
    px_worker_t *first; /* the worker it was started for (NULL: a spare) */
    bool quit;          /* lock: the engine is over, exit */
    /* Private to the thread itself: */
    px_worker_t *w;      /* the worker whose code is on this stack, or NULL */
    bool owns;           /* runs w's engine code now (not released) */
    uint64_t token;      /* what its last release stored */
    bool brief;          /* its last release was px_worker_release_brief */
    char *scratch;       /* epoll receive buffer, allocated on first use */
    clockid_t cpu_clock; /* this thread's CPU-time clock (set at its start) */
    bool has_cpu_clock;
    pid_t ktid;             /* the kernel's id of this thread (its /proc state) */
    uint64_t eager_ns;      /* when its last release handed w off at once, else 0 */
    uint64_t eager_sched;   /* its time on or waiting for a CPU then, ns */
    atomic_bool waits;      /* released and said it waits (px_worker_waiting) */
    px_thread_t *next;      /* e->threads */
    px_thread_t *next_wait; /* e->idle, or the waiters of a worker */
};

struct px_worker {
    px_engine_t *e;
    int index;
    const px_backend_t *be;
    void *bs; /* backend state */
    px_wheel_t wheel;
    px_hrtimers_t hrtimers; /* precise timers; cut the sleep short */
    px_pool_t conn_pool, chunk_pool, sendop_pool;
    px_conn_t conns;       /* list sentinel */
    px_conn_t *dirty;      /* connections to flush next */
    px_conn_t *dirty_last; /* its tail (when dirty is not NULL) */
    px_conn_t *flushing;   /* being flushed (a list any owner carries on) */
    uint64_t turn;
    px_mpsc_t inbox;
    int wake_fd;
    _Atomic int wake_pending;
    _Atomic unsigned backlog;  /* messages queued, not yet run */
    _Atomic int submitters;    /* px_worker_submit calls half-way through */
    _Atomic bool inbox_closed; /* the loop is over: submissions refused */
    px_worker_stats_t stats;
    /* Latencies (stats.c reads them from any thread): HTTP requests, from the
     * complete request to its response queued; and every application
     * callback (on_open, on_data, on_drain, on_close), one value per call. */
    px_histogram_t request_latency;
    px_histogram_t callback_latency;
    unsigned callback_depth;         /* application callbacks on the stack */
    _Atomic uint64_t callback_since; /* px_ticks() when the outermost began, 0: idle */
    clockid_t cpu_clock;             /* this thread's CPU-time clock */
    _Atomic bool cpu_clock_ready;
    _Atomic uint64_t cpu_ns_final; /* CPU time when the thread ended */
    uint64_t pool_stats_at;        /* wheel time of the last pool figures */
    uint64_t release_at;           /* wheel time of the last release of idle memory */
    /* Memory budget (budget.c): what this worker holds for its connections. */
    int64_t body_bytes;       /* charged by the application (px_conn_charge) */
    int64_t budget_published; /* its share of e->budget_used */
    uint64_t budget_shed_at;  /* wheel time of the last look for slow readers */
    px_timer_t budget_timer;  /* over budget: wakes the worker to look again */
    void *udata;
    bool stopping;
    px_msg_t stop_msg;
    _Atomic unsigned stop_timeout_ms;
    _Atomic bool stop_requested;
    uint64_t stop_deadline;
    _Atomic unsigned drain_grace_ms; /* px_engine_drain: serve on this long */
    _Atomic bool handover;           /* px_engine_drain: the sockets live on elsewhere */
    uint64_t drain_until;            /* while stopping: still serving until then; 0: not */
    _Atomic bool finished;
    uint64_t next_id;
    bool defer_free;      /* inside an epoll batch */
    px_conn_t *graveyard; /* connections to free after the batch */
    /* Hand-off (threads.c, supervisor.c): */
    _Alignas(PX_CACHELINE) _Atomic uint64_t own; /* ownership.h */
    _Atomic(px_thread_t *) releaser;             /* the thread of the last release */
    _Atomic unsigned nwaiters;                   /* threads waiting to get the worker back */
    _Atomic uint64_t timer_due; /* px_now_ms() of the next timer, as of the last turn */
    uint64_t takeovers;         /* owner's: bumped by every take (epoll batches check it) */
    pthread_mutex_t hand_lock;
    px_thread_t *waiters; /* hand_lock */
    unsigned displaced;   /* hand_lock: threads inside w's code that do not own it */
    /* Until this px_now_ms(), callbacks on w are known to block: a release
     * with work waiting hands w to a spare at once (threads.c). */
    _Atomic uint64_t eager_until;
};

typedef struct px_resolver px_resolver_t;

struct px_engine {
    px_engine_config_t cfg;
    px_thread_hooks_t hooks;
    int nworkers;
    px_worker_t **workers;
    const px_backend_t *be;
    int uring_err;
    unsigned uring_features;   /* PX_URING_*: what the probe found, masked */
    const char *uring_missing; /* the first required feature missing, or NULL */
    px_server_t *servers;
    pthread_mutex_t lock; /* servers list, start/stop */
    bool started;
    _Atomic unsigned connections;
    _Atomic unsigned next_client_worker;
    /* Memory budget (budget.c): the workers' figures, each published when it
     * moved by budget_step since its last publication. */
    int64_t budget;
    int64_t budget_step;
    _Alignas(PX_CACHELINE) _Atomic int64_t budget_used;
    _Atomic int running_workers;
    px_mpsc_t main_q;
    int main_fd;
    _Atomic int main_wake_pending;
    /* Threads (threads.c): */
    pthread_mutex_t threads_lock;
    px_thread_t *threads;   /* threads_lock: every thread ever started */
    px_thread_t *idle;      /* threads_lock: parked spares */
    _Atomic unsigned nidle; /* how many (written under threads_lock) */
    unsigned nthreads;      /* threads_lock */
    unsigned spawning;      /* threads_lock: spares started, not yet parked */
    bool exiting;           /* threads_lock: every worker has finished */
    /* The supervisor (supervisor.c): */
    pthread_t sup_thread;
    bool sup_started;
    pthread_mutex_t sup_lock;
    pthread_cond_t sup_cond;
    bool sup_stop;           /* sup_lock */
    _Atomic int sup_parked;  /* the supervisor sleeps until a worker releases */
    px_resolver_t *resolver; /* name lookups of clients (resolver.c) */

    /* px_engine_announce_stop: connections drain, the listeners accept on. */
    _Atomic bool announce_stop;
};

/* The I/O backend: completion-style operations over io_uring or epoll. */
struct px_backend {
    const char *name;
    int (*init)(px_worker_t *w);
    void (*destroy)(px_worker_t *w);
    int (*listen)(px_worker_t *w, px_listener_t *l); /* arm accept */
    void (*unlisten)(px_worker_t *w, px_listener_t *l);
    int (*open)(px_worker_t *w, px_conn_t *c); /* register a socket */
    int (*recv)(px_worker_t *w, px_conn_t *c); /* arm receive */
    void (*recv_stop)(px_worker_t *w, px_conn_t *c);
    int (*send)(px_worker_t *w, px_conn_t *c); /* c->sendop */
    int (*poll_out)(px_worker_t *w, px_conn_t *c);
    void (*cancel)(px_worker_t *w, px_conn_t *c); /* end every op of c */
    /* Submit what is queued, wait up to timeout_ns, dispatch completions. */
    int (*wait)(px_worker_t *w, uint64_t timeout_ns);
    /* Owner: work queued in user space that only a loop turn moves on. */
    bool (*local_work)(px_worker_t *w);
    /* Any thread (the supervisor): completions wait in the kernel. */
    bool (*kernel_work)(px_worker_t *w);
    /* Owner, every pool_idle_ms: give back memory unused since the last call
     * (NULL: the backend holds none worth it). */
    void (*release_idle)(px_worker_t *w);
};

extern const px_backend_t px__backend_uring;
extern const px_backend_t px__backend_epoll;

/* Which PX_URING_* features the kernel offers (uring_probe.c): 0 with *found
 * set, or -errno when io_uring itself is refused. */
int px__uring_probe(unsigned *found);

/* Completions, called by the backends (conn.c). */
void px__conn_accepted(px_listener_t *l, int fd);
/* res > 0: data; 0: end of stream; < 0: error. more: the receive stays armed. */
void px__conn_received(px_conn_t *c, const char *data, int res, bool more);
void px__conn_sent(px_conn_t *c, int res);
void px__conn_writable(px_conn_t *c, int res);
/* An operation of c finished for good; may free c. */
void px__conn_op_done(px_conn_t *c, uint32_t op);

/* Worker internals (worker.c). */
/* One loop turn; true when the worker has finished stopping. */
bool px__worker_turn(px_worker_t *w);
void px__worker_finished(px_worker_t *w);
void px__worker_mark_dirty(px_worker_t *w, px_conn_t *c);
void px__worker_drain_inbox(px_worker_t *w);
void px__worker_free_deferred(px_worker_t *w);
void px__worker_tick(px_worker_t *w);
void px__worker_listener_closed(px_worker_t *w, px_listener_t *l);
/* An accept failed with err: true when it is a lack of descriptors or memory,
 * in which case the listener (its accept no longer armed) is re-armed after
 * a pause instead of at once, which would spin. */
bool px__listener_backoff(px_listener_t *l, int err);
void px__listener_rearm(px_timer_t *t); /* the callback of backoff_timer */
int px__worker_create(px_engine_t *e, int index, px_worker_t **out);
void px__worker_destroy(px_worker_t *w);
void px__worker_stop(px_worker_t *w, unsigned timeout_ms);
/* PROXY protocol (proxy.c): await the header of a new connection instead of
 * opening it; the bytes received meanwhile (res as px__conn_received's); the
 * state freed with the connection. */
void px__proxy_start(px_conn_t *c);
void px__proxy_received(px_conn_t *c, const char *data, int res);
void px__proxy_free(px_conn_t *c);
/* px__worker_stop for a hand-over: serve on for grace_ms first (px_engine_drain). */
void px__worker_drain(px_worker_t *w, unsigned grace_ms, unsigned timeout_ms);
/* Connections, their life (conn.c). All on the owning worker. */
px_conn_t *px__conn_new(px_worker_t *w, px_endpoint_t *ep, int fd);
/* Hand a registered socket to the application (on_open), then read. */
void px__conn_start(px_conn_t *c);
void px__conn_free(px_conn_t *c);
/* Free c if it is dead and nothing holds it any more (runs on_close). */
void px__conn_maybe_free(px_conn_t *c);
void px__conn_begin_shutdown(px_conn_t *c);
/* Cancel every operation; c goes when the last one has completed. */
void px__conn_kill(px_conn_t *c, int err);
/* The output drained after a close request: FIN, then linger. */
void px__conn_shut(px_conn_t *c);
/* The output drained after px_conn_shutdown_send: send the FIN (flush time). */
void px__conn_send_fin(px_conn_t *c);
/* Arm a receive if c wants to read and has none; stop the armed one. */
void px__conn_arm_recv(px_conn_t *c);
void px__conn_stop_recv(px_conn_t *c);
/* Activity: restart the idle timer. */
void px__conn_touch(px_conn_t *c);
/* Reading stops (pause, backpressure): the request deadline waits. */
void px__conn_hold_deadline(px_conn_t *c);
/* Reading may go on: held input first (at the next flush), then receive. */
void px__conn_unpause(px_conn_t *c);
/* Brackets of every handler call: counted, timed, IN_HANDLER set. */
uint64_t px__conn_handler_enter(px_conn_t *c);
void px__conn_handler_leave(px_conn_t *c, uint64_t t0);

static inline bool px__conn_paused(const px_conn_t *c)
{
    return c->state & (PX_CONN_PAUSED | PX_CONN_BACKPRESSURE);
}

/* The sending side is to be shut and its FIN is not out yet (a close in
 * progress sends its own). */
static inline bool px__conn_fin_due(const px_conn_t *c)
{
    return (c->state & (PX_CONN_SEND_SHUT | PX_CONN_FIN_SENT | PX_CONN_CLOSING | PX_CONN_DEAD)) ==
           PX_CONN_SEND_SHUT;
}

/* A handler of c is on some thread's stack (maybe blocked, handed off). */
static inline bool px__conn_in_handler(const px_conn_t *c)
{
    return c->state & PX_CONN_IN_HANDLER;
}

/* Client connections (connect.c). */
/* The connect of c ended with res (0 or -errno): open c, or close it. */
void px__conn_connected(px_conn_t *c, int res);
/* The writability poll armed for a connect ended with res. */
void px__conn_connect_polled(px_conn_t *c, int res);
/* Connect c's socket without blocking: 0 with *pending false (connected),
 * 0 with *pending true (a poll reports the end), or -errno. */
int px__connect_start(px_conn_t *c, const struct sockaddr *addr, socklen_t len, bool *pending);
/* An attempt of a race (race.c) connected (res 0) or failed. */
void px__race_attempt_done(px_conn_t *c, int res);

/* Connection handles (handle.c), on the owning worker. */
void px__handle_closing(struct px_handle *h);
/* c is being freed: drop its reference. */
void px__handle_detach(struct px_handle *h);
/* Let other threads see c's output level (backpressure of px_handle_send). */
void px__handle_moved(struct px_handle *h);
static inline void px__conn_publish_unsent(px_conn_t *c)
{
    if (c->handle != NULL) {
        atomic_store_explicit(&c->handle->unsent, c->unsent, memory_order_relaxed);
        px__handle_moved(c->handle);
    }
}

/* Memory budget (budget.c). */
void px__budget_init(px_engine_t *e);
/* With the pool figures (every POOL_STATS_TURNS turns, or POOL_STATS_MS when
 * quiet): publish the worker's figure; over budget, close slow readers. */
void px__budget_turn(px_worker_t *w);

/* Connections, their I/O (conn_io.c). */
/* Flush a connection's output: start a send if none is in flight, and
 * deliver what waited for a handler or a pause. */
void px__conn_flush(px_conn_t *c);
void px__conn_free_input(px_conn_t *c);
/* Keep data for later delivery (after what is held already). 0 or -ENOMEM. */
int px__conn_hold_input(px_conn_t *c, const char *data, size_t len);

/* The input tap (tap.c), on the owning worker. */
/* Received bytes for the tap: what it leaves is held and reading stops. */
void px__tap_deliver(px_conn_t *c, const char *data, size_t len);
/* The held input to the tap, as far as it takes it (flush, resume). */
void px__tap_feed(px_conn_t *c);
/* The end of the input (0) or an error / close of c (-errno), told once. */
void px__tap_end(px_conn_t *c, int err);
void px__conn_free_output(px_conn_t *c);

/* Engine threads and the hand-off (threads.c). */
px_thread_t *px__thread_current(void);
/* Start a thread that runs w at once (w NULL: a spare that parks). */
int px__thread_spawn(px_engine_t *e, px_worker_t *w);
/* Start a spare unless at_once are starting or the cap is reached: 0 or -errno. */
int px__thread_spawn_spare(px_engine_t *e, unsigned at_once);
/* Take w from the release observed as `seen` and give it to a thread waiting
 * for it back, else to a parked spare: 1 when taken, 0 when reacquired
 * meanwhile, -EAGAIN when no thread was free (a spare is being started). */
int px__worker_take(px_engine_t *e, px_worker_t *w, uint64_t seen);
/* Callbacks on w block: hand it off at release for a while (threads.c). */
void px__worker_blocking(px_worker_t *w);
/* Give w to t (a parked spare or a waiter), which runs it from then on. */
void px__thread_give(px_thread_t *t, px_worker_t *w);
/* A parked spare (threads_lock taken inside), or NULL; put one back. */
px_thread_t *px__thread_pop_idle(px_engine_t *e);
void px__thread_push_idle(px_engine_t *e, px_thread_t *t);
void px__threads_init(px_engine_t *e);
void px__threads_join(px_engine_t *e); /* supervisor, then every thread */
void px__threads_destroy(px_engine_t *e);
int px__handoff_worker_init(px_worker_t *w);
void px__handoff_worker_destroy(px_worker_t *w);
/* True while threads are inside w's code without owning it (owner only). */
bool px__worker_displaced(px_worker_t *w);
/* The calling thread's receive buffer (PX_SCRATCH_SIZE bytes), or NULL. */
char *px__thread_scratch(void);

/* The supervisor (supervisor.c). */
/* A condition variable on CLOCK_MONOTONIC, and a wait on one: false when ms
 * passed without a signal. */
void px__cond_init_monotonic(pthread_cond_t *cond);
bool px__cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, unsigned ms);
void px__supervisor_init(px_engine_t *e);
int px__supervisor_start(px_engine_t *e); /* only when handoff_ms > 0 */
/* A worker was released while the supervisor sleeps: wake it. Any thread. */
void px__supervisor_wake(px_engine_t *e);
void px__supervisor_stop(px_engine_t *e); /* every worker has finished */
void px__supervisor_join(px_engine_t *e);
void px__supervisor_destroy(px_engine_t *e);

/* Sockets (sockets.c). */
int px__resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                bool passive);
int px__listen_socket(const struct sockaddr *sa, socklen_t len, int backlog, bool join);
int px__socket_port(int fd);
void px__socket_tune(int fd, unsigned sock_flags);

/* Name lookups for clients (resolver.c), on threads of their own. */
#define PX_CONNECT_MAX_ADDRS 16 /* addresses of one name tried */
#define PX_RESOLVER_THREADS 8   /* lookups at once; more wait their turn */
typedef struct px_resolve_job {
    struct px_resolve_job *next; /* the resolver's queue */
    const char *host;
    int port;
    px_worker_t *w; /* where msg goes once resolved */
    px_msg_t *msg;
    int gai_err; /* result: 0, or EAI_* (EAI_SYSTEM: sys_err is the errno) */
    int sys_err;
    unsigned n; /* addresses, in the RFC 8305 order (families interleaved) */
    struct sockaddr_storage addrs[PX_CONNECT_MAX_ADDRS];
    socklen_t lens[PX_CONNECT_MAX_ADDRS];
} px_resolve_job_t;
int px__resolver_create(px_resolver_t **out);
/* Queue job: its msg is posted to job->w when resolved, or dropped if the
 * engine is destroyed first. 0, -ESHUTDOWN, or -errno (no thread). */
int px__resolver_submit(px_resolver_t *r, px_resolve_job_t *job);
/* The engine is going: drop queued jobs; busy threads finish on their own. */
void px__resolver_close(px_resolver_t *r);
/* job->host as a numeric address (or NULL/"": loopback), no lookup: 0 or EAI_*. */
int px__resolve_numeric(px_resolve_job_t *job);

/* Wake-up protocol shared by worker inboxes and the main queue. */
void px__wake(int fd, _Atomic int *pending);
void px__wake_ack(int fd, _Atomic int *pending);

#endif
