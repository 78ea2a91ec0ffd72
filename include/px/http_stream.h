/*
 * Streamed HTTP bodies, both ways.
 *
 * Responses: a handler starts a response whose body it (or any other thread)
 * writes later, after the handler call returned if it likes: with a known
 * length (enforced), or of unknown length, sent chunked to HTTP/1.1 clients
 * and delimited by the close of the connection for HTTP/1.0 ones. The
 * connection's next pipelined request waits until the stream has ended.
 *
 * Request bodies: with px_http_config_t.stream_bodies, the app is called as
 * soon as a request head is in, and reads the body as it arrives with
 * px_http_body_read, blocking (the worker is handed to another thread
 * meanwhile), through a bounded buffer: a 1 GB upload costs the buffer, not a
 * gigabyte. Expect: 100-continue is answered when the app first reads.
 *
 * Errors: functions return >= 0 or -errno.
 */
#ifndef PX_HTTP_STREAM_H
#define PX_HTTP_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "px/http_server.h"

/* ---- streamed responses -----------------------------------------------------
 *
 * Threads: px_http_stream_start on the connection's worker, inside the
 * handler call of x while it owns its worker (a handler that released it
 * reacquires around the call). Everything else on any thread, until the last
 * reference is released: a write of the owning worker goes straight to the
 * connection, one of another thread (or of a released handler) is posted to
 * the worker through the connection's handle (px/handle.h). The calls of one
 * thread are applied in the order made; calls of several threads are ordered
 * by the stream's own lock, so the body is never interleaved within a write.
 *
 * Backpressure: bytes written and not yet sent count against the engine's
 * send_high_water; over it a write is refused (-EAGAIN, nothing taken)
 * unless PX_HTTP_STREAM_FORCE. The writer then waits with
 * px_http_stream_wait (a thread that may block), or for the
 * PX_HTTP_STREAM_WRITABLE event (an event-driven owner).
 *
 * The client going away (end of its stream, a reset, a failed send, the
 * connection closed by a timeout or a shutdown) closes the stream: writes
 * fail with -EPIPE, waits return -EPIPE, and the owner gets
 * PX_HTTP_STREAM_CLOSED with the reason. A connection is never left with a
 * corrupt response: a body longer or shorter than the length announced, an
 * abort, or a stream released without px_http_stream_end all close the
 * connection, so that the client sees a truncated response (a short
 * Content-Length body, or a chunked body without its last chunk), never a
 * response that parses as something else.
 */
typedef struct px_http_stream px_http_stream_t;

/* px_http_stream_config_t.length of a body whose length is not known. */
#define PX_HTTP_LENGTH_UNKNOWN (-1)

/* Events the stream reports to its owner (px_http_stream_config_t.on_event),
 * on the connection's worker (possibly while the handler that started the
 * stream still runs, released, on another thread). on_event must not block;
 * it may write to the stream. */
enum {
    /* A write was refused with -EAGAIN and the output has fallen to the
     * engine's send_low_water since: write again. */
    PX_HTTP_STREAM_WRITABLE = 1,
    /* The stream is over; err says why: 0 it ended (px_http_stream_end),
     * -EPIPE the client closed or reset the connection, -ETIMEDOUT a timeout
     * closed it, -ECONNABORTED it was aborted (px_http_stream_abort, a length
     * not met, a stream released unfinished, a shutdown). Reported once, and
     * the last event. */
    PX_HTTP_STREAM_CLOSED = 2,
};
typedef void px_http_stream_event_fn(px_http_stream_t *st, int event, int err, void *arg);

typedef struct px_http_stream_config {
    int status;               /* 200..999 */
    const char *content_type; /* NULL: no Content-Type */
    const char *extra;        /* raw header lines ("Name: value\r\n"...), checked as
                                 px_http_respond's; may be NULL */
    size_t extra_len;
    int64_t length;                    /* body bytes that will be written, or
                                          PX_HTTP_LENGTH_UNKNOWN */
    px_http_stream_event_fn *on_event; /* may be NULL */
    void *arg;                         /* for on_event */
} px_http_stream_config_t;

/* Write the response head of x (with Content-Length, Transfer-Encoding:
 * chunked, or Connection: close for a body until the close) and return the
 * stream in *out with one reference for the caller. x counts as answered;
 * whether the connection is kept alive is decided here (x->keep_alive, the
 * request's version, a shutdown) and later changes of x->keep_alive do not
 * count. A response to HEAD, and a 204 or 304, carry no body: their writes are
 * taken and dropped. 0; -EINVAL (a field that could break the framing, as
 * px_http_respond: x stays unanswered), -EALREADY (x was answered), -ENOTCONN
 * (the connection is closing), -ENOMEM. */
int px_http_stream_start(px_http_exchange_t *x, const px_http_stream_config_t *cfg,
                         px_http_stream_t **out);

/* Take and drop a reference; any thread. The last release of a stream that
 * was neither ended nor aborted aborts it (the connection closes). */
void px_http_stream_ref(px_http_stream_t *st);
void px_http_stream_release(px_http_stream_t *st);

/* Flags of px_http_stream_write. */
enum {
    PX_HTTP_STREAM_FORCE = 1u << 0, /* take it even over the high-water mark */
};

/* Append the iovcnt pieces of iov (copied) to the body, as one chunk when
 * chunked. 0; -EAGAIN over the high-water mark (nothing taken); -EMSGSIZE
 * past the announced length (nothing of it taken, and the stream is aborted:
 * the connection closes after the bytes before it); -EPIPE once the stream
 * is over (ended, aborted, or the client went away); -ENOMEM. Empty writes
 * send nothing. */
int px_http_stream_write(px_http_stream_t *st, const struct iovec *iov, int iovcnt, unsigned flags);

/* The body is complete: the last chunk goes (chunked), the connection closes
 * after the body (until-close), and the connection goes on with its next
 * request. 0; -EBADMSG when fewer bytes than the announced length were
 * written (the stream is aborted instead); -EPIPE when already over. */
int px_http_stream_end(px_http_stream_t *st);

/* Give up: the connection closes now, dropping what was not sent. Nothing
 * when already over. */
void px_http_stream_abort(px_http_stream_t *st);

/* The body cannot be completed (its producer failed): the connection closes
 * after what was written, without what would end the body (no last chunk, a
 * length not met), so that the client sees a truncated response. Nothing
 * when already over. */
void px_http_stream_fail(px_http_stream_t *st);

/* Block until a write would be taken (what is queued is at or below the
 * engine's send_low_water), the stream is over, or timeout_ms passes (< 0:
 * no limit). 0 writable; -EPIPE over; -ETIMEDOUT. On the owning worker the
 * worker is released meanwhile (see px_worker_release); -EDEADLK when it
 * cannot be (hand-off disabled). */
int px_http_stream_wait(px_http_stream_t *st, int timeout_ms);

/* True once the stream is over (ended, aborted, or the client went away). */
bool px_http_stream_closed(const px_http_stream_t *st);

/* Body bytes written so far (framing not counted). */
uint64_t px_http_stream_written(const px_http_stream_t *st);

/* Write bytes[0..len) (copied) whenever nothing was written for interval_ms
 * (Server-Sent Events: ": \n\n"), which also finds out soon when a client
 * went away without closing. interval_ms 0 stops it. Only for a body of
 * unknown length. 0, -EINVAL (a length was announced, or len 0), -EPIPE,
 * -ENOMEM. Any thread. */
int px_http_stream_heartbeat(px_http_stream_t *st, unsigned interval_ms, const void *bytes,
                             size_t len);

/* ---- deferred responses -------------------------------------------------------
 *
 * A handler that cannot answer yet (it waits for a database, another
 * connection, a coroutine) defers: the request counts as answered for the
 * handler call, the connection waits (its next pipelined requests held, the
 * client going away noticed) and any thread answers it later, with no thread
 * held meanwhile. A deferral is a stream without a head: px_http_stream_release
 * and px_http_stream_closed apply to it; writes do not (-EINVAL).
 *
 * px_http_defer: on the connection's worker, inside the handler call of x
 * while it owns its worker (as px_http_stream_start). The stream in *out
 * holds one reference for the caller. 0; -EALREADY (x was answered),
 * -ENOTCONN (the connection is closing), -ENOMEM. */
int px_http_defer(px_http_exchange_t *x, px_http_stream_t **out);

/* Answer a deferral: fn(x, arg) runs once on the connection's worker, after
 * what was posted to the connection before, with an exchange that stands for
 * the original one (no body; every px_http_respond* and px_http_stream_start
 * apply). Without an answer from fn the client gets 500; a connection not
 * kept alive closes after the answer. When the connection went away before
 * fn could run, fn runs with x NULL (on the worker, or at px_engine_destroy on
 * its thread), so that it can free arg. Any thread. 0 (fn will run); -EPIPE
 * (the client went away already, or the deferral was answered: fn will not
 * run); -EINVAL (st is not a deferral); -ENOMEM. A deferral released without
 * an answer gets 500. */
typedef void px_http_answer_fn(px_http_exchange_t *x, void *arg);
int px_http_answer(px_http_stream_t *st, px_http_answer_fn *fn, void *arg);

/* ---- streamed request bodies --------------------------------------------------
 *
 * With px_http_config_t.stream_bodies (and hand-off on: handoff_ms > 0;
 * without it bodies are buffered as before), a request with a body reaches
 * the app as soon as its head is in: x->body is NULL, x->body_stream set, and
 * the app reads the body, in order, with px_http_body_read. While the app's
 * handler runs, released or blocked on another thread, the worker goes on
 * receiving the body into a buffer of body_buffer bytes and stops reading
 * the connection while it is full, until the reader takes from it; the body
 * deadline (body_timeout_ms) then runs between two arrivals, not over the
 * whole body. A body the app did not read to its end when its handler
 * returns is read and dropped (the connection goes on), unless the client
 * waits for 100 Continue that was never sent: then the connection closes
 * after the response (a streamed one after all that was written to it and
 * its end, even when that comes after the handler returned).
 *
 * px_http_body_read works on buffered bodies too (x->body), so an app can
 * read every body the same way.
 */
typedef struct px_http_body px_http_body_t;

/* Read up to len bytes of x's request body into buf: blocks until at least
 * one byte is there, the body has ended, or timeout_ms passes (< 0: no
 * limit). The first call sends 100 Continue when the client asked for it
 * and the response has not started. Returns the bytes read (> 0); 0 at the
 * end of the body; -ETIMEDOUT; -EBADMSG (a malformed chunked body: the
 * connection closes), -EFBIG (over max_body: the connection closes),
 * -ECONNRESET (the client went away or the connection closed); -EDEADLK
 * (the owning worker could not be released). From the handler of x (any
 * thread, one at a time) until it returns. On the owning worker the worker is
 * released while it waits and taken back after, each time: a handler that
 * reads a big body releases its worker first (px_worker_release), so that
 * the thread that takes it over keeps receiving while it reads. */
ssize_t px_http_body_read(px_http_exchange_t *x, void *buf, size_t len, int timeout_ms);

/* The bytes of x's body not read yet that are already here (0 when none or
 * when unknown); -1 once the body has ended and was read whole. */
ssize_t px_http_body_ready(px_http_exchange_t *x);

/* The default of px_http_config_t.body_buffer. */
#define PX_HTTP_BODY_BUFFER ((size_t)256 << 10)

#endif
