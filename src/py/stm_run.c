/* atomic(): running a transaction, retrying it on conflict with backoff,
 * irrevocably after max_retries losses; reads and writes of locations as
 * Python sees them; stm_stats() and stm_config().
 *
 * A conflict is noticed either by a read (the location is locked, or the
 * snapshot cannot include it) or at commit. A read raises _Conflict, a
 * BaseException, to unwind the transaction's Python code; the transaction
 * stays doomed, so that code which swallows the exception cannot commit, and
 * every later transactional operation raises again. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "stm.h"

/* Conflicts a transaction may lose before it runs irrevocably. */
static _Atomic int max_retries = 32;
static PyObject *conflict_type; /* _core._Conflict, for good */

/* This thread: its core record, whether its transaction is doomed, and where
 * its conflicts happened (a dict (label, key) -> count, kept in the record's
 * user slot so that a thread reusing the record carries on with it). */
typedef struct tls {
    px_stm_thread_t *th;
    bool doomed;
} tls_t;
static _Thread_local tls_t tls;

px_stm_thread_t *px__stm_thread(void)
{
    if (PX_LIKELY(tls.th != NULL))
        return tls.th;
    tls.th = px_stm_thread();
    if (tls.th == NULL)
        PyErr_NoMemory();
    return tls.th;
}

px_stm_thread_t *px__stm_walk_pin(void)
{
    px_stm_thread_t *th = tls.th != NULL ? tls.th : (tls.th = px_stm_thread());
    if (th != NULL)
        px_stm_pin(th);
    return th;
}

px_stm_thread_t *px__stm_tx(void)
{
    return tls.th != NULL && px_stm_active(tls.th) ? tls.th : NULL;
}

bool px_py_stm_active(void)
{
    return px__stm_tx() != NULL;
}

/* ---- values and locations ----------------------------------------------------- */

/* What the core releases: values (PyObject *), locations (tagged 1) and raw
 * memory (tagged 2). Runs at the end of a transaction, attached. */
static void release(void *p)
{
    uintptr_t tag = (uintptr_t)p & 3;
    void *q = (void *)((uintptr_t)p & ~(uintptr_t)3);
    if (tag == 0) {
        Py_DECREF((PyObject *)q);
    } else if (tag == 1) {
        px_py_tloc_t *t = q;
        Py_XDECREF((PyObject *)px_stm_loc_value(&t->loc));
        Py_XDECREF(t->label);
        Py_XDECREF(t->key);
        free(t);
    } else {
        PyMem_RawFree(q);
    }
}

static void retire_tagged(void *p)
{
    px_stm_thread_t *th = px__stm_thread();
    if (th == NULL) {
        PyErr_Clear(); /* nothing to wait with: keep it for good */
        return;
    }
    (void)px_stm_retire(th, p);
}

px_py_tloc_t *px__stm_loc_new(PyObject *label, PyObject *key, Py_hash_t hash, PyObject *value)
{
    /* One cache line each: a lookup and a read touch one line, and a commit
     * to one location never shares a line with another. */
    px_py_tloc_t *t = aligned_alloc(PX_CACHELINE, PX_CACHELINE);
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    px_py_share_hand_over(value); /* as px__stm_set does */
    px_stm_loc_init(&t->loc, Py_XNewRef(value));
    t->label = Py_NewRef(label);
    t->key = Py_XNewRef(key);
    t->hash = hash;
    t->ival = 0;
    t->int_key = false;
    return t;
}

int px__stm_loc_traverse(px_py_tloc_t *t, visitproc visit, void *arg)
{
    /* The collector runs with the world stopped (or holding the GIL): no
     * commit is half-way. Values still buffered in a transaction or waiting
     * in a limbo are references it does not see: they keep objects alive. */
    Py_VISIT((PyObject *)px_stm_loc_value(&t->loc));
    Py_VISIT(t->key);
    return 0;
}

void px__stm_loc_clear(px_py_tloc_t *t)
{
    /* Garbage: no transaction can reach the container any more, but one that
     * wrote to it before may still publish; the value goes through the
     * epochs like any replaced one. */
    PyObject *old = atomic_exchange(&t->loc.value, NULL);
    if (old != NULL)
        retire_tagged(old);
}

void px__stm_loc_retire(px_py_tloc_t *t)
{
    retire_tagged((void *)((uintptr_t)t | 1));
}

void px__stm_mem_retire(void *p)
{
    retire_tagged((void *)((uintptr_t)p | 2));
}

static int raise_conflict(void)
{
    tls.doomed = true;
    PyErr_SetNone(conflict_type);
    return -1;
}

static int core_error(int err)
{
    if (err == -ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    return raise_conflict();
}

int px__stm_get(px_stm_thread_t *th, px_py_tloc_t *t, PyObject **value)
{
    void *v;
    int err;
    if (PX_UNLIKELY(tls.doomed))
        return raise_conflict();
    err = px_stm_read(th, &t->loc, &v);
    if (PX_UNLIKELY(err < 0))
        return core_error(err);
    *value = Py_XNewRef((PyObject *)v); /* safe: pinned, v cannot be released yet */
    return 0;
}

int px__stm_set(px_stm_thread_t *th, px_py_tloc_t *t, PyObject *value)
{
    int err;
    if (PX_UNLIKELY(tls.doomed))
        return raise_conflict();
    /* A value in a container is read and released by other threads: with an
     * owner, each release by another thread would be queued to the owner to
     * merge (a lock and a wake-up, lines bouncing between cores). */
    px_py_share_hand_over(value);
    err = px_stm_write(th, &t->loc, Py_XNewRef(value));
    if (PX_UNLIKELY(err < 0)) {
        Py_XDECREF(value);
        return core_error(err);
    }
    return 0;
}

PyObject *px__stm_peek(px_py_tloc_t *t)
{
    px_stm_thread_t *th = px__stm_thread();
    PyObject *v;
    void *value;
    if (th == NULL)
        return NULL;
    px_stm_pin(th);
    while (px_stm_peek(&t->loc, &value) < 0) {
        /* A committer holds it: wait detached, never stall a stop-the-world
         * or the GIL holder on it. */
        Py_BEGIN_ALLOW_THREADS sched_yield();
        Py_END_ALLOW_THREADS
    }
    v = Py_XNewRef((PyObject *)value);
    px_stm_unpin(th);
    return v;
}

/* ---- atomic() -------------------------------------------------------------------- */

/* The record's conflict dict: made by its thread, read by stm_stats() on
 * others (hence the atomic accesses to the slot). */
static PyObject *conflicts_of(px_stm_thread_t *th)
{
    void **slot = px_stm_user(th);
    PyObject *d = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (d == NULL) {
        d = PyDict_New(); /* NULL: the conflict goes uncounted */
        __atomic_store_n(slot, d, __ATOMIC_RELEASE);
    }
    return d;
}

/* Count a conflict at the location the core names; pinned, while the location
 * cannot be freed. */
static void count_conflict(px_stm_thread_t *th)
{
    px_stm_loc_t *loc = px_stm_conflict(th);
    px_py_tloc_t *t = (px_py_tloc_t *)loc;
    PyObject *where, *d, *n;
    if (loc == NULL || (d = conflicts_of(th)) == NULL)
        return;
    where = t->key == NULL ? Py_BuildValue("(Os)", t->label, "<length>")
                           : PyTuple_Pack(2, t->label, t->key);
    if (where == NULL) {
        PyErr_Clear();
        return;
    }
    if (PyDict_GetItemRef(d, where, &n) >= 0) {
        PyObject *next = PyLong_FromLong(n == NULL ? 1 : PyLong_AsLong(n) + 1);
        if (next == NULL || PyDict_SetItem(d, where, next) < 0)
            PyErr_Clear();
        Py_XDECREF(next);
        Py_XDECREF(n);
    }
    PyErr_Clear();
    Py_DECREF(where);
}

/* A call: vectorcall form (args, nargsf, kwnames) unless tuple is set, then
 * tuple and dict (PyObject_Call form). */
typedef struct call {
    PyObject *callable;
    PyObject *const *args;
    size_t nargsf;
    PyObject *kwnames, *tuple, *dict;
} call_t;

static PyObject *call(const call_t *c)
{
    if (c->tuple != NULL)
        return PyObject_Call(c->callable, c->tuple, c->dict);
    return PyObject_Vectorcall(c->callable, c->args, c->nargsf, c->kwnames);
}

static PyObject *nested(px_stm_thread_t *th, const call_t *c)
{
    px_stm_savepoint_t sp;
    PyObject *r;
    if (tls.doomed) {
        raise_conflict();
        return NULL;
    }
    sp = px_stm_savepoint(th);
    r = call(c);
    if (r != NULL || tls.doomed)
        px_stm_keep(th, sp); /* a doomed transaction runs again whole */
    else
        px_stm_rollback(th, sp);
    return r;
}

static void wait_for_serial(void)
{
    Py_BEGIN_ALLOW_THREADS px_stm_wait_serial();
    Py_END_ALLOW_THREADS
}

/* End the transaction, leave the irrevocable mode, then release old values:
 * their finalizers may run transactions, which must not find this thread's
 * own irrevocable mode still held. */
static void finish(px_stm_thread_t *th, bool serial)
{
    px_stm_end(th);
    if (serial)
        px_stm_serial_exit(th);
    px_stm_reclaim(th);
}

static PyObject *run(const call_t *c)
{
    px_stm_thread_t *th = px__stm_thread();
    int limit = atomic_load_explicit(&max_retries, memory_order_relaxed);
    if (th == NULL || px__stm_guard_io() < 0)
        return NULL;
    if (px_stm_active(th))
        return nested(th, c);
    for (unsigned attempt = 0;; attempt++) {
        bool serial = attempt > (unsigned)limit;
        PyObject *result;
        int err;
        if (serial) {
            Py_BEGIN_ALLOW_THREADS px_stm_serial_enter(th);
            Py_END_ALLOW_THREADS px_stm_count(th, PX_STM_SERIAL);
        }
        if (px_stm_begin(th, serial) == -EAGAIN) {
            wait_for_serial();
            attempt--;
            continue;
        }
        tls.doomed = false;
        result = call(c);
        if (result != NULL && !tls.doomed) {
            err = px_stm_commit(th);
            if (err >= 0) {
                finish(th, serial);
                return result;
            }
            tls.doomed = true;
        } else if (result != NULL) {
            /* It swallowed a conflict. */
        } else if (!tls.doomed || !(PyErr_ExceptionMatches(conflict_type) ||
                                    PyErr_ExceptionMatches(PyExc_Exception))) {
            /* Its own exception (or one like KeyboardInterrupt): no retry. */
            if (!tls.doomed)
                px_stm_count(th, PX_STM_ABORT_EXCEPTION);
            tls.doomed = false;
            finish(th, serial);
            return NULL;
        } else {
            /* A conflict, or an exception raised while one unwound. */
            PyErr_Clear();
        }
        /* Counting the conflict and dropping the result run Python code (a
         * hash, a finalizer): after the transaction, never inside it. The
         * pin keeps the conflict's location alive for the count. */
        tls.doomed = false;
        px_stm_pin(th);
        finish(th, serial);
        count_conflict(th);
        px_stm_unpin(th);
        Py_XDECREF(result);
        px_stm_count(th, PX_STM_RETRIES);
        if (PyErr_CheckSignals() < 0)
            return NULL;
        Py_BEGIN_ALLOW_THREADS px_stm_backoff(th, attempt + 1);
        Py_END_ALLOW_THREADS
    }
}

PyObject *px__stm_run(PyObject *callable, PyObject *args, PyObject *kwargs)
{
    call_t c = {.callable = callable, .tuple = args, .dict = kwargs};
    return run(&c);
}

PyObject *px__stm_run_method(PyObject *self, const char *name, PyObject *args)
{
    PyObject *method = PyObject_GetAttrString(self, name), *r;
    call_t c = {.args = &PyTuple_GET_ITEM(args, 0), .nargsf = (size_t)PyTuple_GET_SIZE(args)};
    if (method == NULL)
        return NULL;
    c.callable = method;
    r = run(&c);
    Py_DECREF(method);
    return r;
}

PyObject *px__stm_atomic(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    /* args[0] is the function: the call may use its slot (ARGUMENTS_OFFSET). */
    call_t c = {.args = args + 1,
                .nargsf = (size_t)(nargs - 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                .kwnames = kwnames};
    (void)module;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "atomic() needs a function to run");
        return NULL;
    }
    c.callable = args[0];
    return run(&c);
}

/* ---- stm_stats(), stm_config() ------------------------------------------------------- */

static int merge_conflicts(PyObject *into, bool reset)
{
    for (px_stm_thread_t *th = px_stm_threads_next(NULL); th != NULL;
         th = px_stm_threads_next(th)) {
        PyObject *d = __atomic_load_n(px_stm_user(th), __ATOMIC_ACQUIRE), *copy, *k, *v;
        Py_ssize_t pos = 0;
        if (d == NULL)
            continue;
        copy = PyDict_Copy(d); /* thread-safe; the owner may be adding */
        if (copy == NULL)
            return -1;
        if (reset)
            PyDict_Clear(d);
        while (PyDict_Next(copy, &pos, &k, &v)) {
            PyObject *n, *sum;
            if (PyDict_GetItemRef(into, k, &n) < 0)
                break;
            sum = n == NULL ? Py_NewRef(v) : PyNumber_Add(n, v);
            Py_XDECREF(n);
            if (sum == NULL || PyDict_SetItem(into, k, sum) < 0) {
                Py_XDECREF(sum);
                break;
            }
            Py_DECREF(sum);
        }
        Py_DECREF(copy);
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *ranked_conflicts(PyObject *merged, Py_ssize_t top)
{
    PyObject *items = PyDict_Items(merged), *out;
    Py_ssize_t n;
    if (items == NULL)
        return NULL;
    /* Largest count first; ties keep no particular order. */
    n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 1; i < n; i++)
        for (Py_ssize_t j = i; j > 0; j--) {
            PyObject *a = PyList_GET_ITEM(items, j - 1), *b = PyList_GET_ITEM(items, j);
            if (PyLong_AsLongLong(PyTuple_GET_ITEM(a, 1)) >=
                PyLong_AsLongLong(PyTuple_GET_ITEM(b, 1)))
                break;
            PyList_SET_ITEM(items, j - 1, b);
            PyList_SET_ITEM(items, j, a);
        }
    out = PyList_New(0);
    for (Py_ssize_t i = 0; out != NULL && i < PX_MIN(n, top); i++) {
        PyObject *kv = PyList_GET_ITEM(items, i), *where = PyTuple_GET_ITEM(kv, 0);
        PyObject *entry = Py_BuildValue("{s:O,s:O,s:O}", "container", PyTuple_GET_ITEM(where, 0),
                                        "key", PyTuple_GET_ITEM(where, 1), "count",
                                        PyTuple_GET_ITEM(kv, 1));
        if (entry == NULL || PyList_Append(out, entry) < 0)
            Py_CLEAR(out);
        Py_XDECREF(entry);
    }
    Py_DECREF(items);
    return out;
}

PyObject *px__stm_stats(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"reset", "top", NULL};
    int reset = 0;
    Py_ssize_t top = 10;
    uint64_t c[PX_STM_NCOUNTERS];
    PyObject *merged, *conflicts, *result;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|pn:stm_stats", names, &reset, &top))
        return NULL;
    merged = PyDict_New();
    if (merged == NULL || merge_conflicts(merged, reset) < 0) {
        Py_XDECREF(merged);
        return NULL;
    }
    px_stm_totals(c, reset);
    conflicts = ranked_conflicts(merged, PX_MAX(top, 0));
    Py_DECREF(merged);
    if (conflicts == NULL)
        return NULL;
    result = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:N,s:i,s:{s:K,s:K,s:K,s:K},s:K}", "commits",
                           (unsigned long long)c[PX_STM_COMMITS], "read_only",
                           (unsigned long long)c[PX_STM_READ_ONLY], "aborts",
                           (unsigned long long)(c[PX_STM_ABORT_LOCKED] + c[PX_STM_ABORT_STALE] +
                                                c[PX_STM_ABORT_BUSY] + c[PX_STM_ABORT_EXCEPTION]),
                           "retries", (unsigned long long)c[PX_STM_RETRIES], "serial_fallbacks",
                           (unsigned long long)c[PX_STM_SERIAL], "exceptions",
                           (unsigned long long)c[PX_STM_ABORT_EXCEPTION], "conflicts", conflicts,
                           "max_retries", atomic_load(&max_retries), "aborts_by_cause",
                           "read_locked", (unsigned long long)c[PX_STM_ABORT_LOCKED], "stale_read",
                           (unsigned long long)c[PX_STM_ABORT_STALE], "commit_locked",
                           (unsigned long long)c[PX_STM_ABORT_BUSY], "exception",
                           (unsigned long long)c[PX_STM_ABORT_EXCEPTION], "snapshot_extensions",
                           (unsigned long long)c[PX_STM_EXTENSIONS]);
    return result;
}

PyObject *px__stm_config(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"max_retries", NULL};
    PyObject *given = Py_None;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:stm_config", names, &given))
        return NULL;
    if (given != Py_None) {
        long n = PyLong_AsLong(given);
        if (n == -1 && PyErr_Occurred())
            return NULL;
        if (n < 0 || n > 1000000) {
            PyErr_SetString(PyExc_ValueError, "max_retries must be >= 0 (and at most 1000000)");
            return NULL;
        }
        atomic_store(&max_retries, (int)n);
    }
    return Py_BuildValue("{s:i}", "max_retries", atomic_load(&max_retries));
}

int px__stm_run_init(PyObject *m)
{
    if (conflict_type == NULL) {
        conflict_type = PyErr_NewExceptionWithDoc(
            "pyparallel._core._Conflict",
            "Unwinds a transaction that met a conflicting commit; atomic() runs it again. A "
            "BaseException, so that `except Exception` lets it through.",
            PyExc_BaseException, NULL);
        if (conflict_type == NULL)
            return -1;
        /* Values are released only once no reader can hold them, on both
         * builds: a GIL serialises a read with its reference, but not a
         * location's memory with a commit that still validates it. */
        px_stm_setup(release, true);
    }
    return PyModule_AddObjectRef(m, "_Conflict", conflict_type);
}
