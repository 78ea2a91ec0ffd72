/*
 * The completion engine: one worker thread per CPU, each with its own ring (or
 * epoll instance), listeners, connections, timer wheel, pools and stats.
 *
 * Threads: px_engine_* functions are called from the controlling (main) thread
 * unless noted. Handlers run on the worker that owns the connection. Another
 * thread reaches a worker only through px_worker_post().
 *
 * A worker's code runs on one thread at a time, not always the same one: when
 * a handler blocks (between px_worker_release and px_worker_reacquire) for
 * handoff_ms while the worker has other work, a spare thread takes the worker
 * over (see "Hand-off" below).
 *
 * Errors: functions return >= 0 or -errno.
 */
#ifndef PX_ENGINE_H
#define PX_ENGINE_H

#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/types.h>
#include "px/common.h"
#include "px/histogram.h"
#include "px/hrtimer.h"
#include "px/queue.h"
#include "px/stats.h"

typedef struct px_engine px_engine_t;
typedef struct px_worker px_worker_t;
typedef struct px_conn px_conn_t;
typedef struct px_server px_server_t;

typedef enum px_backend_kind {
    PX_BACKEND_AUTO = 0, /* io_uring, falling back to epoll when refused */
    PX_BACKEND_URING,
    PX_BACKEND_EPOLL,
} px_backend_kind_t;

typedef struct px_engine_config {
    int workers; /* 0: one per CPU in the affinity mask */
    px_backend_kind_t backend;
    unsigned max_connections;  /* whole process; excess accepts are closed at once */
    unsigned recv_buffer_size; /* bytes per provided receive buffer */
    unsigned recv_buffers;     /* provided buffers per worker (power of two) */
    size_t send_high_water;    /* stop reading a connection above this unsent size */
    size_t send_low_water;     /* resume reading below this */
    size_t turn_budget;        /* bytes per connection per loop turn before it counts as a hog */
    unsigned ring_entries;     /* submission queue size */
    unsigned handoff_ms;       /* hand a worker blocked this long in a released
                                  handler to a spare thread; 0: never */
    unsigned uring_mask;       /* tests: PX_URING_* features to treat as missing
                                  (added to those the PX_URING_MASK environment
                                  variable names, see px_uring_mask_parse) */
    unsigned pool_idle_ms;     /* memory unused this long goes back to the system:
                                  pool slabs with no object in use, and the pages
                                  of io_uring receive buffers once no receive
                                  came; 0: never (kept for reuse) */
    size_t memory_budget;      /* whole process: bytes of request bodies and
                                  unsent output; past it new bodies are refused
                                  and the slowest readers closed. 0: the default
                                  (px_memory_budget_default) */
    unsigned handoff_threads;  /* most threads beyond one per worker that take
                                  over blocked workers; 0: the default,
                                  PX_DEFAULT_HANDOFF_THREADS */
} px_engine_config_t;

/* The io_uring features the engine uses, as the probe at px_engine_create
 * finds them. Each of PX_URING_REQUIRED must be there for the io_uring
 * backend; where one is missing, PX_BACKEND_AUTO falls back to epoll (one
 * line on stderr says why) and PX_BACKEND_URING fails with -EOPNOTSUPP.
 * PX_URING_RECV_CAP is used when there, and its absence only costs memory: a
 * paused connection may then hold more input read past the pause. */
enum {
    PX_URING_SETUP = 1u << 0,            /* the ring as set up: big CQ, cooperative
                                            task running, submit-all (Linux 5.19) */
    PX_URING_OPS = 1u << 1,              /* accept, recv, sendmsg, poll, cancel */
    PX_URING_BUF_RING = 1u << 2,         /* provided buffer rings (Linux 5.19) */
    PX_URING_RECV_MULTISHOT = 1u << 3,   /* multishot receive (Linux 6.0) */
    PX_URING_ACCEPT_MULTISHOT = 1u << 4, /* multishot accept (Linux 5.19) */
    PX_URING_CANCEL_FD = 1u << 5,        /* cancel all of a file's requests (5.19) */
    PX_URING_RECV_CAP = 1u << 6,         /* a byte cap on a multishot receive */
};
#define PX_URING_REQUIRED                                                          \
    (PX_URING_SETUP | PX_URING_OPS | PX_URING_BUF_RING | PX_URING_RECV_MULTISHOT | \
     PX_URING_ACCEPT_MULTISHOT | PX_URING_CANCEL_FD)

/* What the feature f (one PX_URING_* bit) is, in words, or NULL. */
const char *px_uring_feature_name(unsigned f);

/* The features named in s, comma-separated ("recv_multishot,cancel_fd"; the
 * names: setup, ops, buf_ring, recv_multishot, accept_multishot, cancel_fd,
 * recv_cap), as PX_URING_* bits; unknown names count for nothing. NULL or ""
 * gives 0. px_engine_create reads the PX_URING_MASK environment variable
 * with it, so that tests can play a kernel without some feature. */
unsigned px_uring_mask_parse(const char *s);

/* The defaults px_engine_config_default sets (workers 0: one per CPU; AUTO). */
#define PX_DEFAULT_MAX_CONNECTIONS 100000u
#define PX_DEFAULT_RECV_BUFFER_SIZE (16u << 10)
#define PX_DEFAULT_RECV_BUFFERS 1024u
#define PX_DEFAULT_SEND_HIGH_WATER ((size_t)1 << 20)
#define PX_DEFAULT_SEND_LOW_WATER ((size_t)256 << 10)
#define PX_DEFAULT_TURN_BUDGET ((size_t)256 << 10)
#define PX_DEFAULT_RING_ENTRIES 4096u
#define PX_DEFAULT_HANDOFF_MS 2u
/* Enough for a thousand handlers blocked at once (a slow upstream under a
 * burst); each costs the stack pages it touched (tens of KiB) while it lives. */
#define PX_DEFAULT_HANDOFF_THREADS 1024u
#define PX_DEFAULT_POOL_IDLE_MS 10000u       /* long enough that a steady load keeps its memory */
#define PX_DEFAULT_BACKLOG 4096              /* px_endpoint_config_t.backlog 0 */
#define PX_DEFAULT_PROXY_TIMEOUT_MS 5000     /* px_endpoint_config_t.proxy_timeout_ms 0 */
#define PX_DEFAULT_CONNECT_TIMEOUT_MS 30000u /* a client's whole connect, all addresses */
#define PX_DEFAULT_CONNECT_DELAY_MS 250u     /* RFC 8305 connection attempt delay */

/* Fill cfg with the defaults above. */
void px_engine_config_default(px_engine_config_t *cfg);

/* Why a client connection never came to be (px_handler_t.on_connect_error). */
typedef struct px_connect_error {
    int err;        /* -errno: the cause all attempts share, else the first attempt's;
                       -ETIMEDOUT: the connect timeout ran out; -EADDRNOTAVAIL: the
                       name lookup failed (gai_err says why); -ECANCELED: the
                       worker shut down */
    int gai_err;    /* EAI_* of the failed lookup, else 0 */
    int sys_err;    /* gai_err EAI_SYSTEM: the errno */
    unsigned count; /* attempts made (one per address tried) */
    const struct sockaddr_storage *addrs; /* count addresses, in the order tried */
    const int *errs;                      /* each attempt's -errno */
} px_connect_error_t;
/* The memory budget memory_budget 0 stands for: a quarter of the memory the
 * process may use (physical memory, or the cgroup's limit when lower), at
 * least PX_MIN_MEMORY_BUDGET. */
#define PX_MIN_MEMORY_BUDGET ((size_t)64 << 20)
size_t px_memory_budget_default(void);

/* The engine's memory budget in bytes (its config's, or the default). */
size_t px_engine_memory_budget(const px_engine_t *e);

/* Calls from the engine into the application, on the connection's worker. */
typedef struct px_handler {
    /* A connection was accepted or connected. Return < 0 to close it. */
    int (*on_open)(px_conn_t *c);
    /* len bytes arrived; data is valid only during the call. Return < 0 to close. */
    int (*on_data)(px_conn_t *c, const char *data, size_t len);
    /* Everything queued so far has been written to the socket. */
    void (*on_drain)(px_conn_t *c);
    /* The peer closed its side (0) or a receive failed (-errno). After an
     * error the connection is gone; after the end of stream it closes once its
     * queued output has been sent, unless half-close is on
     * (px_conn_set_half_close): then it stays open for sending. */
    void (*on_eof)(px_conn_t *c, int err);
    /* Final call: the connection is closed and c is invalid once this returns.
     * err is 0 for an orderly close, else -errno (-ETIMEDOUT: idle timeout). */
    void (*on_close)(px_conn_t *c, int err);
    /* A client connection could not even be created (no socket, no memory):
     * udata is the endpoint's; there is no connection. */
    void (*on_connect_failed)(void *udata, int err);
    /* A client never connected (lookup failed, every address failed, timeout,
     * shutdown), with the details; when set, called instead of
     * on_connect_failed for those. udata is the endpoint's. */
    void (*on_connect_error)(void *udata, const px_connect_error_t *err);
    /* The sending side asked shut by px_conn_shutdown_send is shut: everything
     * queued before has been sent, then the FIN. Input still arrives. */
    void (*on_send_shut)(px_conn_t *c);
    /* The worker is stopping and closes c (outside its handlers; no more
     * input): the protocol's last word (a WebSocket's close frame), then
     * px_conn_close. NULL: px_conn_close. The stop timeout still aborts what
     * is left. */
    void (*on_shutdown)(px_conn_t *c);
} px_handler_t;

/* Per-thread hooks for the embedding runtime (e.g. to attach an interpreter).
 * They run on every engine thread: the one per worker started with the
 * engine, and the spares started for hand-offs. A thread may run different
 * workers over its life, so per-thread state belongs to the thread. */
typedef struct px_thread_hooks {
    /* First thing on a new thread; w is the worker it starts with, NULL for a spare. */
    void (*thread_start)(px_worker_t *w, void *arg);
    /* Last thing before the thread exits (after every worker finished); w is NULL. */
    void (*thread_stop)(px_worker_t *w, void *arg);
    /* Called before the thread may block: in the kernel (w: its worker), waiting
     * in px_worker_reacquire (w), or parked as a spare (NULL). */
    void (*before_wait)(px_worker_t *w, void *arg);
    void *arg;
} px_thread_hooks_t;

/* Socket behaviour of a server's or client's connections. */
enum {
    PX_SOCK_NODELAY = 1u << 0,    /* low latency: no Nagle delays */
    PX_SOCK_THROUGHPUT = 1u << 1, /* big socket buffers, Nagle kept */
    PX_SOCK_SMALL = 1u << 2,      /* smallest footprint per connection */
};

typedef struct px_endpoint_config {
    const px_handler_t *handler;
    void *udata;                 /* available as px_server_udata() */
    unsigned sock_flags;         /* PX_SOCK_* */
    unsigned idle_timeout_ms;    /* 0: none */
    int backlog;                 /* listeners only; 0: PX_DEFAULT_BACKLOG */
    int listen_fd;               /* listeners only: a bound, listening, non-blocking
                                    SO_REUSEPORT socket to use as the first worker's
                                    listener (the engine takes it), or -1 */
    unsigned connect_timeout_ms; /* clients: for the whole connect; 0: the default */
    unsigned connect_delay_ms;   /* clients: before the next address is tried while
                                    one attempt is still pending; 0: the default */
    bool reuse_port;             /* listeners only: share the port with sockets of
                                    other processes (SO_REUSEPORT from the start:
                                    the kernel splits the connections); false: a
                                    port another socket holds is -EADDRINUSE */
    bool proxy_protocol;         /* listeners only: each connection starts with a
                                    PROXY protocol header (v1 or v2) from a load
                                    balancer; the connection opens once it is in
                                    (px_conn_peer_addr: the client it names) and
                                    is closed unopened on anything else */
    unsigned proxy_timeout_ms;   /* for that header; 0: PX_DEFAULT_PROXY_TIMEOUT_MS */
} px_endpoint_config_t;

/* Create an engine (threads are not started). *out owned by the caller.
 * The backend is chosen here: with PX_BACKEND_AUTO io_uring when the probe
 * finds every feature it needs and the workers get their rings, else epoll.
 * 0, -EINVAL (recv_buffers not a power of two), -ENOMEM, or with
 * PX_BACKEND_URING why io_uring cannot serve (-EOPNOTSUPP: a feature is
 * missing; -EPERM, -ENOSYS: refused). */
int px_engine_create(const px_engine_config_t *cfg, const px_thread_hooks_t *hooks,
                     px_engine_t **out);

/* Listen on host:port (port 0 picks a free port) with one SO_REUSEPORT socket
 * per worker. May be called before or after px_engine_start. Returns the bound
 * port (> 0) or -errno: -EADDRINUSE when another socket (of this or another
 * process) holds the port, unless cfg->reuse_port. *out stays owned by the
 * engine. */
int px_engine_listen(px_engine_t *e, const char *host, int port, const px_endpoint_config_t *cfg,
                     px_server_t **out);

/* Connect to host:port from worker w (NULL: one chosen round-robin), which
 * then owns the connection. Any thread, workers included: nothing here
 * blocks. A numeric host is used as is; a name is looked up on the engine's
 * resolver threads. Every address of the name is tried as RFC 8305 says:
 * families interleaved, the first family as the lookup gave it, the next
 * attempt started cfg->connect_delay_ms after the last while it is pending
 * (at once when it fails); the first to connect wins and the others are
 * cancelled. The handler's on_open runs once connected; when it never does
 * (lookup failed, every attempt failed, cfg->connect_timeout_ms ran out),
 * on_connect_error (or, without it, on_connect_failed) on w. 0, or -ENOMEM,
 * -ESHUTDOWN. A request that reaches w after its loop ended is dropped
 * without a call. */
int px_engine_connect_on(px_engine_t *e, px_worker_t *w, const char *host, int port,
                         const px_endpoint_config_t *cfg);

/* px_engine_connect_on with a worker chosen round-robin. */
int px_engine_connect(px_engine_t *e, const char *host, int port, const px_endpoint_config_t *cfg);

/* Connect to an address already resolved, from worker w (any thread; for a
 * client that must live on a given worker, or reconnects without a lookup).
 * Otherwise as px_engine_connect_on. 0, -EINVAL (bad length) or -ENOMEM. */
int px_worker_connect(px_worker_t *w, const struct sockaddr *addr, socklen_t len,
                      const px_endpoint_config_t *cfg);

/* Serve fd, a stream socket already connected (by other code: asyncio's
 * create_connection(sock=...)), as a client connection of worker w (NULL: one
 * chosen round-robin): it opens on w as a connect that succeeded does
 * (on_open, then reads). fd is the engine's from this call on, whatever the
 * outcome: made non-blocking and close-on-exec here, closed on failure. Any
 * thread. 0, or -EINVAL (not a stream socket), -ENOTSOCK, -EBADF, -ENOMEM;
 * later failures report on_connect_failed on w. */
int px_engine_adopt_on(px_engine_t *e, px_worker_t *w, int fd, const px_endpoint_config_t *cfg);

/* Start the worker threads. */
int px_engine_start(px_engine_t *e);

/* Begin a graceful shutdown: stop accepting, stop reading, close idle
 * connections; a connection whose handler is running closes once it has
 * returned, so what it answers is sent (px_conn_draining is true meanwhile);
 * queued sends finish before each close. After timeout_ms abort what is left
 * (a handler still running then has its answer dropped). Any thread. */
void px_engine_shutdown(px_engine_t *e, unsigned timeout_ms);

/* Begin a graceful hand-over to another process that serves the same
 * listening sockets (a zero-downtime restart): stop accepting without
 * disturbing the sockets (no shutdown(2): the other process accepts their
 * queued connections), and serve the open connections on for grace_ms:
 * px_conn_draining is true, so an HTTP server answers each request with
 * Connection: close and closes. Then as px_engine_shutdown with timeout_ms.
 * A worker with no connection left finishes early. Any thread. */
void px_engine_drain(px_engine_t *e, unsigned grace_ms, unsigned timeout_ms);

/* Announce a coming stop while serving on (a stop's drain grace, so that a
 * load balancer takes the process out before its connections close): from
 * now on px_conn_draining is true on every connection, so an HTTP server's
 * health endpoint answers 503 and each answer says Connection: close; the
 * listeners go on accepting. px_engine_shutdown ends it. Any thread. */
void px_engine_announce_stop(px_engine_t *e);

/* The listening sockets of every server, oldest server first, each server's
 * in listener order (what a new process needs to serve the same ports).
 * Writes at most max descriptors, which stay the engine's. Returns the count
 * or -ENOSPC. Any thread. */
int px_engine_listen_fds(px_engine_t *e, int *out, int max);

/* True once every worker has finished. Any thread. */
bool px_engine_finished(px_engine_t *e);

/* Wait for the workers to exit (after px_engine_shutdown). */
int px_engine_join(px_engine_t *e);

/* Free everything. The engine must be joined or never started. Messages
 * still queued, for workers or the main thread, are dropped (px_msg_drop) on
 * the calling thread: call px_engine_main_discard first where the main
 * queue's drops need the main thread's context. */
void px_engine_destroy(px_engine_t *e);

int px_engine_worker_count(const px_engine_t *e);
px_worker_t *px_engine_worker(px_engine_t *e, int i);
/* "io_uring" or "epoll": what the workers really use (after the fallback). */
const char *px_engine_backend_name(const px_engine_t *e);
/* Why io_uring was not used (-errno), or 0: -EOPNOTSUPP when the kernel
 * lacks a feature the engine needs (px_engine_uring_missing says which),
 * else what io_uring_setup or the workers' set-up failed with. */
int px_engine_uring_error(const px_engine_t *e);
/* The PX_URING_* features the probe found (masked ones cleared); 0 when it
 * did not run (PX_BACKEND_EPOLL) or io_uring was refused. */
unsigned px_engine_uring_features(const px_engine_t *e);
/* The first required feature that was missing, in words, or NULL. */
const char *px_engine_uring_missing(const px_engine_t *e);

/* A message to a thread. It carries its own teardown, so that nobody has to
 * recognise a message to release it:
 *   fn    runs on the receiving thread (w is NULL on the main thread) and owns
 *         m from then on (it frees m when m was allocated for the trip);
 *   drop  runs instead of fn when the message will never run: it is still
 *         queued for a worker when px_engine_destroy runs, or on the main
 *         queue when px_engine_main_discard runs. It releases m and what m
 *         carries, on the thread that calls those two. NULL: nothing to
 *         release (m is embedded in a struct that outlives the queue).
 * Set both (px_msg_init) before a message is first posted; in a zeroed
 * struct, drop is already NULL. */
typedef struct px_msg px_msg_t;
typedef void px_msg_fn(px_worker_t *w, px_msg_t *m);
typedef void px_msg_drop_fn(px_msg_t *m);
struct px_msg {
    px_mpsc_node_t node;
    px_msg_fn *fn;
    px_msg_drop_fn *drop;
};

static inline void px_msg_init(px_msg_t *m, px_msg_fn *fn, px_msg_drop_fn *drop)
{
    m->fn = fn;
    m->drop = drop;
}

/* Release m without running it (its drop, if any). */
static inline void px_msg_drop(px_msg_t *m)
{
    if (m->drop != NULL)
        m->drop(m);
}

/* Queue m for worker w; any thread. m belongs to w until fn (or, when w
 * never runs it, drop) runs. A message posted after w left its loop is
 * dropped by px_engine_destroy. */
void px_worker_post(px_worker_t *w, px_msg_t *m);

/* Queue m for worker w with a promise: once accepted (0), fn runs on w exactly
 * once, also while w shuts down (a worker runs what it accepted before its
 * thread exits, after its connections are gone). -ESHUTDOWN once w has left
 * its loop: m was not queued and still belongs to the caller. Any thread,
 * w's own included. A worker that never starts keeps what it accepted until
 * px_engine_destroy, which drops it (px_msg_drop) without running it. */
int px_worker_submit(px_worker_t *w, px_msg_t *m);

/* Messages (accepted by px_worker_submit or posted) that w has not run yet.
 * Any thread; a snapshot, for choosing the least loaded worker. */
unsigned px_worker_backlog(const px_worker_t *w);

/* The main thread's queue: workers post, the main thread polls main_fd
 * (readable when messages may be waiting) and pops. */
void px_engine_post_main(px_engine_t *e, px_msg_t *m);
int px_engine_main_fd(const px_engine_t *e);
/* Next message for the main thread, or NULL. Clears the wake-up when empty. */
px_msg_t *px_engine_main_pop(px_engine_t *e);
/* Drop (px_msg_drop) every message left on the main queue: the main thread,
 * once it will pop no more (before px_engine_destroy). */
void px_engine_main_discard(px_engine_t *e);

/* Worker facts. */
int px_worker_index(const px_worker_t *w);
px_engine_t *px_worker_engine(px_worker_t *w);
px_worker_stats_t *px_worker_stats(px_worker_t *w);
void *px_worker_udata(const px_worker_t *w);
void px_worker_set_udata(px_worker_t *w, void *udata);
/* The worker whose code is on the calling thread's stack (owned or
 * released), or NULL. */
px_worker_t *px_worker_current(void);
/* w's timer wheel, for timers of the application (px/timer.h). Only on w's
 * thread: inside a handler, a message's fn or a timer callback. Its timers
 * fire on w; those still armed when w exits never fire. Its clock is brought
 * to the real time before messages run and before completions are dispatched;
 * inside a handler it may lag behind by what ran earlier in the same turn
 * (px_now_ms() - wheel->now), which a timer that must not fire early adds to
 * its delay. */
struct px_wheel *px_worker_wheel(px_worker_t *w);

/* What the stats report reads from any thread (see px/histogram.h, px/stats.h). */
typedef enum px_latency_kind {
    PX_LATENCY_REQUEST,  /* HTTP: complete request to response queued */
    PX_LATENCY_CALLBACK, /* duration of each application callback */
} px_latency_kind_t;
/* Record only on the worker's own thread; merge from any thread. */
px_histogram_t *px_worker_latency(px_worker_t *w, px_latency_kind_t kind);
/* px_ticks() (px/clock.h) at which the worker's running application callback
 * began, or 0 when it is not inside one (a callback that has run for long is
 * one that hogs its worker). */
uint64_t px_worker_callback_since(const px_worker_t *w);
/* Around application code the engine does not call itself (a message's fn, a
 * timer callback of the application): counts it as a callback, times it into
 * the callback latency and publishes it to px_worker_callback_since, as the
 * handlers are. Only on w's thread; leave gets what enter returned. */
uint64_t px_worker_callback_enter(px_worker_t *w);
void px_worker_callback_leave(px_worker_t *w, uint64_t t0);
/* CPU time the worker thread has used (user + system), in ns; its final value
 * once the thread has ended; 0 before it starts. */
uint64_t px_worker_cpu_ns(const px_worker_t *w);

/* Precise timers on worker w, called on w only (in a handler, a message or a
 * timer of w): t->cb runs on w at or soon after deadline_ns (px_now_ns() clock);
 * the worker's sleep is cut short for it to the microsecond, where the wheel of
 * connection timeouts ticks in milliseconds. Timers still armed when the worker
 * exits are dropped. Start returns 0 or -ENOMEM. */
int px_worker_hrtimer_start(px_worker_t *w, px_hrtimer_t *t, uint64_t deadline_ns);
void px_worker_hrtimer_stop(px_worker_t *w, px_hrtimer_t *t);

/* ---- Hand-off ----------------------------------------------------------------
 *
 * Code that may block for long (a call into an interpreter, a blocking
 * syscall) runs between px_worker_release and px_worker_reacquire. Meanwhile
 * the worker may be taken over by another thread, which keeps serving its
 * other connections, timers and messages; the releasing thread gets it back
 * at the end of that thread's current loop turn.
 *
 * Between the two calls the thread must not touch the worker: no px_conn_*
 * call, no connection fields, no px_worker_wheel timers (only
 * px_worker_post, which any thread may call). An engine call made from there
 * is bracketed the other way round: reacquire, the call, release. Handlers of
 * the connection whose handler released are never called meanwhile (input,
 * end of stream and on_drain wait for it to return), and it is not freed.
 *
 * Both return true when they changed the thread's state, false when there was
 * nothing to do: handoff_ms is 0, the thread runs no worker, runs another
 * one, or already is in the asked state. A caller pairs them accordingly:
 *
 *     bool released = px_worker_release(w);
 *     ... code that may block ...
 *     if (released)
 *         px_worker_reacquire(w);
 *
 *     bool reacquired = px_worker_reacquire(w);   (from released code)
 *     px_conn_send(c, ...);
 *     if (reacquired)
 *         px_worker_release(w);
 *
 * Release costs a load and a store, reacquire a compare-and-swap, unless the
 * worker was taken: then reacquire calls the before_wait hook and sleeps until
 * the worker comes back. Only on w's threads (px_worker_current() == w). */
bool px_worker_release(px_worker_t *w);
bool px_worker_reacquire(px_worker_t *w);

/* px_worker_release for code expected back soon (an asyncio step, which by
 * asyncio's rules does not block): never the eager hand-off that follows a
 * recent block (on a GIL build that would pass the worker between threads
 * that only wait for the interpreter); the supervisor still hands w off when
 * it stays away for handoff_ms. Paired with px_worker_reacquire. */
bool px_worker_release_brief(px_worker_t *w);

/* Release again after an engine call made from released code (between a
 * px_worker_reacquire and the code's return to it), the way the thread last
 * released w: an asyncio step's engine calls stay brief, a blocking handler's
 * do not. */
bool px_worker_release_again(px_worker_t *w);

/* Released code that is about to wait (a lock, a queue) for work which runs on
 * w itself, such as a task of w's event loop: hand w to a spare thread now.
 * The engine cannot tell that wait from a runtime's short lock waits, which
 * it hands off only after a while (and such a wait does not make w's later
 * releases hand off eagerly). True when it did something; false when the
 * thread does not hold w released, w went off at the release already, or w
 * has finished. */
bool px_worker_waiting(px_worker_t *w);

/* True when the calling thread runs w's code now, owning it (not released):
 * the thread on which px_conn_* calls on w's connections are allowed. */
bool px_worker_owned(const px_worker_t *w);

/* The engine's handoff_ms: 0 when a released worker is never taken over, so
 * that code which waits for its own worker must not wait. */
unsigned px_engine_handoff_ms(const px_engine_t *e);

/* Connections. Call only on the owning worker (inside handlers, or from a
 * message posted to that worker); other threads use the connection's handle
 * (px/handle.h). */

/* Queue bytes (copied) for sending; they leave at the end of the loop turn,
 * gathered with whatever else is queued. 0, or -ENOTCONN once closing, -EPIPE
 * once the sending side is shut (px_conn_shutdown_send), -ENOMEM. */
int px_conn_send(px_conn_t *c, const struct iovec *iov, int iovcnt);

/* Queue count bytes of fd from offset, sent without copying through user space,
 * in order with buffered data. The engine takes ownership of fd (closes it). */
int px_conn_sendfile(px_conn_t *c, int fd, off_t offset, size_t count);

/* Close after everything queued has been sent. */
void px_conn_close(px_conn_t *c);
/* Close now, dropping unsent data. */
void px_conn_abort(px_conn_t *c);

/* Half-close (TCP's shutdown). With on set, the peer's end of stream (on_eof
 * with 0) leaves c open for sending: c then closes when the application closes
 * it, or once its own sending side is shut as well (px_conn_shutdown_send).
 * Off (the default), the end of stream closes c after its queued output. */
void px_conn_set_half_close(px_conn_t *c, bool on);

/* With on (the default), the engine stops reading c while c's unsent output
 * is over send_high_water, and reads again below send_low_water. Off, c's
 * output never stops its reading: for a relay, whose output on c comes from
 * another connection and whose reader on c feeds a third side, so it pauses
 * the right reader itself (a download c does not read yet must not stop its
 * upload). */
void px_conn_set_output_backpressure(px_conn_t *c, bool on);

/* Shut c's sending side: once everything queued so far has been sent, a FIN
 * (shutdown SHUT_WR) tells the peer no more data comes, and on_send_shut runs.
 * c keeps receiving; once the peer's end of stream has come too, c closes.
 * Sends from now on fail with -EPIPE. 0 (also when already asked), -ENOTCONN
 * once c is closing. */
int px_conn_shutdown_send(px_conn_t *c);

/* Stop / resume delivering on_data (best effort: bytes already read still arrive). */
void px_conn_pause(px_conn_t *c);
void px_conn_resume(px_conn_t *c);
/* Pause now and resume after ms milliseconds (rate limiting). */
void px_conn_pause_for(px_conn_t *c, unsigned ms);

/* True while on_data is held back: the application paused c, or its unsent
 * output is over send_high_water (until it drains below send_low_water), or
 * px_conn_wait_output holds it. */
bool px_conn_paused(const px_conn_t *c);

/* Stop reading until the output queue holds no file range and at most
 * send_low_water bytes (a server that answers one request at a time keeps at
 * most one file open per connection this way). */
void px_conn_wait_output(px_conn_t *c);

/* Inside on_data while c is paused (px_conn_paused): the last len bytes of the
 * data being delivered were not consumed. The engine keeps them and delivers
 * them again, before any newer input, once reading resumes. 0 or -ENOMEM. */
int px_conn_unread(px_conn_t *c, const char *data, size_t len);

/* Memory budget (px_engine_config_t.memory_budget). An application buffer
 * that grows or shrinks by delta bytes on c's behalf (a request body being
 * received) is charged to c's worker, next to the output queued on it. */
void px_conn_charge(px_conn_t *c, int64_t delta);
/* True when taking `more` bytes would put the process over its budget (an
 * estimate: workers publish their figures in steps of a fraction of it). */
bool px_conn_over_budget(const px_conn_t *c, size_t more);

/* Input for a handler that blocks (a request body its handler reads while it
 * runs released on another thread). While a tap is set on c, the bytes
 * received for c go to tap->on_data instead of the handler's on_data, on c's
 * worker, also while a handler of c runs released: on_data returns the bytes
 * it took; what it leaves is held, and reading stops, until
 * px_conn_tap_resume. The end of c's input is told to tap->on_end, once:
 * 0 when the peer closed its side, -errno when a receive failed or c is being
 * closed or killed (the handler's on_eof still waits for the handler, as
 * usual). Both run on c's worker, must not block, and may call px_conn_* on
 * c. Set (tap borrowed until cleared) or clear (NULL) on the owning worker;
 * once cleared, input held meanwhile goes to the handler's on_data, at the
 * next flush after no handler of c runs. Pauses (px_conn_pause,
 * backpressure) hold the tap's input as they hold on_data's. */
typedef struct px_conn_tap {
    size_t (*on_data)(px_conn_t *c, const char *data, size_t len, void *arg);
    void (*on_end)(px_conn_t *c, int err, void *arg);
    void *arg;
} px_conn_tap_t;
void px_conn_set_tap(px_conn_t *c, const px_conn_tap_t *tap);
/* Offer the input held for the tap to it again; once it took all of it,
 * read on. Owning worker (from a message: px_handle_run). */
void px_conn_tap_resume(px_conn_t *c);

void px_conn_set_idle_timeout(px_conn_t *c, unsigned ms);

/* Close the connection (as an idle timeout would) ms milliseconds from now
 * unless cleared with ms 0 first; activity does not move it (a deadline for a
 * complete request head against slow senders). It only runs while the engine
 * reads the connection: paused (by backpressure or px_conn_pause) it is held. */
void px_conn_set_deadline(px_conn_t *c, unsigned ms);

void *px_conn_udata(const px_conn_t *c);
void px_conn_set_udata(px_conn_t *c, void *udata);
void *px_conn_server_udata(const px_conn_t *c); /* the endpoint's udata */
/* A second pointer for the application above a protocol layer that keeps
 * udata for itself (an HTTP app's per-connection state); NULL at accept. The
 * owning worker's thread. */
void *px_conn_app_data(const px_conn_t *c);
void px_conn_set_app_data(px_conn_t *c, void *data);
px_worker_t *px_conn_worker(const px_conn_t *c);
int px_conn_fd(const px_conn_t *c);
uint64_t px_conn_id(const px_conn_t *c);
size_t px_conn_unsent(const px_conn_t *c);
bool px_conn_is_client(const px_conn_t *c);
bool px_conn_closing(const px_conn_t *c);
/* The connection died because writing to it failed (a send, a sendfile, or
 * the wait for room): its close error is that failure's. */
bool px_conn_send_failed(const px_conn_t *c);
/* The engine is shutting down: c closes once the exchange in progress is
 * answered (an HTTP answer says Connection: close). The owning worker's thread
 * (or c's handler). */
bool px_conn_draining(const px_conn_t *c);
/* The client's address: the one a PROXY protocol header named, else the
 * socket's peer (getpeername). 0 or -errno. The owning worker. */
int px_conn_peer_addr(const px_conn_t *c, struct sockaddr_storage *ss, socklen_t *len);

#endif
