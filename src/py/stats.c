/*
 * Introspection in the binding: latency histograms merged on demand, what each
 * worker is doing now, small sequential thread ids, the TSC, thread-tagged
 * debug lines, and a socket's TCP_INFO. Everything here reads; nothing is on a
 * hot path except px.debug(), which returns at once while debugging is off.
 */
#include "binding.h"
#include "transport.h"
#include "px/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define PX_HAVE_TSC 1
#endif

/* ---- small dict helpers --------------------------------------------------- */

static int put_u64(PyObject *d, const char *key, uint64_t v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    int rc = o ? PyDict_SetItemString(d, key, o) : -1;
    Py_XDECREF(o);
    return rc;
}

static int put_obj(PyObject *d, const char *key, PyObject *o) /* steals o */
{
    int rc = o ? PyDict_SetItemString(d, key, o) : -1;
    Py_XDECREF(o);
    return rc;
}

/* ---- latency -------------------------------------------------------------- */

static const struct {
    const char *key;
    double q;
} quantiles[] = {
    {"p50_ns", 0.5},
    {"p90_ns", 0.9},
    {"p99_ns", 0.99},
    {"p999_ns", 0.999},
};

/* {count, sum_ns, mean_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns[, buckets]};
 * buckets: [[lowest_ns, highest_ns, count], ...] of the non-empty buckets. */
static PyObject *snapshot_dict(const px_hist_snapshot_t *s, bool with_buckets)
{
    PyObject *d = PyDict_New();
    size_t i;

    if (d == NULL)
        return NULL;
    if (put_u64(d, "count", s->count) < 0 || put_u64(d, "sum_ns", s->sum) < 0 ||
        put_u64(d, "mean_ns", s->count ? s->sum / s->count : 0) < 0)
        goto fail;
    for (i = 0; i < PX_ARRAY_SIZE(quantiles); i++)
        if (put_u64(d, quantiles[i].key, px_hist_quantile(s, quantiles[i].q)) < 0)
            goto fail;
    if (put_u64(d, "max_ns", s->max) < 0)
        goto fail;
    if (with_buckets) {
        PyObject *list = PyList_New(0);
        if (list == NULL)
            goto fail;
        for (unsigned b = 0; b < PX_HIST_BUCKETS; b++) {
            PyObject *row;
            if (s->buckets[b] == 0)
                continue;
            row = Py_BuildValue("[KKK]", (unsigned long long)px_hist_lower(b),
                                (unsigned long long)px_hist_upper(b),
                                (unsigned long long)s->buckets[b]);
            if (row == NULL || PyList_Append(list, row) < 0) {
                Py_XDECREF(row);
                Py_DECREF(list);
                goto fail;
            }
            Py_DECREF(row);
        }
        if (put_obj(d, "buckets", list) < 0)
            goto fail;
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* {"workers": [snapshot, ...], "total": merged snapshot} for one kind; only the
 * total lists its buckets (what a client needs for windowed quantiles). */
static PyObject *latency_of(px_engine_t *e, px_latency_kind_t kind, bool with_buckets)
{
    int n = px_engine_worker_count(e), i;
    px_hist_snapshot_t *one = PyMem_RawMalloc(sizeof(*one));
    px_hist_snapshot_t *all = PyMem_RawMalloc(sizeof(*all));
    PyObject *d = NULL, *list = NULL, *o;

    if (one == NULL || all == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    list = PyList_New(n);
    if (list == NULL)
        goto out;
    px_hist_snapshot_init(all);
    for (i = 0; i < n; i++) {
        px_hist_snapshot_init(one);
        px_hist_merge(one, px_worker_latency(px_engine_worker(e, i), kind));
        /* The total merges the very values reported per worker. */
        for (unsigned b = 0; b < PX_HIST_BUCKETS; b++)
            all->buckets[b] += one->buckets[b];
        all->count += one->count;
        all->sum += one->sum;
        all->max = PX_MAX(all->max, one->max);
        o = snapshot_dict(one, false);
        if (o == NULL)
            goto out;
        PyList_SET_ITEM(list, i, o);
    }
    d = PyDict_New();
    if (d == NULL)
        goto out;
    if (PyDict_SetItemString(d, "workers", list) < 0 ||
        put_obj(d, "total", snapshot_dict(all, with_buckets)) < 0)
        Py_CLEAR(d);
out:
    Py_XDECREF(list);
    PyMem_RawFree(one);
    PyMem_RawFree(all);
    return d;
}

static PyObject *stats_latency(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"engine", "buckets", NULL};
    PyObject *engine, *d;
    int buckets = 0;
    px_engine_t *e;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:latency", kwlist, &engine, &buckets))
        return NULL;
    if ((e = px_py_engine_ptr(PyModule_GetState(module), engine)) == NULL)
        return NULL;
    d = PyDict_New();
    if (d == NULL)
        return NULL;
    if (put_obj(d, "request", latency_of(e, PX_LATENCY_REQUEST, buckets)) < 0 ||
        put_obj(d, "callback", latency_of(e, PX_LATENCY_CALLBACK, buckets)) < 0)
        Py_CLEAR(d);
    return d;
}

/* ---- what each worker is doing ---------------------------------------------- */

static PyObject *stats_runtime(PyObject *module, PyObject *engine)
{
    px_engine_t *e = px_py_engine_ptr(PyModule_GetState(module), engine);
    PyObject *list;
    uint64_t now = px_ticks();
    int n, i;

    if (e == NULL)
        return NULL;
    n = px_engine_worker_count(e);
    list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        px_worker_t *w = px_engine_worker(e, i);
        uint64_t since = px_worker_callback_since(w);
        PyObject *d = PyDict_New();

        if (d == NULL || put_u64(d, "cpu_ns", px_worker_cpu_ns(w)) < 0 ||
            put_obj(d, "in_callback", PyBool_FromLong(since != 0)) < 0 ||
            put_u64(d, "callback_running_ns", since ? px_ticks_ns((int64_t)(now - since)) : 0) <
                0) {
            Py_XDECREF(d);
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, d);
    }
    return list;
}

/* ---- sequential thread ids ------------------------------------------------ */

/* Main thread 0, worker i is i + 1, any other thread gets the next number above
 * every worker count seen so far (kept for the thread's life: the number is
 * the thread's, so its cache is a thread-local; the counters are the module's). */
static _Thread_local int seq_cached = -1;

void px_py_note_workers(px_module_state_t *st, int nworkers)
{
    int cur = atomic_load(&st->seq_floor);
    while (nworkers > cur && !atomic_compare_exchange_weak(&st->seq_floor, &cur, nworkers))
        ;
}

static int cpus_allowed(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        return CPU_COUNT(&set);
    return 1;
}

int px_py_thread_seq_id(px_module_state_t *st)
{
    px_worker_t *w = px_worker_current();
    int floor;

    if (w != NULL)
        return px_worker_index(w) + 1;
    if (seq_cached >= 0)
        return seq_cached;
    if (syscall(SYS_gettid) == getpid()) {
        seq_cached = 0; /* the process's first thread: Python's main thread */
        return 0;
    }
    /* Workers of an engine created before this call never collide; one made
     * later with more workers than CPUs might (the ids are for reading logs). */
    px_py_note_workers(st, cpus_allowed());
    floor = atomic_load(&st->seq_floor);
    seq_cached = floor + 1 + atomic_fetch_add(&st->seq_others, 1);
    return seq_cached;
}

static PyObject *stats_thread_seq_id(PyObject *module, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(px_py_thread_seq_id(PyModule_GetState(module)));
}

/* ---- clocks --------------------------------------------------------------- */

static PyObject *stats_rdtsc(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
#ifdef PX_HAVE_TSC
    return PyLong_FromUnsignedLongLong(__rdtsc());
#else
    return PyLong_FromUnsignedLongLong(px_now_ns());
#endif
}

static PyObject *stats_now_ns(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromUnsignedLongLong(px_now_ns());
}

/* ---- debug lines ---------------------------------------------------------- */

/* st->debug_state: -1 not decided yet (PX_DEBUG is read on first use), 0 off, 1 on. */
static bool debug_on(px_module_state_t *st)
{
    int s = atomic_load_explicit(&st->debug_state, memory_order_relaxed);
    if (PX_UNLIKELY(s < 0)) {
        const char *env = getenv("PX_DEBUG");
        int want = env && *env && strcmp(env, "0") != 0;
        unsigned long long zero = 0;
        atomic_compare_exchange_strong(&st->debug_epoch, &zero, px_now_ns());
        atomic_compare_exchange_strong(&st->debug_state, &s, want);
        s = atomic_load(&st->debug_state);
    }
    return s > 0;
}

static PyObject *stats_debug(PyObject *module, PyObject *msg)
{
    char stack[1024], *line = stack;
    const char *text;
    Py_ssize_t len;
    uint64_t t;
    int head;
    px_module_state_t *st = PyModule_GetState(module);

    if (!debug_on(st))
        Py_RETURN_NONE;
    if (PyUnicode_Check(msg)) {
        text = PyUnicode_AsUTF8AndSize(msg, &len);
        if (text == NULL)
            return NULL;
    } else {
        PyObject *s = PyObject_Str(msg), *r;
        if (s == NULL)
            return NULL;
        r = stats_debug(module, s);
        Py_DECREF(s);
        return r;
    }
    t = px_now_ns() - atomic_load(&st->debug_epoch);
    head = snprintf(stack, sizeof(stack), "px t%d +%llu.%06llus ", px_py_thread_seq_id(st),
                    (unsigned long long)(t / 1000000000u),
                    (unsigned long long)(t % 1000000000u / 1000u));
    if ((size_t)head + (size_t)len + 1 > sizeof(stack)) {
        line = PyMem_RawMalloc((size_t)head + (size_t)len + 1);
        if (line == NULL)
            return PyErr_NoMemory();
        memcpy(line, stack, (size_t)head);
    }
    memcpy(line + head, text, (size_t)len);
    line[head + len] = '\n';
    /* One write per line, so lines of parallel workers never interleave. */
    Py_BEGIN_ALLOW_THREADS
    {
        size_t left = (size_t)head + (size_t)len + 1;
        const char *p = line;
        while (left > 0) {
            ssize_t n = write(STDERR_FILENO, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            p += n;
            left -= (size_t)n;
        }
    }
    Py_END_ALLOW_THREADS if (line != stack) PyMem_RawFree(line);
    Py_RETURN_NONE;
}

static PyObject *stats_set_debug(PyObject *module, PyObject *flag)
{
    int on = PyObject_IsTrue(flag), was;
    px_module_state_t *st = PyModule_GetState(module);

    if (on < 0)
        return NULL;
    was = debug_on(st);
    atomic_store(&st->debug_state, on);
    return PyBool_FromLong(was);
}

static PyObject *stats_debug_enabled(PyObject *module, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(debug_on(PyModule_GetState(module)));
}

/* ---- TCP_INFO ------------------------------------------------------------- */

static const char *tcp_state_name(unsigned s)
{
    static const char *names[] = {
        "?",     "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",    "TIME_WAIT",
        "CLOSE", "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV",
    };
    return s < PX_ARRAY_SIZE(names) ? names[s] : "?";
}

/* The socket descriptor of a Transport (on its own worker only: elsewhere its
 * descriptor may be closed and reused under us), a socket or an int. */
static int fd_of(px_module_state_t *st, PyObject *obj, px_py_transport_t **transport)
{
    PyObject *r;
    long fd;

    *transport = NULL;
    if (PyObject_TypeCheck(obj, st->transport_type)) {
        px_py_transport_t *t = (px_py_transport_t *)obj;
        if (t->conn == NULL) {
            PyErr_SetString(PyExc_ConnectionError, "transport is closed");
            return -1;
        }
        if (px_worker_current() != t->worker) {
            PyErr_SetString(PyExc_RuntimeError,
                            "socket_stats(transport) works only in that transport's callbacks");
            return -1;
        }
        *transport = t;
        return px_conn_fd(t->conn);
    }
    r = PyLong_Check(obj) ? Py_NewRef(obj) : PyObject_CallMethod(obj, "fileno", NULL);
    if (r == NULL)
        return -1;
    fd = PyLong_AsLong(r);
    Py_DECREF(r);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "not an open socket");
        return -1;
    }
    return (int)fd;
}

#define HAS_FIELD(len, f) \
    ((size_t)(len) >= offsetof(struct tcp_info, f) + sizeof(((struct tcp_info *)0)->f))

/* What socket_stats reads of a socket: on any thread for a socket or a
 * descriptor, on the owning worker for a transport (whose descriptor other
 * threads could see closed and reused). */
typedef struct sock_snapshot {
    int err; /* -errno of getsockopt; -ENOTCONN: the connection is gone */
    struct tcp_info ti;
    socklen_t len;
    int outq, inq;
    bool has_outq, has_inq, has_unsent;
    size_t unsent; /* queued in the engine */
} sock_snapshot_t;

static void sock_snapshot(int fd, sock_snapshot_t *s)
{
    memset(s, 0, sizeof(*s));
    s->len = sizeof(s->ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &s->ti, &s->len) < 0) {
        s->err = -errno;
        return;
    }
    /* Bytes in the kernel's queues (not yet acknowledged / not yet read). */
    s->has_outq = ioctl(fd, SIOCOUTQ, &s->outq) == 0;
    s->has_inq = ioctl(fd, SIOCINQ, &s->inq) == 0;
}

static PyObject *sock_dict(px_module_state_t *st, const sock_snapshot_t *s)
{
    const struct tcp_info ti = s->ti;
    const socklen_t len = s->len;
    PyObject *d;

    if (s->err == -ENOTCONN) {
        PyErr_SetString(PyExc_ConnectionError, "transport is closed");
        return NULL;
    }
    if (s->err < 0)
        return px_py_raise_errno(st, s->err, "getsockopt(TCP_INFO)");
    d = PyDict_New();
    if (d == NULL)
        return NULL;
#define PUT(key, v)                         \
    if (put_u64(d, key, (uint64_t)(v)) < 0) \
    goto fail
#define PUT_IF(key, f, scale) \
    if (HAS_FIELD(len, f))    \
    PUT(key, (uint64_t)ti.f *(scale))
    if (put_obj(d, "state", PyUnicode_FromString(tcp_state_name(ti.tcpi_state))) < 0)
        goto fail;
    PUT("rtt_us", ti.tcpi_rtt);
    PUT("rttvar_us", ti.tcpi_rttvar);
    PUT_IF("min_rtt_us", tcpi_min_rtt, 1);
    PUT("rto_us", ti.tcpi_rto);
    PUT("snd_mss", ti.tcpi_snd_mss);
    PUT("rcv_mss", ti.tcpi_rcv_mss);
    PUT("pmtu", ti.tcpi_pmtu);
    PUT("cwnd", ti.tcpi_snd_cwnd);
    PUT("ssthresh", ti.tcpi_snd_ssthresh);
    PUT("rcv_space", ti.tcpi_rcv_space);
    PUT("unacked", ti.tcpi_unacked);
    PUT("sacked", ti.tcpi_sacked);
    PUT("lost", ti.tcpi_lost);
    PUT("retransmits", ti.tcpi_retransmits); /* of the current segment */
    PUT("retrans", ti.tcpi_retrans);         /* segments retransmitted, in flight */
    PUT("total_retrans", ti.tcpi_total_retrans);
    PUT("reordering", ti.tcpi_reordering);
    PUT_IF("bytes_acked", tcpi_bytes_acked, 1);
    PUT_IF("bytes_received", tcpi_bytes_received, 1);
    PUT_IF("bytes_sent", tcpi_bytes_sent, 1);
    PUT_IF("bytes_retrans", tcpi_bytes_retrans, 1);
    PUT_IF("segs_out", tcpi_segs_out, 1);
    PUT_IF("segs_in", tcpi_segs_in, 1);
    PUT_IF("notsent_bytes", tcpi_notsent_bytes, 1);
    PUT_IF("delivery_rate", tcpi_delivery_rate, 1); /* bytes per second */
    PUT_IF("pacing_rate", tcpi_pacing_rate, 1);
    PUT_IF("busy_time_us", tcpi_busy_time, 1);
    PUT_IF("rwnd_limited_us", tcpi_rwnd_limited, 1);
    PUT_IF("sndbuf_limited_us", tcpi_sndbuf_limited, 1);
    PUT_IF("snd_wnd", tcpi_snd_wnd, 1);
    PUT("last_data_sent_ms", ti.tcpi_last_data_sent);
    PUT("last_data_recv_ms", ti.tcpi_last_data_recv);
    PUT("last_ack_recv_ms", ti.tcpi_last_ack_recv);
    if (s->has_outq)
        PUT("send_queue", s->outq);
    if (s->has_inq)
        PUT("recv_queue", s->inq);
    if (s->has_unsent)
        PUT("engine_unsent", s->unsent);
#undef PUT_IF
#undef PUT
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *socket_stats_owned(px_module_state_t *st, PyObject *obj)
{
    px_py_transport_t *t;
    sock_snapshot_t s;
    int fd;

    if ((fd = fd_of(st, obj, &t)) < 0)
        return NULL;
    sock_snapshot(fd, &s);
    if (t != NULL) {
        s.has_unsent = true;
        s.unsent = px_conn_unsent(t->conn);
    }
    return sock_dict(st, &s);
}

/* A transport of another worker: the snapshot is taken there (px_handle_run)
 * while this thread waits, detached. Shared with the worker until both let
 * go: a caller interrupted by a signal leaves first. */
typedef struct remote_snapshot {
    _Atomic int refs;
    sem_t done;
    sock_snapshot_t s;
} remote_snapshot_t;

static void remote_release(remote_snapshot_t *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        sem_destroy(&r->done);
        free(r);
    }
}

/* On the owning worker (or where the message is dropped: c NULL). */
static void remote_take(px_conn_t *c, void *arg)
{
    remote_snapshot_t *r = arg;

    if (c == NULL) {
        memset(&r->s, 0, sizeof(r->s));
        r->s.err = -ENOTCONN;
    } else {
        sock_snapshot(px_conn_fd(c), &r->s);
        r->s.has_unsent = true;
        r->s.unsent = px_conn_unsent(c);
    }
    sem_post(&r->done);
    remote_release(r);
}

static PyObject *socket_stats_remote(px_module_state_t *st, px_py_transport_t *t)
{
    remote_snapshot_t *r = malloc(sizeof(*r));
    PyObject *d;
    int rc;

    if (r == NULL)
        return PyErr_NoMemory();
    atomic_init(&r->refs, 2);
    sem_init(&r->done, 0, 0);
    rc = px_handle_run(t->handle, remote_take, r);
    if (rc < 0) {
        remote_release(r);
        remote_release(r);
        if (rc == -ENOTCONN || rc == -ESHUTDOWN) {
            PyErr_SetString(PyExc_ConnectionError, "transport is closed");
            return NULL;
        }
        return px_py_raise_errno(st, rc, "socket_stats");
    }
    for (;;) {
        struct timespec until;
        PyThreadState *ts;
        int waited;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000 * 1000 * 1000) {
            until.tv_sec++;
            until.tv_nsec -= 1000 * 1000 * 1000;
        }
        ts = PyEval_SaveThread();
        waited = sem_timedwait(&r->done, &until);
        PyEval_RestoreThread(ts);
        if (waited == 0)
            break;
        if (PyErr_CheckSignals() < 0) {
            remote_release(r);
            return NULL;
        }
    }
    d = sock_dict(st, &r->s);
    remote_release(r);
    return d;
}

/* A transport's connection is read with its worker held: the protocol's code
 * runs released (hand-off), and another thread may run the worker meanwhile.
 * Another thread's transport is read on its worker. */
static PyObject *stats_socket_stats(PyObject *module, PyObject *obj)
{
    px_module_state_t *st = PyModule_GetState(module);
    px_worker_t *w = NULL;
    bool entered = false;
    PyObject *d;

    if (PyObject_TypeCheck(obj, st->transport_type)) {
        px_py_transport_t *t = (px_py_transport_t *)obj;
        if (px_worker_current() != t->worker)
            return socket_stats_remote(st, t);
        w = t->worker;
        entered = px_py_engine_enter(w);
    }
    d = socket_stats_owned(st, obj);
    px_py_engine_leave(w, entered);
    return d;
}

/* ---- the functions ---------------------------------------------------------- */

PyMethodDef px_py_stats_methods[] = {
    {"latency", (PyCFunction)(void (*)(void))stats_latency, METH_VARARGS | METH_KEYWORDS,
     "latency(engine, buckets=False) -> {'request': ..., 'callback': ...}: each\n"
     "{'workers': [summary, ...], 'total': merged summary (with its buckets if asked)}"},
    {"worker_runtime", stats_runtime, METH_O,
     "worker_runtime(engine) -> [{'cpu_ns', 'in_callback', 'callback_running_ns'}, ...]"},
    {"thread_seq_id", stats_thread_seq_id, METH_NOARGS,
     "A small id of the calling thread: main 0, worker i is i + 1, others above."},
    {"rdtsc", stats_rdtsc, METH_NOARGS,
     "The CPU's time-stamp counter (x86); elsewhere monotonic nanoseconds."},
    {"now_ns", stats_now_ns, METH_NOARGS, "The engine's clock: CLOCK_MONOTONIC in ns."},
    {"debug", stats_debug, METH_O,
     "debug(msg): one thread-tagged line on stderr while debugging is on (PX_DEBUG=1)."},
    {"set_debug", stats_set_debug, METH_O, "set_debug(on) -> previous setting."},
    {"debug_enabled", stats_debug_enabled, METH_NOARGS, "True while px.debug() writes."},
    {"socket_stats", stats_socket_stats, METH_O,
     "socket_stats(transport | socket | fd) -> TCP_INFO and queue sizes as a dict (any "
     "thread: another worker's transport is read on its worker)."},
    {NULL, NULL, 0, NULL},
};
