/*
 * A readers-writer lock for Python objects shared between workers: readers in
 * parallel, writers alone, writers preferred (a waiting writer holds back new
 * readers, so a stream of readers cannot starve it).
 *
 * The whole state is one atomic word, so an uncontended reader or writer costs
 * one compare-and-swap; only waiters touch the mutex and condition variables,
 * with their thread state detached while they sleep.
 *
 * Re-entrancy is tracked per thread (a small thread-local table of the locks
 * the thread holds): a holder may take the read lock again; the write holder
 * may take the read or the write lock again; a thread holding only the read
 * lock asking for the write lock gets RuntimeError (the upgrade would wait for
 * itself). A lock is released by the thread that took it.
 */
#include "binding.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define READERS_MASK ((uint64_t)0x3fffffff) /* readers holding it */
#define WRITER ((uint64_t)1 << 31)          /* a writer holds it */
#define WAIT_ONE ((uint64_t)1 << 32)        /* one writer waiting */
#define WAIT_SLICE_NS 100000000L            /* waiters check for signals this often */

typedef struct px_py_rwlock px_py_rwlock_t;

typedef struct px_py_rwlock_guard {
    PyObject_HEAD px_py_rwlock_t *lock;
    bool write;
} px_py_rwlock_guard_t;

struct px_py_rwlock {
    PyObject_HEAD _Atomic uint64_t state;
    _Atomic unsigned sleepers; /* threads waiting on either condition */
    pthread_mutex_t mu;
    pthread_cond_t readers_cv, writers_cv;
    PyObject *reader, *writer; /* the guards (context managers) */
};

/* ---- what the calling thread holds ---------------------------------------- */

typedef struct held {
    px_py_rwlock_t *lock; /* a strong reference while held */
    unsigned reads, writes;
    bool base_write; /* the first acquisition took the write lock */
} held_t;

#define HELD_INLINE 8
static _Thread_local held_t held_inline[HELD_INLINE];
static _Thread_local held_t *held_items;
static _Thread_local int held_n, held_cap;

static held_t *held_find(px_py_rwlock_t *l)
{
    for (int i = held_n - 1; i >= 0; i--)
        if (held_items[i].lock == l)
            return &held_items[i];
    return NULL;
}

static held_t *held_add(px_py_rwlock_t *l, bool write)
{
    if (held_items == NULL) {
        held_items = held_inline;
        held_cap = HELD_INLINE;
    }
    if (held_n == held_cap) {
        int cap = held_cap * 2;
        held_t *grown = PyMem_RawMalloc(sizeof(held_t) * (size_t)cap);
        if (grown == NULL)
            return NULL;
        memcpy(grown, held_items, sizeof(held_t) * (size_t)held_n);
        if (held_items != held_inline)
            PyMem_RawFree(held_items);
        held_items = grown;
        held_cap = cap;
    }
    held_items[held_n] = (held_t){
        .lock = l, .reads = write ? 0 : 1, .writes = write ? 1 : 0, .base_write = write};
    return &held_items[held_n++];
}

static void held_remove(held_t *h)
{
    int i = (int)(h - held_items);

    memmove(&held_items[i], &held_items[i + 1], sizeof(held_t) * (size_t)(held_n - i - 1));
    held_n--;
    if (held_n == 0 && held_items != held_inline) {
        PyMem_RawFree(held_items); /* threads end holding nothing: no leak */
        held_items = held_inline;
        held_cap = HELD_INLINE;
    }
}

/* ---- the lock word ---------------------------------------------------------- */

static bool try_read(px_py_rwlock_t *l)
{
    uint64_t s = atomic_load_explicit(&l->state, memory_order_relaxed);

    while (!(s & WRITER) && s < WAIT_ONE && (s & READERS_MASK) < READERS_MASK)
        if (atomic_compare_exchange_weak_explicit(&l->state, &s, s + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}

/* A waiting writer (counted in the word) takes the lock: it drops its count. */
static bool try_write(px_py_rwlock_t *l, bool waiting)
{
    uint64_t s = atomic_load_explicit(&l->state, memory_order_relaxed);

    while ((s & (WRITER | READERS_MASK)) == 0)
        if (atomic_compare_exchange_weak_explicit(&l->state, &s,
                                                  (waiting ? s - WAIT_ONE : s) | WRITER,
                                                  memory_order_acquire, memory_order_relaxed))
            return true;
    return false;
}

static void wake(px_py_rwlock_t *l, pthread_cond_t *cv)
{
    pthread_mutex_lock(&l->mu);
    pthread_cond_broadcast(cv);
    pthread_mutex_unlock(&l->mu);
}

static void unlock_read(px_py_rwlock_t *l)
{
    uint64_t s = atomic_fetch_sub(&l->state, 1) - 1;

    if ((s & READERS_MASK) == 0 && s >= WAIT_ONE)
        wake(l, &l->writers_cv);
}

static void unlock_write(px_py_rwlock_t *l)
{
    uint64_t s = atomic_fetch_and(&l->state, ~WRITER) & ~WRITER;

    if (atomic_load(&l->sleepers) == 0)
        return;
    /* Writers first; readers once no writer waits. */
    wake(l, s >= WAIT_ONE ? &l->writers_cv : &l->readers_cv);
}

static void deadline_in(struct timespec *ts, long ns)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += ns;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_nsec -= 1000000000L;
        ts->tv_sec++;
    }
}

/* Sleep until acquired: 0, or -1 with an exception (a signal handler raised,
 * e.g. KeyboardInterrupt on the main thread). Thread state attached on entry
 * and exit, detached while sleeping. A waiting writer stays counted in the
 * word the whole time, which is what holds new readers back. */
static int wait_acquire(px_py_rwlock_t *l, bool write)
{
    pthread_cond_t *cv = write ? &l->writers_cv : &l->readers_cv;
    bool got = false;

    /* Holders of mu never block while holding it: taking it attached is safe. */
    pthread_mutex_lock(&l->mu);
    atomic_fetch_add(&l->sleepers, 1);
    if (write)
        atomic_fetch_add(&l->state, WAIT_ONE);
    pthread_mutex_unlock(&l->mu);
    for (;;) {
        Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&l->mu);
        got = write ? try_write(l, true) : try_read(l);
        if (!got) {
            struct timespec ts;
            deadline_in(&ts, WAIT_SLICE_NS);
            pthread_cond_timedwait(cv, &l->mu, &ts);
            got = write ? try_write(l, true) : try_read(l);
        }
        if (got)
            atomic_fetch_sub(&l->sleepers, 1);
        pthread_mutex_unlock(&l->mu);
        Py_END_ALLOW_THREADS if (got) return 0;
        if (PyErr_CheckSignals() < 0)
            break;
    }
    /* Given up: leave the queue; readers held back for this writer alone may go. */
    pthread_mutex_lock(&l->mu);
    if (write) {
        uint64_t s = atomic_fetch_sub(&l->state, WAIT_ONE) - WAIT_ONE;
        if (s < WAIT_ONE && !(s & WRITER))
            pthread_cond_broadcast(&l->readers_cv);
    }
    atomic_fetch_sub(&l->sleepers, 1);
    pthread_mutex_unlock(&l->mu);
    return -1;
}

/* ---- acquire and release, with re-entrancy ---------------------------------- */

/* 1 acquired, 0 not (non-blocking), -1 exception. */
static int acquire(px_py_rwlock_t *l, bool write, bool blocking)
{
    held_t *h = held_find(l);

    if (h != NULL) {
        if (write && h->writes == 0) {
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot take the write lock while holding the read lock of the same "
                            "object (an upgrade would wait for itself): release the read lock "
                            "first, or take the write lock from the start");
            return -1;
        }
        if (write)
            h->writes++;
        else
            h->reads++;
        return 1;
    }
    if (!(write ? try_write(l, false) : try_read(l))) {
        if (!blocking)
            return 0;
        if (wait_acquire(l, write) < 0)
            return -1;
    }
    if (held_add(l, write) == NULL) {
        if (write)
            unlock_write(l);
        else
            unlock_read(l);
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(l);
    return 1;
}

/* 0, or -1 with RuntimeError when this thread does not hold it that way. */
static int release(px_py_rwlock_t *l, bool write)
{
    held_t *h = held_find(l);

    if (h == NULL || (write ? h->writes : h->reads) == 0) {
        PyErr_Format(PyExc_RuntimeError, "release of a %s lock this thread does not hold",
                     write ? "write" : "read");
        return -1;
    }
    if (write)
        h->writes--;
    else
        h->reads--;
    if (h->reads == 0 && h->writes == 0) {
        bool base_write = h->base_write;
        held_remove(h);
        if (base_write)
            unlock_write(l);
        else
            unlock_read(l);
        Py_DECREF(l);
    }
    /* A writer that released its write before an inner read keeps the lock
     * exclusive until that last release. */
    return 0;
}

int px_py_rwlock_acquire(PyObject *lock, bool write, bool blocking)
{
    return acquire((px_py_rwlock_t *)lock, write, blocking);
}

int px_py_rwlock_release(PyObject *lock, bool write)
{
    return release((px_py_rwlock_t *)lock, write);
}

PyObject *px_py_rwlock_guard(PyObject *lock, bool write)
{
    px_py_rwlock_t *l = (px_py_rwlock_t *)lock;
    return Py_NewRef(write ? l->writer : l->reader);
}

PyObject *px_py_rwlock_new(px_module_state_t *st)
{
    PyObject *args = PyTuple_New(0), *lock;

    if (args == NULL)
        return NULL;
    lock = PyObject_Call((PyObject *)st->rwlock_type, args, NULL);
    Py_DECREF(args);
    return lock;
}

/* ---- the RWLock type ---------------------------------------------------------- */

static PyObject *guard_new(PyTypeObject *tp, px_py_rwlock_t *l, bool write)
{
    px_py_rwlock_guard_t *g = PyObject_GC_New(px_py_rwlock_guard_t, tp);

    if (g == NULL)
        return NULL;
    g->lock = (px_py_rwlock_t *)Py_NewRef(l);
    g->write = write;
    PyObject_GC_Track(g);
    return (PyObject *)g;
}

static PyObject *rwlock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    px_module_state_t *st = PyType_GetModuleState(type); /* RWLock has no subclasses */
    px_py_rwlock_t *l;

    if (!PyArg_ParseTuple(args, ":RWLock") || (kwds && PyDict_GET_SIZE(kwds))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "RWLock() takes no arguments");
        return NULL;
    }
    l = (px_py_rwlock_t *)type->tp_alloc(type, 0);
    if (l == NULL)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->readers_cv, NULL);
    pthread_cond_init(&l->writers_cv, NULL);
    l->reader = guard_new(st->rwlock_guard_type, l, false);
    l->writer = l->reader ? guard_new(st->rwlock_guard_type, l, true) : NULL;
    if (l->writer == NULL) {
        Py_DECREF(l);
        return NULL;
    }
    return (PyObject *)l;
}

static int rwlock_traverse(PyObject *op, visitproc visit, void *arg)
{
    px_py_rwlock_t *l = (px_py_rwlock_t *)op;
    Py_VISIT(l->reader);
    Py_VISIT(l->writer);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int rwlock_clear(PyObject *op)
{
    px_py_rwlock_t *l = (px_py_rwlock_t *)op;
    Py_CLEAR(l->reader);
    Py_CLEAR(l->writer);
    return 0;
}

static void rwlock_dealloc(PyObject *op)
{
    px_py_rwlock_t *l = (px_py_rwlock_t *)op;
    PyTypeObject *tp = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    rwlock_clear(op);
    /* Nobody holds it (holders own a reference) and nobody waits (waiters
     * are inside a method call, which holds one too). */
    pthread_cond_destroy(&l->writers_cv);
    pthread_cond_destroy(&l->readers_cv);
    pthread_mutex_destroy(&l->mu);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static int parse_blocking(PyObject *args, PyObject *kwds, const char *fmt, int *blocking)
{
    static char *kwlist[] = {"blocking", NULL};
    *blocking = 1;
    return PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, blocking);
}

static PyObject *acquire_result(int rc)
{
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc);
}

static PyObject *rwlock_acquire_read(PyObject *op, PyObject *args, PyObject *kwds)
{
    int blocking;
    if (!parse_blocking(args, kwds, "|p:acquire_read", &blocking))
        return NULL;
    return acquire_result(acquire((px_py_rwlock_t *)op, false, blocking));
}

static PyObject *rwlock_acquire_write(PyObject *op, PyObject *args, PyObject *kwds)
{
    int blocking;
    if (!parse_blocking(args, kwds, "|p:acquire_write", &blocking))
        return NULL;
    return acquire_result(acquire((px_py_rwlock_t *)op, true, blocking));
}

static PyObject *rwlock_release_read(PyObject *op, PyObject *unused)
{
    (void)unused;
    if (release((px_py_rwlock_t *)op, false) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *rwlock_release_write(PyObject *op, PyObject *unused)
{
    (void)unused;
    if (release((px_py_rwlock_t *)op, true) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *rwlock_held(PyObject *op, PyObject *unused)
{
    held_t *h = held_find((px_py_rwlock_t *)op);
    (void)unused;
    if (h == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(h->base_write ? "write" : "read");
}

static PyObject *get_reader(PyObject *op, void *c)
{
    (void)c;
    return Py_NewRef(((px_py_rwlock_t *)op)->reader);
}

static PyObject *get_writer(PyObject *op, void *c)
{
    (void)c;
    return Py_NewRef(((px_py_rwlock_t *)op)->writer);
}

static PyObject *get_readers(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(atomic_load(&((px_py_rwlock_t *)op)->state) & READERS_MASK);
}

static PyObject *get_write_locked(PyObject *op, void *c)
{
    (void)c;
    return PyBool_FromLong((atomic_load(&((px_py_rwlock_t *)op)->state) & WRITER) != 0);
}

static PyObject *get_writers_waiting(PyObject *op, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(atomic_load(&((px_py_rwlock_t *)op)->state) / WAIT_ONE);
}

static PyObject *rwlock_repr(PyObject *op)
{
    uint64_t s = atomic_load(&((px_py_rwlock_t *)op)->state);
    return PyUnicode_FromFormat("<RWLock %s, %u readers, %u writers waiting>",
                                (s & WRITER) ? "write-locked" : "not write-locked",
                                (unsigned)(s & READERS_MASK), (unsigned)(s / WAIT_ONE));
}

static PyMethodDef rwlock_methods[] = {
    {"acquire_read", (PyCFunction)(void (*)(void))rwlock_acquire_read, METH_VARARGS | METH_KEYWORDS,
     "acquire_read(blocking=True) -> bool: take the lock shared with other readers."},
    {"acquire_write", (PyCFunction)(void (*)(void))rwlock_acquire_write,
     METH_VARARGS | METH_KEYWORDS,
     "acquire_write(blocking=True) -> bool: take the lock alone. RuntimeError when this\n"
     "thread holds only the read lock (an upgrade would wait for itself)."},
    {"release_read", rwlock_release_read, METH_NOARGS, "Release one read acquisition."},
    {"release_write", rwlock_release_write, METH_NOARGS, "Release one write acquisition."},
    {"held", rwlock_held, METH_NOARGS,
     "held() -> 'read', 'write' or None: how the calling thread holds the lock."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rwlock_getset[] = {
    {"reader", get_reader, NULL, "context manager taking the read lock", NULL},
    {"writer", get_writer, NULL, "context manager taking the write lock", NULL},
    {"readers", get_readers, NULL, "threads holding the read lock now", NULL},
    {"write_locked", get_write_locked, NULL, "True while a writer holds it", NULL},
    {"writers_waiting", get_writers_waiting, NULL, "writers waiting for it now", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot rwlock_slots[] = {
    {Py_tp_doc, "RWLock(): readers in parallel, writers alone, writers preferred.\n\n"
                "A holder may take the read lock again; the write holder may take either\n"
                "again; holding only the read lock and asking for the write lock raises\n"
                "RuntimeError. Released by the thread that acquired it."},
    {Py_tp_new, rwlock_new},
    {Py_tp_dealloc, rwlock_dealloc},
    {Py_tp_traverse, rwlock_traverse},
    {Py_tp_clear, rwlock_clear},
    {Py_tp_repr, rwlock_repr},
    {Py_tp_methods, rwlock_methods},
    {Py_tp_getset, rwlock_getset},
    {0, NULL},
};

PyType_Spec px_py_rwlock_type_spec = {
    .name = "pyparallel._core.RWLock",
    .basicsize = sizeof(px_py_rwlock_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = rwlock_slots,
};

/* ---- the guards: `with lock.reader:` / `with lock.writer:` -------------------- */

static PyObject *guard_enter(PyObject *op, PyObject *unused)
{
    px_py_rwlock_guard_t *g = (px_py_rwlock_guard_t *)op;
    (void)unused;
    if (acquire(g->lock, g->write, true) < 0)
        return NULL;
    return Py_NewRef(g->lock);
}

static PyObject *guard_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    px_py_rwlock_guard_t *g = (px_py_rwlock_guard_t *)op;
    (void)args;
    (void)nargs;
    if (release(g->lock, g->write) < 0)
        return NULL;
    Py_RETURN_FALSE;
}

static int guard_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(((px_py_rwlock_guard_t *)op)->lock);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int guard_clear(PyObject *op)
{
    Py_CLEAR(((px_py_rwlock_guard_t *)op)->lock);
    return 0;
}

static void guard_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    guard_clear(op);
    PyObject_GC_Del(op);
    Py_DECREF(tp);
}

static PyObject *guard_repr(PyObject *op)
{
    px_py_rwlock_guard_t *g = (px_py_rwlock_guard_t *)op;
    return PyUnicode_FromFormat("<%s guard of %R>", g->write ? "write" : "read",
                                g->lock ? (PyObject *)g->lock : Py_None);
}

static PyMethodDef guard_methods[] = {
    {"__enter__", guard_enter, METH_NOARGS, "Take the lock (blocking)."},
    {"__exit__", (PyCFunction)(void (*)(void))guard_exit, METH_FASTCALL, "Release it."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot guard_slots[] = {
    {Py_tp_doc, "Context manager of an RWLock: RWLock.reader or RWLock.writer."},
    {Py_tp_dealloc, guard_dealloc},
    {Py_tp_traverse, guard_traverse},
    {Py_tp_clear, guard_clear},
    {Py_tp_repr, guard_repr},
    {Py_tp_methods, guard_methods},
    {0, NULL},
};

PyType_Spec px_py_rwlock_guard_type_spec = {
    .name = "pyparallel._core.RWLockGuard",
    .basicsize = sizeof(px_py_rwlock_guard_t),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = guard_slots,
};
