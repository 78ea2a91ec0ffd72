/*
 * Connection handles: a connection used from threads that do not own it.
 *
 * A px_conn_t may only be touched on its worker. A handle stands for the
 * connection anywhere else: any thread may send on it, close, abort, pause or
 * resume it. Each call is copied into a message posted to the owning worker,
 * which applies it there if the connection still exists. The handle is
 * reference counted and outlives the connection: once the connection is gone,
 * calls fail (-ENOTCONN) and nothing touches freed memory.
 *
 * Order: the calls made by one thread on one handle are applied in the order
 * made (the worker's inbox is first in, first out); calls of different threads
 * interleave as they reach the inbox. A px_conn_* call of the owner is not
 * ordered against them by itself: an owner that must come after what others
 * posted posts too (with force) while px_handle_pending says calls wait.
 *
 * Backpressure: bytes posted and not yet queued on the connection count with
 * its unsent output; above the engine's send_high_water a send is refused
 * (-EAGAIN, nothing taken) unless forced. A send is taken while the level is
 * at or below the mark, so one message may overshoot it.
 *
 * After close or abort (by anyone) the connection takes no more sends: sends
 * fail with -ENOTCONN. What was posted before the close is sent before it;
 * what a racing thread posted after the close is dropped when it arrives.
 *
 * Threads: px_conn_handle on the owning worker only; the rest on any thread,
 * until px_engine_destroy. Errors: functions return >= 0 or -errno.
 */
#ifndef PX_HANDLE_H
#define PX_HANDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "px/engine.h"

typedef struct px_handle px_handle_t;

/* The handle of c with one reference for the caller (the first call makes
 * it). Owning worker only. NULL when out of memory. */
px_handle_t *px_conn_handle(px_conn_t *c);

/* Take and drop a reference; any thread. */
void px_handle_ref(px_handle_t *h);
void px_handle_release(px_handle_t *h);

/* Queue the iovcnt pieces of iov (copied) on the connection. 0; -EAGAIN when
 * over the high-water mark and not forced (nothing taken); -ENOTCONN once the
 * connection is closing or gone; -EPIPE once its sending side is shut or
 * asked to be; -ESHUTDOWN when the worker has stopped; -ENOMEM. A send racing
 * a px_handle_shutdown_send from another thread (no order between the two
 * threads) may be taken (0) and then dropped: the worker applies it after the
 * shutdown. Order the threads to have it sent. */
int px_handle_send(px_handle_t *h, const struct iovec *iov, int iovcnt, bool force);

/* Close after everything queued (and posted before) has been sent; abort:
 * close now, dropping unsent data. 0 (also when already closed: nothing to
 * do), -ENOMEM. */
int px_handle_close(px_handle_t *h);
int px_handle_abort(px_handle_t *h);

/* Shut the sending side once everything queued (and posted before) has been
 * sent (px_conn_shutdown_send); sends after it fail with -EPIPE. 0 (also
 * when already asked, or closing or gone: nothing left to shut), -ESHUTDOWN,
 * -ENOMEM. */
int px_handle_shutdown_send(px_handle_t *h);

/* True once the sending side is shut or asked to be (by anyone). */
bool px_handle_send_shut(const px_handle_t *h);

/* Stop or resume reading (px_conn_pause, px_conn_resume). 0, -ENOTCONN once
 * closing or gone, -ESHUTDOWN, -ENOMEM. */
int px_handle_pause(px_handle_t *h);
int px_handle_resume(px_handle_t *h);

/* Run fn(c, arg) on the owning worker, in order with the other calls: c is
 * the connection (closing, maybe), or NULL when it was freed meanwhile or the
 * message is dropped (at px_engine_destroy: fn then runs on that thread).
 * fn must not block. 0 (fn will run exactly once), -ENOTCONN (the connection
 * is gone: fn will not run), -ESHUTDOWN, -ENOMEM. */
typedef void px_handle_fn(px_conn_t *c, void *arg);
int px_handle_run(px_handle_t *h, px_handle_fn *fn, void *arg);

/* True while calls posted through h have not been applied (or dropped) yet:
 * an owner's call made directly now would overtake them. */
bool px_handle_pending(const px_handle_t *h);

/* True once the connection is closing or gone (or a close was posted). */
bool px_handle_closed(const px_handle_t *h);

/* Bytes posted and not yet queued plus the connection's unsent output as its
 * worker last published it: what the high-water mark is compared with. */
size_t px_handle_queued(const px_handle_t *h);

/* The engine's send_high_water (above it sends are refused) and
 * send_low_water (the level at which a refused writer may go on). */
size_t px_handle_high_water(const px_handle_t *h);
size_t px_handle_low_water(const px_handle_t *h);

/* Block until px_handle_queued(h) is at or below level, the connection is
 * closing or gone, or timeout_ms passes (< 0: no limit). 0; -ENOTCONN;
 * -ETIMEDOUT. Any thread but the owning worker's while it owns it (its output
 * would never move): a released handler may wait. */
int px_handle_wait_queued(px_handle_t *h, size_t level, int timeout_ms);

/* Call fn(h, arg) once, the next time the connection's queued output falls
 * to send_low_water or it closes: on the owning worker, inside the engine's
 * send completion, or at once on the calling thread when the level already is
 * there. So fn must not block and must not call px_conn_*: it posts
 * (px_handle_run) or signals. One watch at a time: a second replaces the
 * first, which is called then, early, on the calling thread (so that an arg
 * holding a reference is never lost). 0, -ENOTCONN once gone. Any thread. */
typedef void px_handle_watch_fn(px_handle_t *h, void *arg);
int px_handle_watch_low(px_handle_t *h, px_handle_watch_fn *fn, void *arg);

/* The owning worker, and the connection's id (px_conn_id). */
px_worker_t *px_handle_worker(const px_handle_t *h);
uint64_t px_handle_id(const px_handle_t *h);

#endif
